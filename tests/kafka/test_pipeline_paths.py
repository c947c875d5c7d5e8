"""The consumer as one driver of the process's pipeline: it shares the payer-hash
cache safely with HTTP, its records are counted under `source="kafka"` beside
the other paths', and a poll that cannot be stored is set aside, never retried
forever nor stopping the consumer."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.main import create_app
from ingest.backfill import backfill_file
from ingest.consumer import RecordConsumer
from ingest.pipeline import Pipeline
from store.settings import Settings
from tests.factories import push, record
from tests.kafka.feed import (
    Progress,
    message,
    produce,
    register_merchants,
    scalar,
    wait_until,
)
from tests.kafka.test_kafka_consumer import dead_letters
from tests.payer_race import NEW_PAYER, HeldCache

pytestmark = pytest.mark.kafka


@pytest.fixture
async def progress(kafka_settings: Settings) -> AsyncIterator[Progress]:
    async with Progress(kafka_settings) as progress:
        yield progress


@asynccontextmanager
async def consuming(consumer: RecordConsumer) -> AsyncIterator[RecordConsumer]:
    task = asyncio.create_task(consumer.run())
    try:
        yield consumer
    finally:
        consumer.stop()
        await task


def paying(prefix: str, count: int) -> list[dict[str, Any]]:
    return [record(f"{prefix}-{i}", payer_ref=NEW_PAYER) for i in range(count)]


async def test_consumer_and_http_meeting_a_new_payer_are_all_stored(
    engine: AsyncEngine,
    kafka_settings: Settings,
    pipeline: Pipeline,
    client: httpx.AsyncClient,
    provider_token: Any,
    progress: Progress,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await register_merchants(engine)
    cmb = await provider_token("cmb")
    bootstrap, topic = kafka_settings.kafka_bootstrap_servers or "", kafka_settings.kafka_topic
    HeldCache(pipeline.payers, 2, monkeypatch)
    await produce(bootstrap, topic, [message("cmb", paying("k", 5))])
    consumer = RecordConsumer(kafka_settings, engine, pipeline)
    async with consuming(consumer):
        answer = await push(client, cmb, "beside", paying("h", 3))
        assert answer.status_code == 200, answer.text
        await wait_until(progress.all_consumed, within=30, what="the poll to be stored")

        later = await push(client, cmb, "later", paying("L", 4))
        assert later.status_code == 200, later.text
        await produce(bootstrap, topic, [message("cmb", paying("k2", 2))])
        await wait_until(progress.all_consumed, within=30, what="the later poll to be stored")
        assert consumer.running and consumer.failures == 0
    stored = await scalar(
        engine, "SELECT count(*)::text || '/' || count(DISTINCT payer_hash) FROM records"
    )
    assert stored == "14/1"


def counted(source: str, outcome: str, provider: str = "cmb") -> float:
    value = REGISTRY.get_sample_value(
        "payfeed_records_total", {"provider": provider, "outcome": outcome, "source": source}
    )
    return value or 0.0


async def test_metrics_count_records_by_outcome_for_every_source(
    engine: AsyncEngine,
    kafka_settings: Settings,
    pipeline: Pipeline,
    client: httpx.AsyncClient,
    admin: dict[str, str],
    provider_token: Any,
    progress: Progress,
    tmp_path: Path,
) -> None:
    await register_merchants(engine)
    cmb = await provider_token("cmb")
    sources = ("http", "kafka", "backfill", "replay")
    outcomes = ("inserted", "duplicate", "unknown_merchant", "invalid_field")
    before = {(s, o): counted(s, o) for s in sources for o in outcomes}

    def batch(prefix: str) -> list[dict[str, Any]]:
        """2 inserted, 1 duplicate, 1 unknown merchant, 1 invalid."""
        return [
            record(f"{prefix}-1"),
            record(f"{prefix}-2"),
            record(f"{prefix}-1"),
            record(f"{prefix}-held", merchant_id="NEW"),
            record(f"{prefix}-bad", amount_fen=0),
        ]

    assert (await push(client, cmb, "by-http", batch("h"))).status_code == 200
    file = tmp_path / "chunk.ndjson"
    file.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in batch("b")))
    summary = await backfill_file(engine, pipeline, file, provider="cmb", fmt="standard")
    assert summary.error is None
    bootstrap, topic = kafka_settings.kafka_bootstrap_servers or "", kafka_settings.kafka_topic
    await produce(bootstrap, topic, [message("cmb", batch("k"))])
    async with consuming(RecordConsumer(kafka_settings, engine, pipeline)):
        await wait_until(progress.all_consumed, within=30, what="the poll to be stored")
    # The three held records (one per path) go in once their merchant is registered.
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO merchant_accounts (provider, merchant_id, uscc) "
                "SELECT 'cmb', 'NEW', uscc FROM merchant_accounts WHERE merchant_id = 'M1'"
                " AND provider = 'cmb'"
            )
        )
    replayed = await client.post("/v1/quarantine/replay", headers=admin)
    assert replayed.json() == {
        "replayed": 3,
        "inserted": 3,
        "duplicates": 0,
        "still_quarantined": 0,
    }

    metrics = (await client.get("/metrics")).text
    assert 'source="backfill"' in metrics and 'source="replay"' in metrics
    delta = {(s, o): counted(s, o) - before[(s, o)] for s in sources for o in outcomes}
    for source in ("http", "kafka", "backfill"):
        assert [delta[(source, o)] for o in outcomes] == [2, 1, 1, 1], source
    assert [delta[("replay", o)] for o in outcomes] == [3, 0, 0, 0]


async def test_a_poll_that_cannot_be_stored_is_set_aside_and_the_consumer_goes_on(
    engine: AsyncEngine,
    kafka_settings: Settings,
    pipeline: Pipeline,
    progress: Progress,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await register_merchants(engine)
    prepare = pipeline.prepare

    def failing(raw: Any, *args: Any) -> Any:
        if "poison" in raw.frame["txn_id"].to_list():
            raise RuntimeError("a defect met by this poll")
        return prepare(raw, *args)

    monkeypatch.setattr(pipeline, "prepare", failing)
    failed_before = (
        REGISTRY.get_sample_value(
            "payfeed_failed_batches_total", {"source": "kafka", "error": "RuntimeError"}
        )
        or 0
    )
    bootstrap, topic = kafka_settings.kafka_bootstrap_servers or "", kafka_settings.kafka_topic
    consumer = RecordConsumer(kafka_settings, engine, pipeline)
    app = create_app(kafka_settings, "unused")
    app.state.engine, app.state.pipeline, app.state.consumer = engine, pipeline, consumer
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://payfeed") as client,
        consuming(consumer),
    ):
        await produce(bootstrap, topic, [message("cmb", record("poison"), "poison")])
        await wait_until(progress.all_consumed, within=30, what="the poll to be set aside")
        await produce(bootstrap, topic, [message("cmb", record(f"ok-{i}")) for i in range(5)])
        await wait_until(progress.all_consumed, within=30, what="the next polls")
        ready = (await client.get("/readyz")).json()
    assert ready["ready"] is True
    assert ready["consumer"]["failures"] == 1
    assert "RuntimeError: a defect met by this poll" in ready["consumer"]["last_failure"]
    assert await scalar(engine, "SELECT count(*) FROM records") == 5
    held = await scalar(engine, "SELECT jsonb_agg(message) FROM quarantine")
    assert held == ["the poll could not be stored: RuntimeError: a defect met by this poll"]
    letters = await dead_letters(kafka_settings, 1)
    assert [orjson.loads(m.value)["txn_id"] for m in letters] == ["poison"]
    assert dict(letters[0].headers)["error"].startswith(b"malformed: the poll could not be")
    failed = REGISTRY.get_sample_value(
        "payfeed_failed_batches_total", {"source": "kafka", "error": "RuntimeError"}
    )
    assert failed == failed_before + 1
