"""Providers and feed completeness (SPEC section 10): the registry of providers, the
delivery calendar the writer keeps, the state of every provider-day, the
reconciliation of files with control totals, and coverage travelling with the
figures."""

import io
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import openpyxl
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from campaign.coverage import feed_coverage
from demo.campaign import LATE_DAY, LATE_PROVIDER, load_demo
from demo.samples import wechatpay_bill
from ingest.rollups import rebuild_rollups, verify_rollups
from schemas.records import Role
from store.settings import Settings
from tests.cli import run_payfeed
from tests.factories import enterprise_with_account, push, record, register
from tests.test_public_page import CHROMIUM, chromium, phone_screenshot, serving

LOCAL = ZoneInfo("Asia/Shanghai")
EARLIEST, LATEST = date(2000, 1, 1), date(2100, 12, 31)
CMB = {"provider": "cmb", "name": "招商银行", "kind": "bank", "delivery": "daily", "due": "10:00"}


def local(text_: str) -> datetime:
    return datetime.fromisoformat(text_).replace(tzinfo=LOCAL)


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def day_records(day: date, count: int, prefix: str = "T") -> list[dict[str, Any]]:
    return [
        record(
            f"{prefix}{day:%m%d}-{n}",
            merchant_id="M1",
            amount_fen=100 * (n + 1),
            occurred_at=f"{day}T{8 + n % 12:02d}:00:00+08:00",
        )
        for n in range(count)
    ]


async def deliver(client: httpx.AsyncClient, token: dict[str, str], day: date, count: int) -> None:
    response = await push(client, token, f"cmb-{day}", day_records(day, count))
    assert response.status_code == 200 and response.json()["inserted"] == count, response.text


