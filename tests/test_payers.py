"""payer_count: distinct payers from HyperLogLog sketches, within the stated
error at 100,000 payers, mergeable across days, cities and enterprises."""

import hmac
import threading
from datetime import date
from typing import Any

import httpx
import polars as pl
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ingest import normalise, payers
from ingest.normalise import PayerHashes, payer_hasher
from ingest.payers import PAYER_COLUMNS, compact_all, compact_payers, queue_payers
from ingest.rollups import rebuild_rollups
from store.sketches import RELATIVE_STANDARD_ERROR
from tests.factories import enterprise_with_account, push, record

PAYERS = 100_000
BOUND = 3 * RELATIVE_STANDARD_ERROR  # ±4.9 %: 99.7 % of estimates


def within(estimate: int, exact: int) -> bool:
    return abs(estimate - exact) <= BOUND * exact


def test_payer_hasher_is_hmac_sha256() -> None:
    # RFC 4231 test case 1, then keys shorter than, as long as and longer than a block.
    rfc = payer_hasher(bytes([0x0B] * 20))(b"Hi There").hex()
    assert rfc == "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    for key in (b"", b"k", bytes(range(64)), bytes(range(200))):
        assert payer_hasher(key)(b"payer-1") == hmac.digest(key, b"payer-1", "sha256")


def test_payer_hashes_are_the_hmacs_whether_remembered_or_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(normalise, "PAYER_CACHE", 3)
    hashes = PayerHashes(b"secret")
    for refs in (["a", "b"], ["b", "c", "d"], ["a", "d", "e"], []):
        got = hashes.of(pl.Series(refs, dtype=pl.String))
        assert dict(got.iter_rows()) == {
            ref: hmac.digest(b"secret", ref.encode(), "sha256") for ref in refs
        }
    assert hashes._cached[0]["payer_ref"].to_list() == ["d", "a", "e"]  # the three hashed last


async def test_stored_payer_hash_is_the_hmac_of_the_reference(
    client: httpx.AsyncClient, admin: dict[str, str], provider_token: Any, engine: AsyncEngine
) -> None:
    cmb = await provider_token("cmb")
    await enterprise_with_account(client, admin, provider="cmb", merchant_id="M1")
    batch = [record("A", payer_ref="payer-1"), record("B", payer_ref="payer-1"), record("C")]
    assert (await push(client, cmb, "b1", batch)).json()["inserted"] == 3
    async with engine.connect() as conn:
        stored = dict((await conn.execute(text("SELECT txn_id, payer_hash FROM records"))).all())
    assert stored == {
        "A": hmac.digest(b"test-secret", b"payer-1", "sha256"),
        "B": hmac.digest(b"test-secret", b"payer-1", "sha256"),
        "C": None,
    }


async def payer_counts(
    client: httpx.AsyncClient, viewer: dict[str, str], dims: str, **filters: str
) -> dict[str, Any]:
    params = {"dims": dims, "from": "2023-09-09", "to": "2023-09-30", **filters}
    response = await client.get("/v1/rollups", params=params, headers=viewer)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def test_payer_count_within_the_stated_error(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    viewer: dict[str, str],
    provider_token: Any,
    engine: AsyncEngine,
) -> None:
    cmb = await provider_token("cmb")
    await enterprise_with_account(client, admin, provider="cmb", merchant_id="HZ")
    await enterprise_with_account(client, admin, provider="cmb", merchant_id="NJ", city="320100")
    # 120,000 payments by 100,000 payers over two cities and three days; every
    # fifth payer pays again, on another day and in the other city.
    visits = [*range(PAYERS), *(p + PAYERS for p in range(0, PAYERS, 5))]
    records = []
    by_day: dict[str, set[int]] = {}
    for i, visit in enumerate(visits):
        payer, again = visit % PAYERS, visit // PAYERS
        day = f"2023-09-{10 + (payer + again) % 3}"
        by_day.setdefault(day, set()).add(payer)
        records.append(
            record(
                f"T{i}",
                merchant_id=("HZ", "NJ")[(payer + again) % 2],
                occurred_at=f"{day}T12:00:00+08:00",
                payer_ref=f"payer-{payer}",
            )
        )
    assert len(records) == 120_000 and sum(len(s) for s in by_day.values()) == 120_000
    for n in range(4):
        answer = await push(client, cmb, f"b{n}", records[n * 30_000 : (n + 1) * 30_000])
        assert answer.json()["inserted"] == 30_000
    # A small set is counted exactly: 5 payments by 3 payers on another day.
    small = [
        record(
            f"S{i}",
            occurred_at="2023-09-20T12:00:00+08:00",
            merchant_id="HZ",
            payer_ref=f"small-{i % 3}",
        )
        for i in range(5)
    ]
    await push(client, cmb, "small", [*small, record("S9", merchant_id="HZ")])
    # Exact at once; payers once the queue is merged.
    queued = (await payer_counts(client, viewer, ""))["rows"][0]
    assert (queued["txn_count"], queued["payer_count"]) == (120_006, 0)
    assert await compact_all(engine) == 5

    total = (await payer_counts(client, viewer, ""))["rows"][0]["payer_count"]
    assert within(total - 3, PAYERS), total
    days = await payer_counts(client, viewer, "day")
    for row in days["rows"]:
        exact = len(by_day.get(row["day"], ())) or 3
        assert within(row["payer_count"], exact), (row["day"], row["payer_count"], exact)
    assert days["totals"]["payer_count"] == total  # a total merges, it does not add
    assert [r["payer_count"] for r in days["rows"]][-1] == 3
    by_enterprise = await payer_counts(client, viewer, "enterprise")
    assert by_enterprise["totals"]["payer_count"] == total
    hangzhou = await payer_counts(client, viewer, "day", city="330100", channel="offline")
    assert hangzhou["rows"][-1]["payer_count"] == 3

    async with engine.begin() as conn:
        await rebuild_rollups(conn, date(2023, 9, 1), date(2023, 9, 30))
    rebuilt = (await payer_counts(client, viewer, ""))["rows"][0]["payer_count"]
    assert within(rebuilt - 3, PAYERS), rebuilt


