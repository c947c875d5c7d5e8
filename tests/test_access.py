"""Regional tokens: who a token is (region, expiry, revocation), what a province or
city token reads (its own cities, 403 for a filter outside them) and registers
(its own, 403 and nothing applied otherwise)."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from ingest.payers import compact_all
from schemas.records import Role
from store.errors import BadRequest
from store.scope import Scope, parse_region
from store.tables import tokens
from store.tokens import parse_expiry
from tests.cli import run_payfeed
from tests.factories import register, uscc
from tests.two_provinces import BASELINE, SALES, seed

ROLLUPS = "/v1/rollups?from=2023-09-09&to=2023-10-08"
REGISTRY_TABLES = ("campaign_cities", "enterprises", "merchant_accounts", "activities", "policies")


def test_regions_are_national_a_province_or_a_city() -> None:
    assert parse_region(None) is None and parse_region("") is None
    assert parse_region("national") is None
    assert parse_region("33") == "33"
    assert parse_region("330106") == "330100"  # a county means its city
    assert parse_region("110105") == "110000"
    for bad in ("71", "3", "999999", "abc"):
        with pytest.raises(BadRequest):
            parse_region(bad)
    province, city = Scope("33"), Scope("330100")
    assert province.covers_city("330200") and not province.covers_city("440100")
    assert city.covers_city("330100") and not city.covers_city("330200")
    assert province.covers_unit("33") and not city.covers_unit("33")
    assert Scope().covers_unit("44") and Scope().key == "national"
    assert (province.key, city.key, province.province, city.province) == (
        "33",
        "330100",
        "33",
        "33",
    )


def test_expiry_in_days_or_a_local_date() -> None:
    now = datetime(2023, 9, 1, 12, tzinfo=UTC)
    assert parse_expiry("90d", now) == now + timedelta(days=90)
    # 2023-10-01 begins at 2023-09-30 16:00 UTC in Asia/Shanghai.
    assert parse_expiry("2023-10-01", now) == datetime(2023, 9, 30, 16, tzinfo=UTC)
    for bad in ("0d", "90", "2023-08-01", "soon"):
        with pytest.raises(BadRequest):
            parse_expiry(bad, now)


async def test_expired_and_revoked_tokens_are_401(
    client: httpx.AsyncClient, engine: AsyncEngine, regional_token: Any
) -> None:
    headers = await regional_token(Role.VIEWER, "33")
    assert (await client.get(ROLLUPS, headers=headers)).status_code == 200
    async with engine.begin() as conn:
        await conn.execute(update(tokens).values(expires_at=datetime.now(UTC) - timedelta(1)))
    answer = await client.get(ROLLUPS, headers=headers)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "unauthorized"
    async with engine.begin() as conn:
        await conn.execute(update(tokens).values(expires_at=None, revoked_at=datetime.now(UTC)))
    assert (await client.get(ROLLUPS, headers=headers)).status_code == 401


async def test_tokens_create_and_list_from_the_command_line(
    database_url: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    created = await run_payfeed(
        database_url,
        tmp_path,
        "tokens",
        "create",
        "--role",
        "viewer",
        "--region",
        "33",
        "--expires",
        "90d",
    )
    assert created.returncode == 0, created.stderr
    lines = created.stdout.decode().splitlines()
    assert "浙江省 (33)" in lines[0] and "expires" in lines[0]
    assert lines[-1].startswith("pf_")
    bad = await run_payfeed(
        database_url, tmp_path, "tokens", "create", "--role", "viewer", "--region", "71"
    )
    assert bad.returncode == 2 and b"unknown_region" in bad.stderr
    provider = await run_payfeed(
        database_url,
        tmp_path,
        "tokens",
        "create",
        "--role",
        "provider",
        "--provider",
        "cmb",
        "--region",
        "33",
    )
    assert provider.returncode == 2 and b"provider tokens are national" in provider.stderr
    listed = await run_payfeed(database_url, tmp_path, "tokens", "list")
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.decode().splitlines()
    assert header.split("\t") == [
        "id",
        "role",
        "region",
        "provider",
        "created",
        "expires",
        "last_used",
        "revoked",
    ]
    fields = row.split("\t")
    assert fields[1:4] == ["viewer", "33", "-"]
    assert fields[5] != "-" and fields[6] == "-" and fields[7] == "-"
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM tokens"))).scalar() == 1


async def test_last_used_is_noted(
    client: httpx.AsyncClient, engine: AsyncEngine, regional_token: Any
) -> None:
    headers = await regional_token(Role.VIEWER, "330100")
    await client.get(ROLLUPS, headers=headers)
    async with engine.connect() as conn:
        used = (await conn.execute(text("SELECT last_used_at FROM tokens"))).scalar()
    assert used is not None and datetime.now(UTC) - used < timedelta(minutes=1)


async def test_a_province_reads_its_cities_and_nothing_else(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    provider_token: Any,
    regional_token: Any,
    engine: AsyncEngine,
) -> None:
    seeded = await seed(client, admin, provider_token)
    await compact_all(engine)
    zhejiang = await regional_token(Role.VIEWER, "33")
    hangzhou = await regional_token(Role.VIEWER, "330100")
    rows = (await client.get(f"{ROLLUPS}&dims=city", headers=zhejiang)).json()
    assert [(r["city"], r["net_fen"]) for r in rows["rows"]] == [
        ("330100", SALES["330100"]),
        ("330200", SALES["330200"]),
    ]
    assert rows["totals"]["net_fen"] == SALES["330100"] + SALES["330200"]
    assert rows["totals"]["payer_count"] == 2
    one = (await client.get(f"{ROLLUPS}&dims=enterprise", headers=hangzhou)).json()
    assert [r["enterprise"] for r in one["rows"]] == [seeded.usccs["330100"]]
    csv_answer = await client.get(f"{ROLLUPS}&dims=province&format=csv", headers=hangzhou)
    assert csv_answer.text.splitlines()[1].startswith(f"33,1,1,0,{SALES['330100']},0,")
    for query, who in (
        ("province=44", zhejiang),
        ("city=440106", zhejiang),
        (f"enterprise={seeded.usccs['440100']}", zhejiang),
        ("enterprise=91330100MA00000000", zhejiang),
        ("city=330200", hangzhou),
        ("province=44", hangzhou),
    ):
        refused = await client.get(f"{ROLLUPS}&{query}", headers=who)
        assert refused.status_code == 403, query
        assert refused.json()["error"]["code"] == "out_of_scope"
        assert "浙江省 (33)" in refused.json()["error"]["message"] or "杭州市" in refused.text
        assert not any(word in refused.text for word in seeded.forbidden)
    within = await client.get(f"{ROLLUPS}&province=33&dims=city", headers=hangzhou)
    assert [r["city"] for r in within.json()["rows"]] == ["330100"]
    summary = (await client.get("/v1/campaigns/2023/summary", headers=zhejiang)).json()
    assert summary["measures"]["net_fen"] == SALES["330100"] + SALES["330200"]
    assert summary["baseline"]["measures"]["net_fen"] == BASELINE["330100"] + BASELINE["330200"]
    assert (summary["active_cities"], summary["active_enterprises"]) == (2, 2)


async def test_quarantine_shows_a_province_what_resolves_to_it(
    client: httpx.AsyncClient, admin: dict[str, str], provider_token: Any, regional_token: Any
) -> None:
    seeded = await seed(client, admin, provider_token)
    zhejiang_admin = await regional_token(Role.ADMIN, "33")
    listing = (await client.get("/v1/quarantine", headers=zhejiang_admin)).json()
    assert [item["id"] for item in listing["items"]] == seeded.quarantined["33"]
    assert listing["total"] == 1
    national = (await client.get("/v1/quarantine", headers=admin)).json()
    assert national["total"] == 3
    # Ids of another province or of unresolved records: 403, nothing discarded.
    for ids in (seeded.quarantined["44"], seeded.quarantined["unresolved"]):
        refused = await client.post(
            "/v1/quarantine/discard",
            json={"ids": ids + seeded.quarantined["33"]},
            headers=zhejiang_admin,
        )
        assert refused.status_code == 403
        assert (await client.get("/v1/quarantine", headers=admin)).json()["total"] == 3
    # No selection: the province's own records only.
    done = await client.post("/v1/quarantine/discard", json={}, headers=zhejiang_admin)
    assert done.json() == {"discarded": 1}
    left = (await client.get("/v1/quarantine", headers=admin)).json()["items"]
    assert sorted(item["id"] for item in left) == sorted(
        seeded.quarantined["44"] + seeded.quarantined["unresolved"]
    )


async def test_a_regional_admin_registers_its_own_only(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    provider_token: Any,
    regional_token: Any,
    engine: AsyncEngine,
) -> None:
    seeded = await seed(client, admin, provider_token)
    zhejiang = await regional_token(Role.ADMIN, "33")
    hangzhou = await regional_token(Role.ADMIN, "330100")
    fresh = uscc()

    async def counts() -> tuple[int, ...]:
        async with engine.connect() as conn:
            return tuple(
                [
                    (await conn.execute(text(f"SELECT count(*) FROM {t}"))).scalar_one()
                    for t in REGISTRY_TABLES
                ]
            )

    before = await counts()
    refused: list[tuple[dict[str, str], str, list[dict[str, Any]]]] = [
        (zhejiang, "cities", [{"city": "330300"}, {"city": "440500"}]),
        (hangzhou, "cities", [{"city": "330100"}]),
        (
            zhejiang,
            "enterprises",
            [
                {"uscc": fresh, "name": "温州百货", "city": "330300", "kind": "retail"},
                {"uscc": uscc(), "name": "x", "city": "440100", "kind": "retail"},
            ],
        ),
        # Moving 广州's enterprise into 杭州 changes a row of 广东.
        (
            zhejiang,
            "enterprises",
            [{"uscc": seeded.usccs["440100"], "name": "x", "city": "330100", "kind": "retail"}],
        ),
        (
            hangzhou,
            "enterprises",
            [{"uscc": fresh, "name": "x", "city": "330200", "kind": "retail"}],
        ),
        (
            zhejiang,
            "merchant-accounts",
            [{"provider": "cmb", "merchant_id": "NEW", "uscc": seeded.usccs["440100"]}],
        ),
        (
            zhejiang,
            "merchant-accounts",
            [
                {
                    "provider": "cmb",
                    "merchant_id": "NEW",
                    "uscc": seeded.usccs["330100"],
                    "city": "440100",
                }
            ],
        ),
        # Taking over 广州's account for a 杭州 enterprise.
        (
            zhejiang,
            "merchant-accounts",
            [{"provider": "cmb", "merchant_id": "M-440100", "uscc": seeded.usccs["330100"]}],
        ),
        (
            hangzhou,
            "activities",
            [
                {
                    "city": "330200",
                    "theme": "t",
                    "title": "t",
                    "first_day": "2023-09-09",
                    "last_day": "2023-09-09",
                    "sessions": 1,
                }
            ],
        ),
        (zhejiang, "policies", [{"unit": "44", "title": "t", "issued_on": "2023-09-01"}]),
        (hangzhou, "policies", [{"unit": "33", "title": "t", "issued_on": "2023-09-01"}]),
    ]
    for headers, kind, rows in refused:
        answer = await register(client, headers, kind, rows)
        assert answer.status_code == 403, (kind, answer.text)
        assert answer.json()["error"]["code"] == "out_of_scope"
        assert not any(word in answer.text for word in seeded.forbidden), answer.text
    assert await counts() == before

    ok = [
        (zhejiang, "cities", [{"city": "330300", "last_day": "2023-10-15"}]),
        (
            zhejiang,
            "enterprises",
            [{"uscc": fresh, "name": "温州百货", "city": "330300", "kind": "retail"}],
        ),
        (
            hangzhou,
            "merchant-accounts",
            [{"provider": "cmb", "merchant_id": "NEW", "uscc": seeded.usccs["330100"]}],
        ),
        (
            hangzhou,
            "activities",
            [
                {
                    "city": "330100",
                    "theme": "t",
                    "title": "t",
                    "first_day": "2023-09-09",
                    "last_day": "2023-09-09",
                    "sessions": 1,
                }
            ],
        ),
        (zhejiang, "policies", [{"unit": "33", "title": "t", "issued_on": "2023-09-01"}]),
        (hangzhou, "policies", [{"unit": "330100", "title": "t", "issued_on": "2023-09-01"}]),
    ]
    for headers, kind, rows in ok:
        answer = await register(client, headers, kind, rows)
        assert answer.status_code == 200, (kind, answer.text)
    # One city, enterprise, account and activity, two policies.
    assert await counts() == tuple(n + d for n, d in zip(before, (1, 1, 1, 1, 2), strict=True))


async def test_the_half_rule_counts_the_whole_province(
    client: httpx.AsyncClient, admin: dict[str, str], regional_token: Any
) -> None:
    # 浙江 has 11 prefecture-level cities: at most 5 take part, whoever registers them.
    assert (
        await register(
            client, admin, "cities", [{"city": c} for c in ("330100", "330200", "330300", "330400")]
        )
    ).status_code == 200
    zhejiang = await regional_token(Role.ADMIN, "33")
    assert (await register(client, zhejiang, "cities", [{"city": "330500"}])).status_code == 200
    refused = await register(client, zhejiang, "cities", [{"city": "330600"}])
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "province_city_limit"
    assert "would have 6" in refused.json()["error"]["message"]


async def test_national_admin_only_actions(
    client: httpx.AsyncClient, regional_token: Any, admin: dict[str, str]
) -> None:
    zhejiang = await regional_token(Role.ADMIN, "33")
    campaign = {"name": "x", "first_day": "2024-09-01", "last_day": "2024-09-10"}
    for method, path, body in (
        ("PUT", "/v1/campaigns/2024", campaign),
        ("POST", "/v1/campaigns/2023/publications", {"note": "x"}),
        ("GET", "/v1/quarantine/actions", None),
        ("GET", "/v1/batches/any", None),
    ):
        answer = await client.request(method, path, json=body, headers=zhejiang)
        assert answer.status_code == 403, path
        assert "national" in answer.json()["error"]["message"]
    assert (await client.put("/v1/campaigns/2024", json=campaign, headers=admin)).status_code == 200