async def as_if_on_time(engine: AsyncEngine) -> None:
    """Make the records stored so far look delivered on time, as a file at 02:00
    the morning after their day (the test cannot wait for 2023): their arrival
    moved back, then the calendar rebuilt from the records as `payfeed rollups
    rebuild` does."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE records SET ingested_at = "
                "((day + 1)::timestamp + interval '2 hours') AT TIME ZONE 'Asia/Shanghai'"
            )
        )
        await rebuild_rollups(conn, EARLIEST, LATEST)
        assert await verify_rollups(conn, EARLIEST, LATEST) == []


async def setup_cmb(
    client: httpx.AsyncClient, admin: dict[str, str], provider_token: Any
) -> dict[str, str]:
    assert (await register(client, admin, "cities", [{"city": "330100"}])).status_code == 200
    assert (await register(client, admin, "providers", [CMB])).json() == {"registered": 1}
    await enterprise_with_account(client, admin, provider="cmb", merchant_id="M1")
    token: dict[str, str] = await provider_token("cmb")
    return token


def states(coverage: dict[str, Any], provider: str = "cmb") -> dict[str, tuple[str, bool]]:
    return {
        str(d["day"]): (d["state"], d["late"])
        for d in coverage["days"]
        if d["provider"] == provider
    }


async def test_providers_register_as_json_csv_and_from_a_file(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    viewer: dict[str, str],
    provider_token: Any,
    database_url: str,
    tmp_path: Path,
) -> None:
    assert (await register(client, admin, "providers", [CMB])).json() == {"registered": 1}
    csv = (
        "provider,name,kind,delivery,due\n"
        "wechat,微信支付,third_party,daily,09:30\n"
        "unionpay,银联,card_network,stream,\n"
    )
    posted = await client.post(
        "/v1/registry/providers",
        content=csv.encode(),
        headers={**admin, "Content-Type": "text/csv"},
    )
    assert posted.json() == {"registered": 2}
    for bad in (
        {**CMB, "provider": "CMB"},
        {**CMB, "kind": "fintech"},
        {**CMB, "delivery": "weekly"},
        {**CMB, "due": "25:00"},
        {**CMB, "due": "10"},
    ):
        answer = await register(client, admin, "providers", [bad])
        assert (
            answer.status_code == 422 and answer.json()["error"]["code"] == "invalid_registration"
        )
    assert (await register(client, viewer, "providers", [CMB])).status_code == 403

    path = tmp_path / "providers.csv"
    path.write_text("provider,name,kind,delivery,due\nicbc,工商银行,bank,daily,11:00\n")
    imported = await run_payfeed(
        database_url, tmp_path, "registry", "import", "--kind", "providers", str(path)
    )
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.decode().strip() == "registered 1 providers"

    # A provider nobody registered keeps working, and coverage names it.
    await enterprise_with_account(client, admin, provider="boc", merchant_id="B1")
    assert (await register(client, admin, "cities", [{"city": "330100"}])).status_code == 200
    boc = await provider_token("boc")
    stored = await push(client, boc, "boc-1", [record("X1", merchant_id="B1")])
    assert stored.json()["inserted"] == 1
    coverage = await client.get(
        "/v1/feeds/coverage", params={"from": "2023-09-09", "to": "2023-09-09"}, headers=viewer
    )
    assert coverage.status_code == 200
    assert coverage.json()["providers"] == [
        {
            "provider": "boc",
            "name": None,
            "kind": None,
            "delivery": None,
            "due": "10:00",
            "registered": False,
        },
        {**CMB, "registered": True},
        {
            "provider": "icbc",
            "name": "工商银行",
            "kind": "bank",
            "delivery": "daily",
            "due": "11:00",
            "registered": True,
        },
        {
            "provider": "unionpay",
            "name": "银联",
            "kind": "card_network",
            "delivery": "stream",
            "due": "10:00",
            "registered": True,
        },
        {
            "provider": "wechat",
            "name": "微信支付",
            "kind": "third_party",
            "delivery": "daily",
            "due": "09:30",
            "registered": True,
        },
    ]


async def test_skipped_days_are_pending_then_missing_and_complete_and_late_once_delivered(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    viewer: dict[str, str],
    provider_token: Any,
    engine: AsyncEngine,
) -> None:
    cmb = await setup_cmb(client, admin, provider_token)
    for day in (*days(date(2023, 9, 9), date(2023, 9, 11)), date(2023, 9, 14)):
        await deliver(client, cmb, day, 5)
    await as_if_on_time(engine)
    first, last = date(2023, 9, 9), date(2023, 9, 14)

    async with engine.connect() as conn:
        before_due = await feed_coverage(conn, first, last, local("2023-09-13T09:59:00"))
        after_due = await feed_coverage(conn, first, last, local("2023-09-14T10:01:00"))
    on_time = ("complete", False)
    assert states(before_due) == {
        "2023-09-09": on_time,
        "2023-09-10": on_time,
        "2023-09-11": on_time,
        "2023-09-12": ("pending", False),
        "2023-09-13": ("pending", False),
        "2023-09-14": ("pending", False),
    }
    assert states(after_due) == {
        **states(before_due),
        "2023-09-12": ("missing", False),
        "2023-09-13": ("missing", False),
    }
    assert after_due["summary"] == {
        "provider_days": 6,
        "complete": 3,
        "pending": 1,
        "missing": 2,
        "suspect": 0,
        "late": 0,
    }

    for day in (date(2023, 9, 12), date(2023, 9, 13)):
        await deliver(client, cmb, day, 5)
    answer = await client.get(
        "/v1/feeds/coverage",
        params={"from": str(first), "to": str(last), "provider": "cmb"},
        headers=viewer,
    )
    assert answer.status_code == 200
    coverage = answer.json()
    assert states(coverage) == {
        **{str(day): on_time for day in days(first, last)},
        "2023-09-12": ("complete", True),
        "2023-09-13": ("complete", True),
    }
    assert coverage["summary"] == {
        "provider_days": 6,
        "complete": 6,
        "pending": 0,
        "missing": 0,
        "suspect": 0,
        "late": 2,
    }
    late = next(d for d in coverage["days"] if d["day"] == "2023-09-12")
    assert {k: late[k] for k in ("records", "net_fen", "batches")} == {
        "records": 5,
        "net_fen": 1500,
        "batches": 1,
    }
    assert late["first_arrival"] == late["last_arrival"]


async def test_a_short_file_is_suspect(
    client: httpx.AsyncClient, admin: dict[str, str], provider_token: Any, engine: AsyncEngine
) -> None:
    cmb = await setup_cmb(client, admin, provider_token)
    for day, count in (
        (date(2023, 9, 9), 30),
        (date(2023, 9, 10), 30),
        (date(2023, 9, 11), 30),
        (date(2023, 9, 12), 9),  # a file cut short: under a third of the usual 30
        (date(2023, 9, 13), 10),  # a quiet day: exactly a third
    ):
        await deliver(client, cmb, day, count)
    await as_if_on_time(engine)
    async with engine.connect() as conn:
        coverage = await feed_coverage(
            conn, date(2023, 9, 9), date(2023, 9, 13), datetime(2024, 1, 1, tzinfo=UTC)
        )
    assert states(coverage) == {
        "2023-09-09": ("complete", False),
        "2023-09-10": ("complete", False),
        "2023-09-11": ("complete", False),
        "2023-09-12": ("suspect", False),
        "2023-09-13": ("complete", False),
    }


async def test_the_calendar_equals_a_recount_and_rebuild_restores_it(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    viewer: dict[str, str],
    provider_token: Any,
    engine: AsyncEngine,
    database_url: str,
    tmp_path: Path,
) -> None:
    assert (await register(client, admin, "cities", [{"city": "330100"}])).status_code == 200
    tokens = {}
    for provider in ("cmb", "icbc"):
        await enterprise_with_account(client, admin, provider=provider, merchant_id="M1")
        tokens[provider] = await provider_token(provider)
    rng = random.Random(15)
    carried: dict[tuple[str, str], int] = {}
    for n in range(12):
        provider = rng.choice(["cmb", "icbc"])
        batch = []
        for _ in range(rng.randint(1, 20)):
            day = date(2023, 9, 9) + timedelta(days=rng.randint(0, 6))
            batch.append(
                record(
                    f"R{rng.randint(0, 60)}",  # repeats across batches: duplicates, conflicts
                    kind=rng.choice(["payment", "payment", "refund"]),
                    amount_fen=rng.randint(1, 10**6),
                    occurred_at=f"{day}T12:00:00+08:00",
                    merchant_id=rng.choice(["M1", "M1", "M9"]),  # M9: quarantined
                )
            )
        answer = (await push(client, tokens[provider], f"b{n}", batch)).json()
        stored = await _stored_days(engine, provider, answer)
        for stored_day in stored:
            carried[provider, stored_day] = carried.get((provider, stored_day), 0) + 1

    coverage = (
        await client.get(
            "/v1/feeds/coverage", params={"from": "2023-09-09", "to": "2023-09-15"}, headers=viewer
        )
    ).json()
    async with engine.connect() as conn:
        recount = {
            (row.provider, str(row.day)): (row.records, row.net_fen)
            for row in await conn.execute(
                text(
                    "SELECT provider, day, count(*) AS records, sum(CASE kind WHEN 'payment' "
                    "THEN amount_fen ELSE -amount_fen END) AS net_fen FROM records "
                    "GROUP BY provider, day"
                )
            )
        }
    assert recount
    shown = {
        (d["provider"], d["day"]): (d["records"], d["net_fen"])
        for d in coverage["days"]
        if d["records"]
    }
    assert shown == recount
    batches = {(d["provider"], d["day"]): d["batches"] for d in coverage["days"] if d["batches"]}
    assert batches == carried

    verified = await run_payfeed(database_url, tmp_path, "rollups", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE feed_days SET payment_count = payment_count + 1, batches = 99")
        )
    broken = await run_payfeed(database_url, tmp_path, "rollups", "verify")
    assert broken.returncode == 1
    assert b'"table":"feed_days"' in broken.stdout
    rebuilt = await run_payfeed(database_url, tmp_path, "rollups", "rebuild")
    assert rebuilt.returncode == 0 and b"feed_days: " in rebuilt.stdout, rebuilt.stderr
    again = await run_payfeed(database_url, tmp_path, "rollups", "verify")
    assert again.returncode == 0, again.stdout
    after = (
        await client.get(
            "/v1/feeds/coverage", params={"from": "2023-09-09", "to": "2023-09-15"}, headers=viewer
        )
    ).json()
    assert after == coverage


async def _stored_days(engine: AsyncEngine, provider: str, answer: dict[str, Any]) -> set[str]:
    """The days of the records this batch inserted (they carry its transaction's
    arrival time, the latest of the provider's records)."""
    if not answer["inserted"]:
        return set()
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT DISTINCT day FROM records WHERE provider = :p AND ingested_at = "
                "(SELECT max(ingested_at) FROM records WHERE provider = :p)"
            ),
            {"p": provider},
        )
        return {str(row.day) for row in rows}


