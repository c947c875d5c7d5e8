"""Publications: one snapshot while batches arrive, numbered, immutable, verified,
diffed exactly, published on a schedule only when something changed, one final."""

import asyncio
import csv
import io
import time
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import openpyxl
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.schedule import publish_on_schedule
from campaign.publications import checksum, parse_interval, publish_due
from campaign.report_files import report_csv
from store.errors import BadRequest
from tests.cli import run_payfeed
from tests.factories import enterprise_with_account, push, record, register

DURING = datetime(2023, 9, 20, 4, 0, tzinfo=UTC)
MEASURES = (
    "cities",
    "enterprises",
    "activities",
    "sessions",
    "policies",
    "net_fen",
    "baseline_net_fen",
    "uplift_fen",
    "uplift_pct",
)


async def setup(client: httpx.AsyncClient, admin: dict[str, str], provider_token: Any) -> Any:
    cities = [{"city": c} for c in ("330100", "330200", "320100")]
    assert (await register(client, admin, "cities", cities)).status_code == 200
    for merchant, city in (("M1", "330100"), ("M2", "330200")):
        await enterprise_with_account(
            client, admin, provider="cmb", merchant_id=merchant, city=city
        )
    await enterprise_with_account(client, admin, provider="alipay", merchant_id="A1", city="320100")
    cmb, alipay = await provider_token("cmb"), await provider_token("alipay")
    baseline = record(
        "B1", merchant_id="M1", amount_fen=3_000_000, occurred_at="2023-08-20T10:00:00+08:00"
    )
    assert (await push(client, cmb, "base", [baseline])).json()["inserted"] == 1
    return cmb, alipay


async def publish(
    client: httpx.AsyncClient, admin: dict[str, str], note: str = "", final: bool = False
) -> httpx.Response:
    return await client.post(
        "/v1/campaigns/2023/publications", json={"note": note, "final": final}, headers=admin
    )


def rows_of(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["unit"]: row for row in report["rows"]}


async def test_publishing_while_two_clients_push_reads_one_snapshot(
    client: httpx.AsyncClient, admin: dict[str, str], viewer: dict[str, str], provider_token: Any
) -> None:
    """Each cmb batch puts 1,000 fen in Hangzhou and 1,000 in Ningbo on two days;
    each alipay batch 1 fen in Nanjing. A publication at one snapshot holds whole
    batches only: Hangzhou equals Ningbo, the days sum to the total, and the
    counts agree with the batches answered around it."""
    cmb, alipay = await setup(client, admin, provider_token)
    answered = {"cmb": 0, "alipay": 0}
    sent = {"cmb": 0, "alipay": 0}

    async def pusher(name: str, headers: dict[str, str], batches: int) -> None:
        for n in range(batches):
            if name == "cmb":
                records = [
                    record(f"C{n}a", merchant_id="M1", amount_fen=1000),
                    record(
                        f"C{n}b",
                        merchant_id="M2",
                        amount_fen=1000,
                        occurred_at="2023-09-25T10:00:00+08:00",
                    ),
                ]
            else:
                records = [record(f"A{n}", merchant_id="A1", amount_fen=1)]
            sent[name] += 1
            response = await push(client, headers, f"{name}-{n}", records)
            assert response.status_code == 200, response.text
            answered[name] += 1

    async def publisher() -> list[tuple[dict[str, int], dict[str, Any], dict[str, int]]]:
        seen = []
        for n in range(6):
            before = dict(answered)
            response = await publish(client, admin, f"during {n}")
            assert response.status_code == 201, response.text
            seen.append((before, response.json(), dict(sent)))
            await asyncio.sleep(0)
        return seen

    *_, seen = await asyncio.gather(
        pusher("cmb", cmb, 40), pusher("alipay", alipay, 40), publisher()
    )
    for before, publication, after in seen:
        cities = rows_of(publication["reports"]["city"])
        a, b = cities["330100"]["net_fen"] // 1000, cities["320100"]["net_fen"]
        assert cities["330200"]["net_fen"] == cities["330100"]["net_fen"] == 1000 * a
        assert before["cmb"] <= a <= after["cmb"] and before["alipay"] <= b <= after["alipay"]
        total = publication["reports"]["city"]["total"]
        assert total["net_fen"] == 2000 * a + b == publication["measures"]["net_fen"]
        assert publication["records"] == 2 * a + b
        assert sum(d["net_fen"] for d in publication["daily"]) == total["net_fen"]
        assert publication["reports"]["province"]["total"] == total
        assert publication["sha256"] == checksum(
            {k: v for k, v in publication.items() if k != "sha256"}
        )
    assert [p["number"] for _, p, _ in seen] == [1, 2, 3, 4, 5, 6]

    last = (await publish(client, admin, "after")).json()
    for level in ("province", "city"):
        report = await client.get("/v1/reports/2023", params={"level": level}, headers=viewer)
        assert last["reports"][level] == report.json()
        assert last["reports"][level]["coverage"] == last["coverage"]


