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


async def test_listing_pages_by_cursor_filters_by_arrival_and_gives_csv(
    client: httpx.AsyncClient, admin: dict[str, str], provider_token: Any, engine: AsyncEngine
) -> None:
    cmb = await provider_token("cmb")
    held = [record(f"H{i}", merchant_id="NOBODY", amount_fen=100 + i) for i in range(5)]
    assert (await push(client, cmb, "held-1", held)).json()["quarantined"] == 5
    async with engine.begin() as conn:  # two arrived the day before (Asia/Shanghai)
        await conn.execute(
            text(
                "UPDATE quarantine SET created_at = '2023-10-01 23:30:00+08' "
                "WHERE txn_id IN ('H0', 'H1')"
            )
        )
    first = (await client.get("/v1/quarantine?limit=2", headers=admin)).json()
    assert (first["total"], [i["txn_id"] for i in first["items"]]) == (5, ["H0", "H1"])
    second = (
        await client.get(f"/v1/quarantine?limit=2&cursor={first['next_cursor']}", headers=admin)
    ).json()
    assert [i["txn_id"] for i in second["items"]] == ["H2", "H3"]
    third = (
        await client.get(f"/v1/quarantine?limit=2&cursor={second['next_cursor']}", headers=admin)
    ).json()
    assert ([i["txn_id"] for i in third["items"]], third["next_cursor"]) == (["H4"], None)

    day = (await client.get("/v1/quarantine?from=2023-10-01&to=2023-10-01", headers=admin)).json()
    assert (day["total"], [i["txn_id"] for i in day["items"]]) == (2, ["H0", "H1"])
    later = (await client.get("/v1/quarantine?from=2023-10-02", headers=admin)).json()
    assert later["total"] == 3

    csv_answer = await client.get(
        "/v1/quarantine?code=unknown_merchant&limit=4&format=csv", headers=admin
    )
    assert csv_answer.headers["content-type"] == "text/csv; charset=utf-8"
    lines = csv_answer.text.splitlines()
    assert lines[0] == "id,created_at,provider,code,txn_id,batch_id,message,record"
    assert len(lines) == 5 and lines[1].split(",")[2:6] == [
        "cmb",
        "unknown_merchant",
        "H0",
        "held-1",
    ]
    assert csv_answer.headers["x-next-cursor"]

    for url, code in (
        ("/v1/quarantine?code=bogus", "unknown_code"),
        ("/v1/quarantine?cursor=nonsense", "bad_cursor"),
        ("/v1/quarantine?from=2023-13-01", "invalid_request"),
    ):
        answer = await client.get(url, headers=admin)
        assert (answer.status_code, answer.json()["error"]["code"]) == (400, code), url
    bogus = await client.get("/v1/quarantine?code=bogus", headers=admin)
    assert bogus.json()["error"]["message"] == "code is one of conflict, unknown_merchant"


async def test_command_line_names_the_valid_codes(database_url: str, tmp_path: Path) -> None:
    done = await run_payfeed(database_url, tmp_path, "quarantine", "list", "--code", "bogus")
    assert done.returncode == 2
    assert done.stderr.decode().strip() == (
        "error: unknown_code: code is one of conflict, unknown_merchant"
    )