async def test_one_compactor_at_a_time_and_a_merge_twice_counts_once(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    viewer: dict[str, str],
    provider_token: Any,
    engine: AsyncEngine,
) -> None:
    cmb = await provider_token("cmb")
    await enterprise_with_account(client, admin, provider="cmb", merchant_id="HZ")
    batch = [record(f"T{i}", merchant_id="HZ", payer_ref=f"p{i % 7}") for i in range(20)]
    assert (await push(client, cmb, "b1", batch[:10])).status_code == 200
    assert (await push(client, cmb, "b2", batch[10:])).status_code == 200
    async with engine.begin() as first, engine.begin() as second:
        assert await compact_payers(first, budget=1) == 1  # at least one batch
        # One batch is still queued, but the first holds the lock until it commits.
        assert await compact_payers(second) == 0
    assert await compact_all(engine) == 1
    assert (await payer_counts(client, viewer, ""))["rows"][0]["payer_count"] == 7
    # The same payers queued again (as a merge that raced a rebuild would see
    # them) leave every count as it is.
    async with engine.begin() as conn:
        await queue_payers(conn, await stored_payers(conn))
    assert await compact_all(engine) == 1
    assert (await payer_counts(client, viewer, ""))["rows"][0]["payer_count"] == 7


async def stored_payers(conn: AsyncConnection) -> pl.DataFrame:
    rows = await conn.execute(text(f"SELECT {', '.join(PAYER_COLUMNS)} FROM records"))
    return pl.DataFrame([dict(r) for r in rows.mappings()], orient="row")


async def test_a_merge_takes_the_oldest_batches_up_to_its_budget(
    client: httpx.AsyncClient, admin: dict[str, str], provider_token: Any, engine: AsyncEngine
) -> None:
    cmb = await provider_token("cmb")
    await enterprise_with_account(client, admin, provider="cmb", merchant_id="HZ")
    for n in range(3):
        batch = [record(f"T{n}-{i}", merchant_id="HZ", payer_ref=f"p{n}-{i}") for i in range(5)]
        assert (await push(client, cmb, f"b{n}", batch)).status_code == 200
    async with engine.begin() as conn:
        sizes = (
            (await conn.execute(text("SELECT octet_length(payers) FROM payer_queue ORDER BY id")))
            .scalars()
            .all()
        )
        assert len(sizes) == 3
        assert await compact_payers(conn, budget=sizes[0] + sizes[1]) == 2
        left = (await conn.execute(text("SELECT count(*) FROM payer_queue"))).scalar_one()
        assert left == 1


async def test_a_merge_updates_sketches_off_the_event_loop(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    provider_token: Any,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A round's sketch work is seconds of CPU at scale: on the event loop's thread
    it would hold every request of the API process until it is done."""
    cmb = await provider_token("cmb")
    await enterprise_with_account(client, admin, provider="cmb", merchant_id="M1")
    batch = [record(f"T{i}", payer_ref=f"payer-{i}") for i in range(50)]
    assert (await push(client, cmb, "b1", batch)).status_code == 200
    threads: set[int] = set()
    update = payers.updated

    def noting_the_thread(items: Any, base: Any = None) -> Any:
        threads.add(threading.get_ident())
        return update(items, base)

    monkeypatch.setattr(payers, "updated", noting_the_thread)
    assert await compact_all(engine) == 1
    assert threads and threading.get_ident() not in threads