def wechat_rows(*specs: tuple[str, str, int, str]) -> list[dict[str, Any]]:
    return [
        {
            "txn_id": txn_id,
            "kind": "payment",
            "amount_fen": amount,
            "local_time": datetime.fromisoformat(at),
            "merchant_id": merchant,
            "channel": "offline",
            "payer_ref": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
        }
        for txn_id, merchant, amount, at in specs
    ]


async def test_reconciliation_lists_a_wechat_bill_whose_summary_disagrees_first(
    client: httpx.AsyncClient, admin: dict[str, str], viewer: dict[str, str], provider_token: Any
) -> None:
    assert (await register(client, admin, "cities", [{"city": "330100"}])).status_code == 200
    await enterprise_with_account(client, admin, provider="wechat", merchant_id="1900000321")
    wechat = await provider_token("wechat")
    good = wechat_rows(
        ("4200000001", "1900000321", 8800, "2023-09-09 20:15:00"),
        ("4200000002", "1900000321", 1200, "2023-09-09 21:00:00"),
    )
    bad = wechat_rows(
        ("4200000002", "1900000321", 1200, "2023-09-09 21:00:00"),  # stored already
        ("4200000003", "1900000321", 500, "2023-09-10 09:00:00"),
        ("4200000004", "1900000999", 700, "2023-09-10 10:00:00"),  # unknown merchant
    )
    for batch_id, body in (
        ("wx-0909", wechatpay_bill("1900000109", good)),
        # The summary row claims four rows and 31.00 yuan where the rows hold three and 24.00.
        ("wx-0910", wechatpay_bill("1900000109", bad).replace(b"`3,`24.00", b"`4,`31.00")),
    ):
        answer = await client.post(
            "/v1/batches?format=wechatpay",
            content=body,
            headers={**wechat, "X-Batch-Id": batch_id, "Content-Type": "text/csv"},
        )
        assert answer.status_code == 200, answer.text
    response = await client.get(
        "/v1/feeds/reconciliation",
        params={"provider": "wechat", "from": "2023-09-09", "to": "2023-09-10"},
        headers=viewer,
    )
    assert response.status_code == 200
    files = response.json()["files"]
    assert [(f["source"], f["match"]) for f in files] == [
        ("batch:wx-0910", False),
        ("batch:wx-0909", True),
    ]
    mismatch = files[0]
    assert mismatch["declared"]["row_count"] == 4 and mismatch["read"]["row_count"] == 3
    assert mismatch["declared_match"] is False and mismatch["stored_match"] is False
    assert mismatch["received"] == 3
    assert mismatch["stored"] == {
        "records": 2,
        "payment_count": 2,
        "payment_fen": 1700,
        "refund_count": 0,
        "refund_fen": 0,
    }
    assert (mismatch["first_day"], mismatch["last_day"]) == ("2023-09-09", "2023-09-10")
    assert files[1]["stored"]["records"] == files[1]["received"] == 2
    outside = await client.get(
        "/v1/feeds/reconciliation",
        params={"from": "2023-09-11", "to": "2023-09-30"},
        headers=viewer,
    )
    assert outside.json()["files"] == []


