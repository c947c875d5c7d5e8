"""Provincial submissions (报送) and the regional reports they snapshot: a
province's report is the national report's rows of its cities, its total their
sum; submissions are numbered, immutable, checksummed, superseded, late or not."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from campaign.publications import checksum
from campaign.submissions import submit
from schemas.records import Role
from store.principal import COMMAND_LINE
from tests.cli import run_payfeed
from tests.factories import push, record
from tests.two_provinces import SALES, seed

SUMMED = (
    "cities",
    "enterprises",
    "activities",
    "sessions",
    "net_fen",
    "baseline_net_fen",
    "uplift_fen",
)


def units(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["unit"]: row for row in report["rows"]}


async def test_regional_reports_are_the_national_rows_of_their_cities(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    viewer: dict[str, str],
    provider_token: Any,
    regional_token: Any,
) -> None:
    await seed(client, admin, provider_token)
    zhejiang = await regional_token(Role.VIEWER, "33")
    hangzhou = await regional_token(Role.VIEWER, "330100")
    national = {
        level: (await client.get(f"/v1/reports/2023?level={level}", headers=viewer)).json()
        for level in ("city", "province")
    }
    own = (await client.get("/v1/reports/2023?level=city", headers=zhejiang)).json()
    assert list(units(own)) == ["330100", "330200"]
    assert own["rows"] == [units(national["city"])[c] for c in ("330100", "330200")]
    for measure in SUMMED:
        assert own["total"][measure] == sum(row[measure] for row in own["rows"])
    assert own["total"]["net_fen"] == SALES["330100"] + SALES["330200"]
    # Policies: the province's own and its cities'.
    assert own["total"]["policies"] == 3
    by_province = (await client.get("/v1/reports/2023?level=province", headers=zhejiang)).json()
    assert by_province["rows"] == [units(national["province"])["33"]]
    assert {k: v for k, v in by_province["total"].items() if k not in ("unit", "name")} == {
        k: v for k, v in units(national["province"])["33"].items() if k not in ("unit", "name")
    }
    city = (await client.get("/v1/reports/2023?level=city", headers=hangzhou)).json()
    assert city["rows"] == [units(national["city"])["330100"]]
    assert {k: v for k, v in city["total"].items() if k not in ("unit", "name")} == {
        k: v for k, v in units(national["city"])["330100"].items() if k not in ("unit", "name")
    }
    narrowed = await client.get("/v1/reports/2023?level=city&unit=330200", headers=zhejiang)
    assert narrowed.json()["rows"] == [units(national["city"])["330200"]]
    for who, unit in (
        (zhejiang, "44"),
        (zhejiang, "440100"),
        (hangzhou, "33"),
        (hangzhou, "330200"),
    ):
        refused = await client.get(f"/v1/reports/2023?unit={unit}", headers=who)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "out_of_scope"
    as_csv = await client.get("/v1/reports/2023?level=city&format=csv", headers=hangzhou)
    assert as_csv.text.splitlines()[1].startswith(f"330100,杭州市,1,1,1,4,1,{SALES['330100']},")


async def test_submissions_numbered_immutable_checksummed_and_compared(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    viewer: dict[str, str],
    provider_token: Any,
    regional_token: Any,
    engine: AsyncEngine,
    database_url: str,
    tmp_path: Path,
) -> None:
    await seed(client, admin, provider_token)
    zhejiang = await regional_token(Role.ADMIN, "33")
    zhejiang_viewer = await regional_token(Role.VIEWER, "33")
    hangzhou = await regional_token(Role.ADMIN, "330100")
    url = "/v1/reports/2023/submissions"
    for who in (admin, hangzhou, zhejiang_viewer):
        assert (await client.post(url, json={"note": "x"}, headers=who)).status_code == 403
    first = await client.post(url, json={"note": "浙江第一次报送"}, headers=zhejiang)
    assert first.status_code == 201, first.text
    body = first.json()
    assert (body["province"], body["number"], body["note"]) == ("33", 1, "浙江第一次报送")
    # Submitted now, long after the 2023 deadline (2023-10-15).
    assert body["late"] is True
    live = (await client.get("/v1/reports/2023?level=city", headers=zhejiang)).json()
    assert body["report"] == live
    assert body["sha256"] == checksum({k: v for k, v in body.items() if k != "sha256"})

    # More sales in 杭州: the live report moves, submission 1 does not.
    cmb = await provider_token("cmb")
    more = record("T-more", merchant_id="M-330100", amount_fen=1_000)
    assert (await push(client, cmb, "more", [more])).json()["inserted"] == 1
    national = (await client.get(url, headers=viewer)).json()
    assert [(e["province"], e["submitted"]) for e in national] == [("33", True), ("44", False)]
    assert national[0]["number"] == 1 and national[0]["compared_with_live"]["same"] is False
    changes = {(c["unit"], c["measure"]): c for c in national[0]["compared_with_live"]["changes"]}
    assert changes["330100", "net_fen"]["change"] == 1_000
    assert changes["total", "net_fen"]["submitted"] == SALES["330100"] + SALES["330200"]

    second = (await client.post(url, json={}, headers=zhejiang)).json()
    assert second["number"] == 2
    assert second["report"]["total"]["net_fen"] == SALES["330100"] + SALES["330200"] + 1_000
    again = (await client.get(f"{url}/33/1", headers=zhejiang_viewer)).json()
    assert again == body  # superseded, not changed
    own = (await client.get(url, headers=zhejiang_viewer)).json()
    assert [(e["number"], e["compared_with_live"]["same"]) for e in own] == [(1, False), (2, True)]
    national = (await client.get(url, headers=viewer)).json()
    assert national[0]["number"] == 2
    for path in (f"{url}/44/1", f"{url}/33/1"):
        assert (await client.get(path, headers=hangzhou)).status_code == 403
    assert (await client.get(url, headers=hangzhou)).status_code == 403
    assert (await client.get(f"{url}/44/1", headers=zhejiang)).status_code == 403
    assert (await client.get(f"{url}/33/9", headers=viewer)).status_code == 404

    for statement in (
        "UPDATE submissions SET note = 'x' WHERE number = 1",
        "DELETE FROM submissions WHERE number = 1",
    ):
        with pytest.raises(DBAPIError, match="immutable"):
            async with engine.begin() as conn:
                await conn.execute(text(statement))
    verified = await run_payfeed(database_url, tmp_path, "report", "verify-submissions")
    assert verified.returncode == 0, verified.stderr
    async with engine.begin() as conn:
        await conn.execute(text("ALTER TABLE submissions DISABLE TRIGGER submissions_immutable"))
        await conn.execute(
            text(
                "UPDATE submissions SET body = jsonb_set(body, '{report,total,net_fen}', '1') "
                "WHERE number = 2"
            )
        )
        await conn.execute(text("ALTER TABLE submissions ENABLE TRIGGER submissions_immutable"))
    tampered = await run_payfeed(database_url, tmp_path, "report", "verify-submissions")
    assert tampered.returncode == 1
    assert b'"province":"33","number":2' in tampered.stdout


async def test_late_against_the_report_due_day_and_the_command_line(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    provider_token: Any,
    engine: AsyncEngine,
    database_url: str,
    tmp_path: Path,
) -> None:
    await seed(client, admin, provider_token)
    async with engine.begin() as conn:
        due = (await conn.execute(text("SELECT report_due FROM campaigns"))).scalar()
        assert str(due) == "2023-10-15"
        # 15 October, 23:59 in Beijing is on time; 16 October, 00:01 is late.
        on_time = await submit(
            conn, "2023", "44", COMMAND_LINE, "", datetime(2023, 10, 15, 15, 59, tzinfo=UTC)
        )
        late = await submit(
            conn, "2023", "44", COMMAND_LINE, "", datetime(2023, 10, 15, 16, 1, tzinfo=UTC)
        )
    assert (on_time["late"], late["late"]) == (False, True)
    assert (on_time["number"], late["number"]) == (1, 2)
    assert on_time["submitted_by"] == "cli"
    done = await run_payfeed(
        database_url,
        tmp_path,
        "report",
        "submit",
        "--campaign",
        "2023",
        "--region",
        "33",
        "--note",
        "补报",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().startswith("submitted 2023 province 33 #1 (late): net_fen=")
    refused = await run_payfeed(database_url, tmp_path, "report", "submit", "--region", "330100")
    assert refused.returncode == 2
