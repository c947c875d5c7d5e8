"""Batches that meet the same new payer reference at the same time, on every path
that shares the process's payer-hash cache (through its one `Pipeline`): each is
stored, the reference is cached once, and every later batch with that payer is
stored too. (The Kafka consumer's case is in tests/kafka/, beside its broker; a
quarantine replay brings hashes, not references, and runs beside the others.)

Once the cache held a reference twice, every batch carrying that payer failed
(`ShapeError` in the join), which HTTP answered with a 500 and the consumer
stopped on."""

import asyncio
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import polars as pl
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ingest.adapters.standard import from_objects
from ingest.backfill import backfill_file
from ingest.normalise import PayerHashes, Window, normalise, payer_hasher
from ingest.pipeline import Pipeline
from tests.factories import enterprise_with_account, push, record
from tests.payer_race import NEW_PAYER, HeldCache

SECRET = b"test-secret"
WINDOW = Window(datetime(2023, 1, 1).date(), datetime(2024, 12, 31).date())


@pytest.fixture
def held(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> Any:
    """`held(parties)`: the next `parties` hashings of `NEW_PAYER` by the test's
    pipeline meet inside its cache."""

    def hold(parties: int) -> None:
        HeldCache(pipeline.payers, parties, monkeypatch)

    return hold


def paying(prefix: str, count: int) -> list[dict[str, Any]]:
    """`count` records of the new payer."""
    return [record(f"{prefix}-{i}", payer_ref=NEW_PAYER) for i in range(count)]


def batch(prefix: str, count: int = 3) -> pl.DataFrame:
    return from_objects(paying(prefix, count)).frame


def test_threads_meeting_a_new_payer_cache_it_once(monkeypatch: pytest.MonkeyPatch) -> None:
    payers = PayerHashes(SECRET)
    HeldCache(payers, 4, monkeypatch)
    now = datetime.now(UTC)
    results: list[Any] = []

    def run(prefix: str) -> None:
        results.append(normalise(batch(prefix), now=now, window=WINDOW, payers=payers))

    threads = [threading.Thread(target=run, args=(f"t{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4

    later = normalise(batch("later", 5), now=now, window=WINDOW, payers=payers)
    expected = payer_hasher(SECRET)(NEW_PAYER.encode())
    assert later.records["payer_hash"].to_list() == [expected] * 5
    for result in results:
        assert result.records["payer_hash"].to_list() == [expected] * 3


async def test_http_batches_meeting_a_new_payer_are_all_stored(
    client: httpx.AsyncClient, admin: dict[str, str], provider_token: Any, held: Any
) -> None:
    cmb = await provider_token("cmb")
    await enterprise_with_account(client, admin, provider="cmb", merchant_id="M1")
    held(2)
    answers = await asyncio.gather(
        *(push(client, cmb, f"race-{n}", paying(f"r{n}", 3)) for n in range(2))
    )
    assert [a.status_code for a in answers] == [200, 200]
    later = await push(client, cmb, "later", paying("L", 4))
    assert later.status_code == 200, later.text
    assert later.json()["inserted"] == 4


async def test_backfill_http_and_replay_meeting_a_new_payer_are_all_stored(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    provider_token: Any,
    engine: AsyncEngine,
    pipeline: Pipeline,
    held: Any,
    tmp_path: Path,
) -> None:
    cmb = await provider_token("cmb")
    await enterprise_with_account(client, admin, provider="cmb", merchant_id="M1")
    unknown = record("Q1", merchant_id="M2", payer_ref="P-HELD")
    assert (await push(client, cmb, "held", [unknown])).json()["quarantined"] == 1
    await enterprise_with_account(client, admin, provider="cmb", merchant_id="M2")
    file = tmp_path / "records.ndjson"
    file.write_bytes(b"".join(orjson.dumps(item) + b"\n" for item in paying("f", 5)))
    held(2)
    summary, answer, replayed = await asyncio.gather(
        backfill_file(engine, pipeline, file, provider="cmb", fmt="standard"),
        push(client, cmb, "beside", paying("h", 3)),
        client.post("/v1/quarantine/replay", headers=admin),
    )
    assert summary.error is None and summary.counts["inserted"] == 5
    assert answer.status_code == 200, answer.text
    assert replayed.json()["inserted"] == 1

    later = await push(client, cmb, "later", paying("L", 4))
    assert later.status_code == 200, later.text
    assert later.json()["inserted"] == 4
    async with engine.connect() as conn:
        hashes = (
            await conn.execute(text("SELECT count(DISTINCT payer_hash), count(*) FROM records"))
        ).one()
    assert tuple(hashes) == (2, 13)