async def test_a_publication_during_the_gap_says_so_and_the_next_diff_names_the_late_days(
    client: httpx.AsyncClient,
    app: FastAPI,
    admin: dict[str, str],
    viewer: dict[str, str],
    provider_token: Any,
) -> None:
    cmb = await setup_cmb(client, admin, provider_token)
    gap = (date(2023, 9, 12), date(2023, 9, 13))
    for day in days(date(2023, 9, 9), date(2023, 10, 8)):
        if day not in gap:
            await deliver(client, cmb, day, 1)
    summary = (await client.get("/v1/campaigns/2023/summary", headers=viewer)).json()
    missing = [{"provider": "cmb", "day": str(day)} for day in gap]
    assert summary["coverage"]["missing"] == missing
    assert (summary["coverage"]["provider_days"], summary["coverage"]["complete"]) == (30, 28)
    report = (await client.get("/v1/reports/2023", headers=viewer)).json()
    assert report["coverage"] == summary["coverage"]

    first = (await client.post("/v1/campaigns/2023/publications", json={}, headers=admin)).json()
    assert first["provisional"] is True and first["coverage"]["missing"] == missing
    assert (first["coverage"]["delivered"], first["coverage"]["providers"]) == (0, 1)
    page = (await client.get("/")).text
    assert 'id="provisional"' in page and "初步数据" in page and "09-12、09-13" in page
    assert "数据截至 2023-10-08，0/1 家机构已报送" in page

    for day in gap:
        await deliver(client, cmb, day, 1)
    second = (await client.post("/v1/campaigns/2023/publications", json={}, headers=admin)).json()
    assert second["provisional"] is False and second["coverage"]["missing"] == []
    assert {"provider": "cmb", "day": "2023-09-12"} in second["coverage"]["late_days"]
    diff = (await client.get("/v1/campaigns/2023/publications/1/diff/2", headers=viewer)).json()
    assert diff["late_arrivals"] == missing
    total = next(c for c in diff["changes"] if c["level"] == "total" and c["measure"] == "net_fen")
    assert total["change"] == 200  # one record of 1.00 yuan on each late day
    app.state.public_caches.clear()
    page = (await client.get("/")).text
    assert 'id="provisional"' not in page and "1/1 家机构已报送" in page
    assert "（源于迟报数据：09-12、09-13）" in page


