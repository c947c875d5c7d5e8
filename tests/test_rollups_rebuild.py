"""`rollups rebuild` recomputes rollups and payer sketches from the records and
swaps them in atomically while batches keep arriving."""

import asyncio
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ingest import payers
from ingest.rollups import rebuild_rollups, verify_rollups
from store.sketches import SKETCH_TABLES
from tests.cli import run_payfeed
from tests.factories import enterprise_with_account, push, record

EVERYTHING = (date(2023, 1, 1), date(2023, 12, 31))


def batch(tag: str, n: int, merchant: str) -> list[dict[str, Any]]:
    return [
        record(
            f"{tag}-{i}",
            merchant_id=merchant,
            amount_fen=100 + i,
            kind="refund" if i % 7 == 0 else "payment",
            occurred_at=f"2023-09-{10 + i % 3}T{i % 24:02d}:00:00+08:00",
            channel="online" if i % 2 else "offline",
            payer_ref=f"payer-{i % 23}",
        )
        for i in range(n)
    ]


async def differences(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        return await verify_rollups(conn, *EVERYTHING)


async def exact_payers(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    async with engine.connect() as conn:
        result = await conn.execute(
            text(
                "SELECT day, city, count(DISTINCT payer_hash) FROM records "
                "GROUP BY day, city ORDER BY day, city"
            )
        )
        return [(str(day), city, count) for day, city, count in result]


async def estimated_payers(
    client: httpx.AsyncClient, viewer: dict[str, str]
) -> list[tuple[Any, ...]]:
    params = {"dims": "day,city", "from": "2023-09-01", "to": "2023-09-30"}
    rows = (await client.get("/v1/rollups", params=params, headers=viewer)).json()["rows"]
    return [(r["day"], r["city"], r["payer_count"]) for r in rows]


async def test_rebuild_under_concurrent_ingestion_ends_equal_to_a_recount(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    viewer: dict[str, str],
    provider_token: Any,
    engine: AsyncEngine,
) -> None:
    senders = {"cmb": await provider_token("cmb"), "ccb": await provider_token("ccb")}
    for provider, city in (("cmb", "330100"), ("ccb", "320100")):
        await enterprise_with_account(client, admin, provider=provider, merchant_id="M1", city=city)
    for provider, headers in senders.items():
        assert (
            await push(client, headers, f"{provider}-0", batch(f"{provider}0", 60, "M1"))
        ).status_code == 200
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE rollup_city_day SET gross_fen = gross_fen + 1"))
        await conn.execute(text("DELETE FROM rollup_enterprise_day WHERE channel = 'online'"))
        await conn.execute(text("DELETE FROM rollup_city_day_payers"))
    assert await differences(engine) != []

    started = {provider: asyncio.Event() for provider in senders}
    rebuilt = asyncio.Event()
    clock = asyncio.get_running_loop().time
    spans: list[tuple[float, float]] = []
    rebuilding: list[float] = []

    async def send(provider: str) -> None:
        """Batches back to back until two more have gone in after the rebuild."""
        previous: list[dict[str, Any]] = []
        after, n = 0, 0
        while after < 2:
            n += 1
            fresh = batch(f"{provider}{n}", 40, "M1")
            # Each batch repeats half the previous one: duplicates, not double counts.
            began = clock()
            answer = await push(
                client, senders[provider], f"{provider}-{n}", [*fresh, *previous[:20]]
            )
            spans.append((began, clock()))
            assert answer.status_code == 200, answer.text
            assert (answer.json()["inserted"], answer.json()["duplicates"]) == (
                40,
                len(previous[:20]),
            )
            previous = fresh
            started[provider].set()
            after += rebuilt.is_set()

    async def rebuild() -> dict[str, int]:
        await asyncio.gather(*(e.wait() for e in started.values()))
        rebuilding.append(clock())
        try:
            async with engine.begin() as conn:
                return await rebuild_rollups(conn, *EVERYTHING)
        finally:
            rebuilding.append(clock())
            rebuilt.set()

    *_, written = await asyncio.wait_for(asyncio.gather(send("cmb"), send("ccb"), rebuild()), 60)
    assert any(began < rebuilding[1] and ended > rebuilding[0] for began, ended in spans)
    assert written["rollup_city_day"] > 0 and written["rollup_enterprise_day_payers"] > 0
    assert await differences(engine) == []
    assert await estimated_payers(client, viewer) == await exact_payers(engine)


async def test_a_rebuild_meeting_a_compaction_half_way_waits_for_it(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    viewer: dict[str, str],
    provider_token: Any,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The compactor writes the sketch tables one by one; a rebuild locks them all.
    Held after its first table, the compactor has that table and wants the next
    ones: a rebuild that locked them in another order would hold one of those and
    wait for the first, and PostgreSQL would end one of the two as a deadlock.
    Locked in the compactor's order, the rebuild waits, then recounts."""
    cmb = await provider_token("cmb")
    await enterprise_with_account(client, admin, provider="cmb", merchant_id="M1")
    assert (await push(client, cmb, "b-0", batch("c0", 60, "M1"))).status_code == 200
    holding, go_on = asyncio.Event(), asyncio.Event()
    merge_into = payers._merge_into

    async def held_after_the_first_table(pg: Any, table: Any, keyed: Any, items: Any) -> None:
        await merge_into(pg, table, keyed, items)
        if table is SKETCH_TABLES[0]:
            holding.set()
            await go_on.wait()

    monkeypatch.setattr(payers, "_merge_into", held_after_the_first_table)

    async def compact() -> int:
        async with engine.begin() as conn:
            return await payers.compact_payers(conn)

    async def rebuild() -> dict[str, int]:
        await holding.wait()
        async with engine.begin() as conn:
            return await rebuild_rollups(conn, *EVERYTHING)

    async def rebuild_waits_on_a_lock() -> bool:
        async with engine.connect() as conn:
            waiting = await conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE 'LOCK TABLE%'"
                )
            )
            return bool(waiting.scalar())

    compacting, rebuilding = asyncio.create_task(compact()), asyncio.create_task(rebuild())
    await asyncio.wait_for(holding.wait(), 30)
    for _ in range(200):
        if await rebuild_waits_on_a_lock():
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the rebuild never waited for the compactor")
    go_on.set()
    merged, written = await asyncio.wait_for(asyncio.gather(compacting, rebuilding), 30)
    assert merged == 1 and written["payers_day"] > 0
    assert await differences(engine) == []
    assert await estimated_payers(client, viewer) == await exact_payers(engine)


async def test_command_line_rebuild_of_a_range(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    viewer: dict[str, str],
    provider_token: Any,
    engine: AsyncEngine,
    database_url: str,
    tmp_path: Path,
) -> None:
    cmb = await provider_token("cmb")
    await enterprise_with_account(client, admin, provider="cmb", merchant_id="M1")
    await push(client, cmb, "b1", batch("T", 30, "M1"))
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE rollup_city_day SET refund_fen = 0"))
        await conn.execute(text("DELETE FROM rollup_enterprise_day_payers"))
    broken = await differences(engine)
    assert {d["day"] for d in broken} == {date(2023, 9, 10), date(2023, 9, 11), date(2023, 9, 12)}
    done = await run_payfeed(
        database_url, tmp_path, "rollups", "rebuild", "--from", "2023-09-10", "--to", "2023-09-11"
    )
    assert done.returncode == 0, done.stderr
    assert b"rollup_city_day: " in done.stdout
    assert {d["day"] for d in await differences(engine)} == {date(2023, 9, 12)}
    verify = await run_payfeed(database_url, tmp_path, "rollups", "verify")
    assert verify.returncode == 1
    enterprise = await client.get(
        "/v1/rollups",
        params={"dims": "day,enterprise", "from": "2023-09-10", "to": "2023-09-12"},
        headers=viewer,
    )
    assert [r["payer_count"] > 0 for r in enterprise.json()["rows"]] == [True, True, False]
