"""The audit trail: every write route, found in the app's route table, leaves
exactly one audit row per call with its actor (token id, role, region); a call
refused leaves none; audit rows are never updated or deleted; `GET /v1/audit`
(national admin) and `payfeed audit` filter them."""

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.records import Role
from tests.cli import run_payfeed
from tests.factories import record, uscc
from tests.test_scope_routes import routes
from tests.two_provinces import seed

CAMPAIGN = {"name": "金秋", "first_day": "2024-09-01", "last_day": "2024-09-10"}
ACTIVITY = {
    "city": "330100",
    "theme": "t",
    "title": "审计",
    "first_day": "2023-09-09",
    "last_day": "2023-09-09",
    "sessions": 2,
}


def samples(usccs: dict[str, str]) -> dict[tuple[str, str], tuple[str, Any, str]]:
    """Per write route: who calls it (`national`, `zhejiang`, `provider`), a valid
    JSON body, and the audit action it records."""
    fresh = uscc()
    return {
        ("PUT", "/v1/campaigns/{code}"): ("national", CAMPAIGN, "campaign.put"),
        ("POST", "/v1/campaigns/{code}/publications"): ("national", {}, "publication.create"),
        ("POST", "/v1/registry/cities"): ("zhejiang", [{"city": "330300"}], "registry.cities"),
        ("POST", "/v1/registry/enterprises"): (
            "zhejiang",
            [{"uscc": fresh, "name": "温州百货", "city": "330300", "kind": "retail"}],
            "registry.enterprises",
        ),
        ("POST", "/v1/registry/merchant-accounts"): (
            "zhejiang",
            [{"provider": "cmb", "merchant_id": "M-audit", "uscc": usccs["330100"]}],
            "registry.merchant-accounts",
        ),
        ("POST", "/v1/registry/activities"): ("zhejiang", [ACTIVITY], "registry.activities"),
        ("POST", "/v1/registry/policies"): (
            "zhejiang",
            [{"unit": "33", "title": "审计", "issued_on": "2023-09-01"}],
            "registry.policies",
        ),
        ("POST", "/v1/registry/providers"): (
            "national",
            [{"provider": "icbc", "name": "工商银行", "kind": "bank", "delivery": "daily"}],
            "registry.providers",
        ),
        ("POST", "/v1/quarantine/replay"): ("zhejiang", {}, "quarantine.replay"),
        ("POST", "/v1/quarantine/discard"): (
            "national",
            {"code": "conflict"},
            "quarantine.discard",
        ),
        ("POST", "/v1/reports/{campaign}/submissions"): (
            "zhejiang",
            {"note": "审计"},
            "submission.create",
        ),
        ("POST", "/v1/batches"): (
            "provider",
            [record("T-audit", merchant_id="M-330100")],
            "batch.push",
        ),
    }


async def last_audit(engine: AsyncEngine) -> tuple[int, dict[str, Any] | None]:
    async with engine.connect() as conn:
        count = (await conn.execute(text("SELECT count(*) FROM audit"))).scalar_one()
        row = (await conn.execute(text("SELECT * FROM audit ORDER BY id DESC LIMIT 1"))).first()
    return count, None if row is None else dict(row._mapping)