REPORT_HEADER = (
    "unit,name,cities,enterprises,activities,sessions,policies,net_fen,baseline_net_fen,"
    "uplift_fen,uplift_pct,provisional,coverage_from,coverage_to,coverage_provider_days,"
    "coverage_complete,coverage_pending,coverage_late,coverage_missing,coverage_suspect,"
    "coverage_late_days,coverage_providers,coverage_delivered"
)
COVERAGE_HEADER_ZH = (
    "初步数据",
    "报送统计起始日",
    "数据截至",
    "应报机构日数",
    "已报齐机构日数",
    "未到报送时限机构日数",
    "迟报机构日数",
    "未报送机构日",
    "数据存疑机构日",
    "迟报机构日",
    "机构数",
    "已报送机构数",
)


def sheet_rows(content: bytes) -> list[tuple[Any, ...]]:
    sheet = openpyxl.load_workbook(io.BytesIO(content)).active
    assert sheet is not None
    return list(sheet.iter_rows(values_only=True))


async def test_report_files_and_the_public_summary_made_during_the_gap_state_it(
    client: httpx.AsyncClient,
    app: FastAPI,
    admin: dict[str, str],
    viewer: dict[str, str],
    provider_token: Any,
    engine: AsyncEngine,
) -> None:
    cmb = await setup_cmb(client, admin, provider_token)
    gap = (date(2023, 9, 12), date(2023, 9, 13))
    for day in days(date(2023, 9, 9), date(2023, 10, 8)):
        if day not in gap:
            await deliver(client, cmb, day, 1)
    await as_if_on_time(engine)
    figures = "1,1,0,0,0,2800,0,2800,"
    during = "true,2023-09-09,2023-10-08,30,28,0,0,cmb 2023-09-12; cmb 2023-09-13,,,1,0"

    as_csv = await client.get("/v1/reports/2023", params={"format": "csv"}, headers=viewer)
    assert as_csv.status_code == 200, as_csv.text
    assert as_csv.text.splitlines() == [
        REPORT_HEADER,
        f"33,浙江省,{figures},{during}",
        f"total,合计,{figures},{during}",
    ]
    as_xlsx = await client.get(
        "/v1/reports/2023", params={"format": "xlsx", "level": "city"}, headers=viewer
    )
    assert as_xlsx.status_code == 200
    header, city, total = sheet_rows(as_xlsx.content)
    assert header[11:] == COVERAGE_HEADER_ZH
    stated = (True, "2023-09-09", "2023-10-08", 30, 28, 0, 0, "cmb 2023-09-12; cmb 2023-09-13")
    assert city[:2] == ("330100", "杭州市") and total[:2] == ("total", "合计")
    assert city[11:] == total[11:] == (*stated, None, None, 1, 0)

    public_during = {
        "from": "2023-09-09",
        "to": "2023-10-08",
        "provider_days": 30,
        "complete": 28,
        "pending": 0,
        "missing": 2,
        "suspect": 0,
        "late": 0,
        "providers": 1,
        "delivered": 0,
        "missing_days": ["2023-09-12", "2023-09-13"],
        "suspect_days": [],
    }
    live = (await client.get("/v1/public/summary")).json()
    assert "publication" not in live
    assert (live["provisional"], live["coverage"]) == (True, public_during)

    posted = await client.post("/v1/campaigns/2023/publications", json={}, headers=admin)
    assert posted.status_code == 201
    published_csv = await client.get(
        "/v1/campaigns/2023/publications/1", params={"format": "csv"}, headers=viewer
    )
    assert published_csv.text.splitlines()[1] == f"33,浙江省,{figures},{during}"
    app.state.public_caches.clear()
    published = (await client.get("/v1/public/summary")).json()
    assert published["publication"] == 1
    assert (published["provisional"], published["coverage"]) == (True, public_during)

    for day in gap:
        await deliver(client, cmb, day, 1)
    figures = "1,1,0,0,0,3000,0,3000,"
    after = "false,2023-09-09,2023-10-08,30,30,0,2,,,cmb 2023-09-12; cmb 2023-09-13,1,1"
    as_csv = await client.get("/v1/reports/2023", params={"format": "csv"}, headers=viewer)
    assert as_csv.text.splitlines()[1:] == [
        f"33,浙江省,{figures},{after}",
        f"total,合计,{figures},{after}",
    ]
    as_xlsx = await client.get("/v1/reports/2023", params={"format": "xlsx"}, headers=viewer)
    _, province, _ = sheet_rows(as_xlsx.content)
    settled = (False, "2023-09-09", "2023-10-08", 30, 30, 0, 2, None, None)
    assert province[11:] == (*settled, "cmb 2023-09-12; cmb 2023-09-13", 1, 1)
    posted = await client.post("/v1/campaigns/2023/publications", json={}, headers=admin)
    assert posted.status_code == 201
    app.state.public_caches.clear()
    revised = (await client.get("/v1/public/summary")).json()
    assert revised["publication"] == 2 and revised["provisional"] is False
    assert revised["coverage"] == {
        **public_during,
        "complete": 30,
        "missing": 0,
        "late": 2,
        "delivered": 1,
        "missing_days": [],
    }