async def test_a_publication_never_changes_and_the_diff_is_the_recounts_difference(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    viewer: dict[str, str],
    provider_token: Any,
) -> None:
    cmb, alipay = await setup(client, admin, provider_token)
    await push(client, cmb, "b1", [record("T1", merchant_id="M1", amount_fen=12345)])
    first = (await publish(client, admin, "第一次")).json()
    report_before = {
        level: (
            await client.get("/v1/reports/2023", params={"level": level}, headers=viewer)
        ).json()
        for level in ("province", "city")
    }

    await push(client, cmb, "b2", [record("T2", merchant_id="M2", amount_fen=700)])
    late = record("T3", merchant_id="A9", amount_fen=55555)
    assert (await push(client, alipay, "b3", [late])).json()["quarantined"] == 1
    await enterprise_with_account(client, admin, provider="alipay", merchant_id="A9", city="320100")
    replay = await client.post("/v1/quarantine/replay", json={}, headers=admin)
    assert replay.json()["inserted"] == 1
    policy = {"unit": "330200", "title": "宁波消费券", "issued_on": "2023-09-10"}
    assert (await register(client, admin, "policies", [policy])).status_code == 200

    again = await client.get("/v1/campaigns/2023/publications/1", headers=viewer)
    assert again.json() == first
    second = (await publish(client, admin, "修订")).json()
    assert second["number"] == 2
    report_after = {
        level: (
            await client.get("/v1/reports/2023", params={"level": level}, headers=viewer)
        ).json()
        for level in ("province", "city")
    }
    assert first["reports"] == report_before and second["reports"] == report_after

    expected = []
    for level in ("province", "city"):
        old, new = rows_of(report_before[level]), rows_of(report_after[level])
        for unit in sorted(set(old) | set(new)):
            for measure in MEASURES:
                if old[unit][measure] != new[unit][measure]:
                    expected.append((level, unit, measure, old[unit][measure], new[unit][measure]))
    old_total, new_total = report_before["city"]["total"], report_after["city"]["total"]
    for measure in MEASURES:
        if old_total[measure] != new_total[measure]:
            expected.append(("total", "total", measure, old_total[measure], new_total[measure]))
    expected.append(("total", "total", "records", first["records"], first["records"] + 2))

    diff = (await client.get("/v1/campaigns/2023/publications/1/diff/2", headers=viewer)).json()
    assert [(c["level"], c["unit"], c["measure"], c["old"], c["new"]) for c in diff["changes"]] == (
        expected
    )
    by_key = {(c["level"], c["unit"], c["measure"]): c for c in diff["changes"]}
    assert by_key["total", "total", "net_fen"]["change"] == 700 + 55555
    assert by_key["city", "320100", "net_fen"]["change"] == 55555
    assert by_key["city", "330200", "policies"] == {
        "level": "city",
        "unit": "330200",
        "name": "宁波市",
        "measure": "policies",
        "old": 0,
        "new": 1,
        "change": 1,
    }
    back = (await client.get("/v1/campaigns/2023/publications/2/diff/1", headers=viewer)).json()
    assert by_key["total", "total", "net_fen"]["change"] == -next(
        c["change"] for c in back["changes"] if (c["unit"], c["measure"]) == ("total", "net_fen")
    )
    same = (await client.get("/v1/campaigns/2023/publications/2/diff/2", headers=viewer)).json()
    assert same["changes"] == []


async def test_list_read_as_files_and_errors(
    client: httpx.AsyncClient, admin: dict[str, str], viewer: dict[str, str], provider_token: Any
) -> None:
    cmb, _ = await setup(client, admin, provider_token)
    await push(client, cmb, "b1", [record("T1", merchant_id="M1", amount_fen=12345)])
    assert (await publish(client, admin, "note")).status_code == 201
    assert (
        await client.post("/v1/campaigns/2023/publications", json={}, headers=viewer)
    ).status_code == 403
    listed = (await client.get("/v1/campaigns/2023/publications", headers=viewer)).json()
    assert len(listed) == 1
    assert {k: listed[0][k] for k in ("number", "note", "final")} == {
        "number": 1,
        "note": "note",
        "final": False,
    }
    assert listed[0]["days"] == {"first_day": "2023-09-09", "last_day": "2023-10-08", "count": 30}
    assert listed[0]["published_by"].startswith("token:")
    stored = (await client.get("/v1/campaigns/2023/publications/1", headers=viewer)).json()
    assert listed[0]["sha256"] == stored["sha256"]

    as_csv = await client.get(
        "/v1/campaigns/2023/publications/1",
        params={"format": "csv", "level": "city"},
        headers=viewer,
    )
    assert as_csv.content == report_csv(stored["reports"]["city"])
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert rows[-1]["unit"] == "total" and rows[-1]["net_fen"] == "12345"
    as_xlsx = await client.get(
        "/v1/campaigns/2023/publications/1", params={"format": "xlsx"}, headers=viewer
    )
    sheet = openpyxl.load_workbook(io.BytesIO(as_xlsx.content)).active
    assert sheet is not None and sheet.cell(sheet.max_row, 8).value == 123.45

    missing = await client.get("/v1/campaigns/2023/publications/9", headers=viewer)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_publication"
    unknown = await client.get("/v1/campaigns/1999/publications", headers=viewer)
    assert unknown.json()["error"]["code"] == "unknown_campaign"