async def token_id(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        newest: int = (await conn.execute(text("SELECT max(id) FROM tokens"))).scalar_one()
    return newest


async def test_every_write_route_leaves_one_audit_row_with_its_actor(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin: dict[str, str],
    provider_token: Any,
    regional_token: Any,
    engine: AsyncEngine,
) -> None:
    seeded = await seed(client, admin, provider_token)
    national_id = 1  # the `admin` fixture's token, created first
    callers: dict[str, tuple[dict[str, str], int, str, str | None]] = {
        "national": (admin, national_id, "admin", None),
    }
    callers["zhejiang"] = (
        await regional_token(Role.ADMIN, "33"),
        await token_id(engine),
        "admin",
        "33",
    )
    callers["provider"] = (await provider_token("cmb"), await token_id(engine), "provider", None)
    viewer = await regional_token(Role.VIEWER, "33")
    table = samples(seeded.usccs)
    writes = [(m, p) for m, p in routes(app) if m != "GET"]
    missing = sorted(set(writes) - set(table))
    assert not missing, f"write routes without an audit sample here: {missing}"
    for method, path in writes:
        who, body, action = table[method, path]
        headers, actor, role, region = callers[who]
        if path == "/v1/batches":
            headers = {**headers, "X-Batch-Id": "audit"}
        concrete = path.replace("{code}", "2024" if method == "PUT" else "2023").replace(
            "{campaign}", "2023"
        )
        before, _ = await last_audit(engine)
        answer = await client.request(method, concrete, json=body, headers=headers)
        assert answer.status_code in (200, 201), (path, answer.text)
        after, row = await last_audit(engine)
        assert after == before + 1, path
        assert row is not None
        assert (row["action"], row["actor_token_id"], row["role"], row["region"]) == (
            action,
            actor,
            role,
            region,
        ), path
        # A refused call leaves no row: the same call by a province viewer.
        refused = await client.request(method, concrete, json=body, headers=viewer)
        assert refused.status_code == 403, path
        assert (await last_audit(engine))[0] == after, path


async def test_audit_rows_are_append_only_and_filtered(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    regional_token: Any,
    engine: AsyncEngine,
    database_url: str,
    tmp_path: Path,
) -> None:
    zhejiang = await regional_token(Role.ADMIN, "33")
    zhejiang_id = await token_id(engine)
    registered = await client.post(
        "/v1/registry/cities", json=[{"city": "330100"}, {"city": "330200"}], headers=zhejiang
    )
    assert registered.status_code == 200
    assert (await client.put("/v1/campaigns/2024", json=CAMPAIGN, headers=admin)).status_code == 200
    for statement in ("UPDATE audit SET count = 0", "DELETE FROM audit"):
        with pytest.raises(DBAPIError, match="append-only"):
            async with engine.begin() as conn:
                await conn.execute(text(statement))
    assert (await client.get("/v1/audit", headers=zhejiang)).status_code == 403
    every = (await client.get("/v1/audit", headers=admin)).json()
    # Newest first: the campaign, the registration, the two tokens' creation.
    assert [row["action"] for row in every] == [
        "campaign.put",
        "registry.cities",
        "token.create",
        "token.create",
    ]
    assert every[1] | {"id": 0, "at": ""} == {
        "id": 0,
        "at": "",
        "actor_token_id": zhejiang_id,
        "role": "admin",
        "region": "33",
        "action": "registry.cities",
        "target": "campaign 2023",
        "count": 2,
    }
    assert every[3]["role"] == "cli" and every[3]["actor_token_id"] is None
    mine = (await client.get(f"/v1/audit?actor={zhejiang_id}", headers=admin)).json()
    assert [row["action"] for row in mine] == ["registry.cities"]
    tokens = (await client.get("/v1/audit?action=token.", headers=admin)).json()
    assert len(tokens) == 2
    none = (await client.get("/v1/audit?from=2100-01-01", headers=admin)).json()
    assert none == []
    since = (await client.get(f"/v1/audit?from={every[1]['at']}", headers=admin)).json()
    assert [row["action"] for row in since] == ["campaign.put", "registry.cities"]
    listed = await run_payfeed(database_url, tmp_path, "audit", "--action", "registry.cities")
    assert listed.returncode == 0, listed.stderr
    (line,) = listed.stdout.decode().splitlines()
    assert orjson.loads(line)["actor_token_id"] == zhejiang_id


async def test_command_line_changes_are_audited_as_cli(
    engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    cities = tmp_path / "cities.csv"
    cities.write_text("city\n330100\n")
    commands = [
        (("tokens", "create", "--role", "admin", "--region", "33"), "token.create", 1),
        (("tokens", "revoke", "1"), "token.revoke", 1),
        (("registry", "import", "--kind", "cities", str(cities)), "registry.cities", 1),
        (
            ("rollups", "rebuild", "--from", "2023-09-09", "--to", "2023-09-10"),
            "rollups.rebuild",
            0,
        ),
        (("quarantine", "discard", "--code", "conflict"), "quarantine.discard", 0),
        (("publish", "--campaign", "2023"), "publication.create", 1),
        (("report", "submit", "--region", "33"), "submission.create", 1),
    ]
    for args, action, count in commands:
        before, _ = await last_audit(engine)
        done = await run_payfeed(database_url, tmp_path, *args)
        assert done.returncode == 0, (args, done.stderr)
        after, row = await last_audit(engine)
        assert after == before + 1, args
        assert row is not None
        assert (row["action"], row["role"], row["actor_token_id"], row["region"], row["count"]) == (
            action,
            "cli",
            None,
            None,
            count,
        ), args