async def test_metrics_count_provider_days_by_state(
    client: httpx.AsyncClient, admin: dict[str, str], provider_token: Any
) -> None:
    cmb = await setup_cmb(client, admin, provider_token)
    now = datetime.now(UTC).astimezone(LOCAL).date()
    window = {"name": "本期", "first_day": str(now - timedelta(days=9)), "last_day": str(now)}
    assert (await client.put("/v1/campaigns/NOW", json=window, headers=admin)).status_code == 200
    for n in (9, 8, 7, 4, 3, 2, 1):  # days 6 and 5 before today skipped; today not yet due
        day = now - timedelta(days=n)
        response = await push(client, cmb, f"now-{n}", day_records(day, 2, prefix="N"))
        assert response.json()["inserted"] == 2, response.text
    metrics = (await client.get("/metrics")).text
    assert 'payfeed_feed_days{provider="cmb",state="missing"} 2.0' in metrics
    assert 'payfeed_feed_days{provider="cmb",state="suspect"} 0.0' in metrics


async def test_the_demo_has_a_provider_that_missed_a_day_and_delivered_it_late(
    engine: AsyncEngine, settings: Settings
) -> None:
    assert "delivered 2023-09-20 late" in await load_demo(engine, settings)
    async with engine.connect() as conn:
        assert await verify_rollups(conn, EARLIEST, LATEST) == []
        coverage = await feed_coverage(conn, date(2023, 9, 9), date(2023, 10, 8), datetime.now(UTC))
        first, second = (
            await conn.execute(text("SELECT body FROM publications ORDER BY number"))
        ).scalars()
    assert [p["provider"] for p in coverage["providers"] if p["registered"]] == [
        "alipay",
        "cmb",
        "unionpay",
        "wechatpay",
    ]
    late = [(d["provider"], d["day"]) for d in coverage["days"] if d["late"]]
    assert late == [(LATE_PROVIDER, LATE_DAY)]
    assert coverage["summary"]["complete"] == coverage["summary"]["provider_days"] == 4 * 30
    gap = [{"provider": LATE_PROVIDER, "day": str(LATE_DAY)}]
    assert first["provisional"] is True and first["coverage"]["missing"] == gap
    assert second["provisional"] is False and second["coverage"]["late_days"] == gap


