"""Quarantine replay and discard: once the registry is fixed the held records go
in, once; every action is recorded."""

from datetime import date
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ingest.payers import compact_all
from ingest.rollups import verify_rollups
from tests.cli import run_payfeed
from tests.factories import enterprise_with_account, push, record, register, uscc


async def rows(engine: AsyncEngine, sql: str) -> list[tuple[Any, ...]]:
    async with engine.connect() as conn:
        return [tuple(r) for r in await conn.execute(text(sql))]


async def test_replay_inserts_once_and_keeps_what_is_still_held(
    client: httpx.AsyncClient, admin: dict[str, str], provider_token: Any, engine: AsyncEngine
) -> None:
    cmb = await provider_token("cmb")
    held = [
        record("Q1", merchant_id="NEW", amount_fen=1111, payer_ref="payer-1"),
        record("Q2", merchant_id="NEW", amount_fen=2222, kind="refund"),
        record("Q3", merchant_id="OTHER", amount_fen=3333),
    ]
    assert (await push(client, cmb, "b1", held)).json()["quarantined"] == 3
    # The same unknown record pushed again is held, but not a second time.
    assert (await push(client, cmb, "b2", held[:1])).json()["quarantined"] == 1
    ids = [r[0] for r in await rows(engine, "SELECT id FROM quarantine ORDER BY id")]
    assert len(ids) == 3

    early = await client.post("/v1/quarantine/replay", json={}, headers=admin)
    assert early.json() == {"replayed": 3, "inserted": 0, "duplicates": 0, "still_quarantined": 3}
    # Still held: the same rows, origin kept.
    assert await rows(engine, "SELECT id, batch_id FROM quarantine ORDER BY id") == [
        (ids[0], "b1"),
        (ids[1], "b1"),
        (ids[2], "b1"),
    ]

    code = uscc()
    await register(
        client,
        admin,
        "enterprises",
        [{"uscc": code, "name": "新店", "city": "330100", "kind": "retail"}],
    )
    await register(
        client,
        admin,
        "merchant-accounts",
        [{"provider": "cmb", "merchant_id": "NEW", "uscc": code}],
    )
    replay = await client.post(
        "/v1/quarantine/replay", json={"provider": "cmb", "code": "unknown_merchant"}, headers=admin
    )
    assert replay.json() == {"replayed": 3, "inserted": 2, "duplicates": 0, "still_quarantined": 1}
    again = await client.post("/v1/quarantine/replay", json={"provider": "cmb"}, headers=admin)
    assert again.json() == {"replayed": 1, "inserted": 0, "duplicates": 0, "still_quarantined": 1}

    assert await rows(
        engine, "SELECT txn_id, amount_fen, payer_hash IS NOT NULL FROM records ORDER BY 1"
    ) == [("Q1", 1111, True), ("Q2", 2222, False)]
    assert await rows(engine, "SELECT id, txn_id FROM quarantine") == [(ids[2], "Q3")]
    async with engine.connect() as conn:
        assert await verify_rollups(conn, date(2023, 9, 1), date(2023, 9, 30)) == []
    await compact_all(engine)
    totals = (
        await client.get(
            "/v1/rollups",
            params={"from": "2023-09-10", "to": "2023-09-10"},
            headers=admin,
        )
    ).json()["totals"]
    assert (totals["net_fen"], totals["payer_count"]) == (1111 - 2222, 1)

    actions = (await client.get("/v1/quarantine/actions", headers=admin)).json()
    assert [(a["action"], a["filters"], a["count"]) for a in actions] == [
        ("replay", {"provider": "cmb"}, 1),
        ("replay", {"code": "unknown_merchant", "provider": "cmb"}, 3),
        ("replay", {}, 3),
    ]
    assert all(a["actor"].startswith("token:") for a in actions)


async def test_a_record_stored_meanwhile_is_a_duplicate_and_a_conflict_stays(
    client: httpx.AsyncClient, admin: dict[str, str], provider_token: Any, engine: AsyncEngine
) -> None:
    cmb = await provider_token("cmb")
    await push(client, cmb, "b1", [record("T1", merchant_id="M1")])  # held: M1 unknown
    await enterprise_with_account(client, admin, provider="cmb", merchant_id="M1")
    await push(client, cmb, "b2", [record("T1", merchant_id="M1")])  # now stored
    await push(client, cmb, "b3", [record("T1", merchant_id="M1", amount_fen=5)])  # conflict
    answer = (await client.post("/v1/quarantine/replay", headers=admin)).json()
    assert answer == {"replayed": 2, "inserted": 0, "duplicates": 1, "still_quarantined": 1}
    assert await rows(engine, "SELECT code, batch_id FROM quarantine") == [("conflict", "b3")]


async def test_discard_by_ids_and_filters(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    viewer: dict[str, str],
    provider_token: Any,
    engine: AsyncEngine,
) -> None:
    cmb, ccb = await provider_token("cmb"), await provider_token("ccb")
    await push(client, cmb, "b1", [record("A"), record("B")])
    await push(client, ccb, "b2", [record("C")])
    first = (await rows(engine, "SELECT min(id) FROM quarantine"))[0][0]
    assert (
        await client.post("/v1/quarantine/discard", json={"ids": [first]}, headers=viewer)
    ).status_code == 403
    one = await client.post("/v1/quarantine/discard", json={"ids": [first]}, headers=admin)
    assert one.json() == {"discarded": 1}
    by_provider = await client.post(
        "/v1/quarantine/discard", json={"provider": "ccb"}, headers=admin
    )
    assert by_provider.json() == {"discarded": 1}
    assert await rows(engine, "SELECT txn_id FROM quarantine") == [("B",)]
    bad = await client.post("/v1/quarantine/discard", json={"id": 1}, headers=admin)
    assert bad.status_code == 400
    actions = (await client.get("/v1/quarantine/actions", headers=admin)).json()
    assert [(a["action"], a["filters"], a["count"]) for a in actions] == [
        ("discard", {"provider": "ccb"}, 1),
        ("discard", {"ids": [first]}, 1),
    ]


async def test_command_line_list_replay_discard(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    provider_token: Any,
    engine: AsyncEngine,
    database_url: str,
    tmp_path: Path,
) -> None:
    cmb = await provider_token("cmb")
    await push(client, cmb, "b1", [record("A", merchant_id="M1"), record("B", merchant_id="M2")])
    listed = await run_payfeed(database_url, tmp_path, "quarantine", "list", "--provider", "cmb")
    assert listed.returncode == 0, listed.stderr
    assert len(listed.stdout.splitlines()) == 2 and b"2 held" in listed.stderr
    await enterprise_with_account(client, admin, provider="cmb", merchant_id="M1")
    replayed = await run_payfeed(
        database_url, tmp_path, "quarantine", "replay", "--provider", "cmb"
    )
    assert replayed.returncode == 0, replayed.stderr
    assert b"replayed 2: inserted 1, duplicates 0, still quarantined 1" in replayed.stdout
    discarded = await run_payfeed(
        database_url, tmp_path, "quarantine", "discard", "--code", "unknown_merchant"
    )
    assert discarded.returncode == 0 and b"discarded 1" in discarded.stdout
    assert await rows(
        engine, "SELECT action, actor, count FROM quarantine_actions ORDER BY id"
    ) == [("replay", "cli", 2), ("discard", "cli", 1)]