async def test_only_one_final_publication(
    client: httpx.AsyncClient, admin: dict[str, str], provider_token: Any
) -> None:
    await setup(client, admin, provider_token)
    finals = await asyncio.gather(*(publish(client, admin, "终报", final=True) for _ in range(3)))
    assert sorted(r.status_code for r in finals) == [201, 409, 409]
    refused = next(r for r in finals if r.status_code == 409)
    assert refused.json()["error"]["code"] == "final_exists"
    assert (await publish(client, admin, "更正")).json()["number"] == 2


async def test_an_altered_publication_fails_verify(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    provider_token: Any,
    engine: AsyncEngine,
    database_url: str,
    tmp_path: Path,
) -> None:
    cmb, _ = await setup(client, admin, provider_token)
    published = await run_payfeed(
        database_url, tmp_path, "publish", "--campaign", "2023", "--note", "CLI"
    )
    assert published.returncode == 0, published.stderr
    assert b"published 2023 #1" in published.stdout
    await publish(client, admin)
    ok = await run_payfeed(database_url, tmp_path, "publications", "verify")
    assert ok.returncode == 0, ok.stderr

    with pytest.raises(DBAPIError, match="immutable"):
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE publications SET note = 'x' WHERE number = 1"))
    with pytest.raises(DBAPIError, match="immutable"):
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM publications"))

    async with engine.begin() as conn:  # tampering, as the table's owner could
        await conn.execute(text("ALTER TABLE publications DISABLE TRIGGER publications_immutable"))
        await conn.execute(
            text(
                "UPDATE publications SET body = jsonb_set(body, '{measures,net_fen}', '1') "
                "WHERE number = 2"
            )
        )
        await conn.execute(text("ALTER TABLE publications ENABLE TRIGGER publications_immutable"))
    altered = await run_payfeed(database_url, tmp_path, "publications", "verify")
    assert altered.returncode == 1
    lines = altered.stdout.decode().splitlines()
    assert len(lines) == 1 and '"number":2' in lines[0]


async def test_scheduled_publishing_skips_when_nothing_changed(
    client: httpx.AsyncClient, admin: dict[str, str], provider_token: Any, engine: AsyncEngine
) -> None:
    cmb, _ = await setup(client, admin, provider_token)
    first = await publish_due(engine, DURING)
    assert [(p["campaign"], p["number"], p["published_by"]) for p in first] == [
        ("2023", 1, "schedule")
    ]
    assert first[0]["days"] == {"first_day": "2023-09-09", "last_day": "2023-09-20", "count": 12}
    assert await publish_due(engine, DURING + timedelta(hours=1)) == []
    assert await publish_due(engine, DURING + timedelta(days=1)) == []
    await push(client, cmb, "b1", [record("T1", merchant_id="M1", amount_fen=1)])
    again = await publish_due(engine, DURING + timedelta(days=1, hours=1))
    assert [p["number"] for p in again] == [2]
    assert await publish_due(engine, datetime(2023, 10, 20, tzinfo=UTC)) == []  # over


def test_publish_every_is_an_interval() -> None:
    assert parse_interval("1h") == timedelta(hours=1)
    assert parse_interval("30m") == timedelta(minutes=30)
    assert parse_interval("90s") == parse_interval("90") == timedelta(seconds=90)
    for bad in ("0s", "1w", "soon", ""):
        with pytest.raises(BadRequest):
            parse_interval(bad)


async def test_the_schedule_publishes_a_running_campaign(
    client: httpx.AsyncClient, admin: dict[str, str], engine: AsyncEngine
) -> None:
    today = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).date()
    window = {
        "name": "本期",
        "first_day": str(today - timedelta(days=3)),
        "last_day": str(today + timedelta(days=3)),
    }
    assert (await client.put("/v1/campaigns/NOW", json=window, headers=admin)).status_code == 200
    task = asyncio.create_task(publish_on_schedule(engine, timedelta(seconds=0.01)))
    try:
        deadline = time.monotonic() + 10
        while not (await client.get("/v1/campaigns/NOW/publications", headers=admin)).json():
            assert time.monotonic() < deadline, "nothing was published on schedule"
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
    listed = (await client.get("/v1/campaigns/NOW/publications", headers=admin)).json()
    assert [(p["number"], p["published_by"]) for p in listed] == [(1, "schedule")]
    assert listed[0]["days"]["count"] == 4
    assert (await client.get("/v1/campaigns/2023/publications", headers=admin)).json() == []