async def test_a_regional_token_sees_its_regions_records_and_no_provider_file(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    viewer: dict[str, str],
    provider_token: Any,
    regional_token: Any,
) -> None:
    cities = [{"city": "330100"}, {"city": "440100"}]
    assert (await register(client, admin, "cities", cities)).status_code == 200
    await enterprise_with_account(client, admin, provider="cmb", merchant_id="M1", city="330100")
    await enterprise_with_account(client, admin, provider="cmb", merchant_id="M2", city="440100")
    cmb = await provider_token("cmb")
    batch = [
        record("Z1", merchant_id="M1", amount_fen=1_234),
        record("G1", merchant_id="M2", amount_fen=98_765),
        record("G2", merchant_id="M2", amount_fen=43_210),
    ]
    assert (await push(client, cmb, "b1", batch)).json()["inserted"] == 3
    zhejiang = await regional_token(Role.VIEWER, "33")
    params = {"from": "2023-09-10", "to": "2023-09-10"}

    def day_of(answer: httpx.Response) -> dict[str, Any]:
        assert answer.status_code == 200, answer.text
        (day,) = answer.json()["days"]
        return {k: day[k] for k in ("provider", "state", "records", "net_fen", "batches")}

    national = day_of(await client.get("/v1/feeds/coverage", params=params, headers=viewer))
    regional = day_of(await client.get("/v1/feeds/coverage", params=params, headers=zhejiang))
    assert national == {
        "provider": "cmb",
        "state": "complete",
        "records": 3,
        "net_fen": 143_209,
        "batches": 1,
    }
    assert regional == {**national, "records": 1, "net_fen": 1_234}
    refused = await client.get("/v1/feeds/reconciliation", params=params, headers=zhejiang)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "out_of_scope"
    registering = await register(client, await regional_token(Role.ADMIN, "33"), "providers", [CMB])
    assert registering.status_code == 403
    assert registering.json()["error"]["code"] == "out_of_scope"


async def test_chromium_shows_the_provisional_mark_while_a_provider_day_is_missing(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    provider_token: Any,
    database_url: str,
    tmp_path: Path,
    artifacts: Path,
) -> None:
    assert CHROMIUM is not None, "Debian's chromium is needed: apt-get install -y chromium"
    cmb = await setup_cmb(client, admin, provider_token)
    for day in days(date(2023, 9, 9), date(2023, 10, 8)):
        if day != date(2023, 9, 20):
            await deliver(client, cmb, day, 1)
    posted = await client.post("/v1/campaigns/2023/publications", json={}, headers=admin)
    assert posted.json()["provisional"] is True
    screenshot = artifacts / "public_page_provisional.png"
    screenshot.unlink(missing_ok=True)
    with serving(database_url, tmp_path / "home") as base:
        dom = chromium(tmp_path / "profile", "--dump-dom", f"{base}/")
        shot = phone_screenshot(tmp_path / "profile-shot", screenshot, f"{base}/")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert '<p id="provisional" class="provisional"><b>初步数据</b>1 个机构日' in dom.stdout
    assert "（09-20）" in dom.stdout
    assert "数据截至 2023-10-08，0/1 家机构已报送" in dom.stdout
    assert shot.returncode == 0 and screenshot.stat().st_size > 10_000, shot.stderr[-2000:]


async def test_feeds_coverage_prints_a_table(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    provider_token: Any,
    database_url: str,
    tmp_path: Path,
) -> None:
    cmb = await setup_cmb(client, admin, provider_token)
    await deliver(client, cmb, date(2023, 9, 9), 3)
    printed = await run_payfeed(
        database_url, tmp_path, "feeds", "coverage", "--from", "2023-09-09", "--to", "2023-09-11"
    )
    assert printed.returncode == 0, printed.stderr
    lines = printed.stdout.decode().splitlines()
    assert lines[0].split() == [
        "provider",
        "day",
        "state",
        "late",
        "records",
        "net_fen",
        "batches",
        "first_arrival",
    ]
    assert lines[1].split()[:3] == ["cmb", "2023-09-09", "complete"]
    assert lines[1].split()[3:6] == ["late", "3", "600"]
    assert lines[2].split() == ["cmb", "2023-09-10", "missing", "0", "0", "0"]
    assert lines[-1] == ("provider_days 3, complete 1, pending 0, missing 2, suspect 0, late 1")


async def test_coverage_ranges_are_checked_but_a_long_campaign_still_has_a_summary(
    client: httpx.AsyncClient, admin: dict[str, str], viewer: dict[str, str]
) -> None:
    for params in (
        {"from": "2023-09-10", "to": "2023-09-09"},
        {"from": "2022-01-01", "to": "2023-12-31"},
    ):
        answer = await client.get("/v1/feeds/coverage", params=params, headers=viewer)
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "bad_range"
    long = {"name": "两年", "first_day": "2021-01-01", "last_day": "2022-12-31"}
    assert (await client.put("/v1/campaigns/LONG", json=long, headers=admin)).status_code == 200
    summary = await client.get("/v1/campaigns/LONG/summary", headers=viewer)
    assert summary.status_code == 200
    assert summary.json()["coverage"]["provider_days"] == 0  # no provider named anywhere
