"""The consumer in-process on a real broker: exact outcomes for a large feed with
duplicates and bad messages, and no loss while the database comes and goes."""

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncEngine

from app.main import create_app
from ingest.consumer import RecordConsumer
from ingest.pipeline import Pipeline
from store.db import create_engine
from store.settings import Settings
from tests.kafka.conftest import PARTITIONS
from tests.kafka.feed import (
    Progress,
    assert_exact,
    make_records,
    message,
    messages_of,
    produce,
    register_merchants,
    scalar,
    stored_at_least,
    wait_until,
)
from tests.kafka.proxy import database_proxy

pytestmark = pytest.mark.kafka

PAN = "4111111111111111"


def counted(outcome: str) -> float:
    return sum(
        REGISTRY.get_sample_value(
            "payfeed_records_total", {"provider": p, "outcome": outcome, "source": "kafka"}
        )
        or 0
        for p in ("cmb", "icbc")
    )


def lag(topic: str) -> float:
    return sum(
        REGISTRY.get_sample_value("payfeed_kafka_lag", {"topic": topic, "partition": str(p)}) or 0
        for p in range(PARTITIONS)
    )


@pytest.fixture
async def progress(kafka_settings: Settings) -> AsyncIterator[Progress]:
    async with Progress(kafka_settings) as progress:
        yield progress


async def dead_letters(settings: Settings, count: int) -> list[Any]:
    assert settings.kafka_bootstrap_servers and settings.kafka_dlq_topic
    reader = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await reader.start()
    try:
        partitions = [TopicPartition(settings.kafka_dlq_topic, p) for p in range(PARTITIONS)]
        reader.assign(partitions)
        await reader.seek_to_beginning(*partitions)
        found: list[Any] = []

        async def all_read() -> bool:
            batch = await reader.getmany(timeout_ms=200)
            found.extend(m for messages in batch.values() for m in messages)
            return len(found) >= count

        await wait_until(all_read, within=30, what="the dead letters")
        return found
    finally:
        await reader.stop()


async def test_large_feed_with_duplicates_and_bad_messages_is_exact(
    engine: AsyncEngine, kafka_settings: Settings, progress: Progress, pipeline: Pipeline
) -> None:
    merchants = await register_merchants(engine)
    records = make_records(merchants, 50_000, prefix="a", seed=1)
    rng = random.Random(2)
    copies = rng.sample(records, 5_000)
    extra = make_records(merchants, 5, prefix="x", seed=4)
    cmb_extra = [(m, r) for m, r in extra if m.provider == "cmb"]
    bad = [
        message("cmb", f'{{"txn_id": "b1", "note": "card {PAN}"'.encode(), "b1"),
        message(None, records[0][1], records[0][1]["txn_id"]),
        message("cmb", 42),
        message("icbc", "a string"),
        message("cmb", None, "tombstone"),
        (None, b"{}", [("provider", b"\xff\xfe")]),
    ]
    invalid = [
        message("cmb", [*(r for _, r in cmb_extra), 7]),
        message("cmb", {**extra[0][1], "txn_id": "usd-1", "currency": "USD"}),
        *(
            message("cmb", {**extra[0][1], "txn_id": f"nope-{i}", "merchant_id": "NOPE"})
            for i in range(3)
        ),
    ]
    outgoing = messages_of(records + copies, arrays=0.2, seed=3) + bad + invalid
    rng.shuffle(outgoing)
    inserted_before, duplicates_before = counted("inserted"), counted("duplicate")
    await produce(
        kafka_settings.kafka_bootstrap_servers or "", kafka_settings.kafka_topic, outgoing
    )

    consumer = RecordConsumer(kafka_settings, engine, pipeline)
    consuming = asyncio.create_task(consumer.run())
    try:
        await wait_until(progress.all_consumed, within=120, what="the feed to be consumed")
        # Conflicting versions, once their originals are surely stored: the originals stand.
        conflicts = [
            message(m.provider, {**r, "amount_fen": r["amount_fen"] + 1}, r["txn_id"])
            for m, r in records[:2]
        ]
        await produce(
            kafka_settings.kafka_bootstrap_servers or "", kafka_settings.kafka_topic, conflicts
        )
        await wait_until(progress.all_consumed, within=30, what="the conflicts to be consumed")
        assert consumer.running
    finally:
        consumer.stop()
        await consuming
    assert not consumer.running

    await assert_exact(engine, records + cmb_extra)
    held = await scalar(
        engine,
        "SELECT jsonb_object_agg(code, n) FROM "
        "(SELECT code, count(*) AS n FROM quarantine GROUP BY code) c",
    )
    assert held == {"malformed": 6, "unknown_merchant": 3, "conflict": 2}
    assert counted("inserted") - inserted_before == len(records) + len(cmb_extra)
    assert counted("duplicate") - duplicates_before == len(copies)

    rows = await scalar(
        engine,
        "SELECT jsonb_agg(jsonb_build_object('provider', provider, 'record', record, "
        "'source', source)) FROM quarantine WHERE code = 'malformed'",
    )
    assert sorted(r["provider"] for r in rows) == [
        "cmb",
        "cmb",
        "cmb",
        "icbc",
        "unknown",
        "unknown",
    ]
    for row in rows:
        assert set(row["source"]) == {"topic", "partition", "offset"}
        assert row["source"]["topic"] == kafka_settings.kafka_topic
    dumped = orjson.dumps(rows).decode()
    assert PAN not in dumped and "411111******1111" in dumped

    letters = await dead_letters(kafka_settings, len(bad))
    assert len(letters) == len(bad)
    assert all(dict(m.headers)["error"].startswith(b"malformed: ") for m in letters)
    values = b"".join(m.value or b"" for m in letters)
    assert PAN.encode() not in values and b"411111******1111" in values


async def test_database_cut_and_restored_while_messages_arrive_is_exact(
    engine: AsyncEngine,
    kafka_settings: Settings,
    database_url: str,
    progress: Progress,
    caplog: pytest.LogCaptureFixture,
    pipeline: Pipeline,
) -> None:
    merchants = await register_merchants(engine)
    records = make_records(merchants, 15_000, prefix="d", seed=31)
    thirds = [records[i::3] for i in range(3)]
    bootstrap = kafka_settings.kafka_bootstrap_servers or ""
    proxy, proxied_url = database_proxy(database_url)
    await proxy.start()
    through_proxy = create_engine(proxied_url())
    consumer = RecordConsumer(kafka_settings, through_proxy, pipeline, max_poll_records=500)
    consuming = asyncio.create_task(consumer.run())
    try:
        await produce(bootstrap, kafka_settings.kafka_topic, messages_of(thirds[0], seed=32))
        await wait_until(stored_at_least(engine, 1), within=60, what="the first records stored")

        proxy.cut()
        arriving = messages_of(thirds[1], seed=33)
        await produce(bootstrap, kafka_settings.kafka_topic, arriving)

        async def retrying() -> bool:
            retries = [r for r in caplog.records if r.getMessage().startswith("consumer paused")]
            return not consumer.running and len(retries) >= 3

        await wait_until(retrying, within=30, what="the consumer to retry, not running")
        held = await scalar(engine, "SELECT count(*) FROM records")
        assert held < len(records)
        assert lag(kafka_settings.kafka_topic) >= len(arriving)

        proxy.restore()
        await produce(bootstrap, kafka_settings.kafka_topic, messages_of(thirds[2], seed=34))
        await wait_until(progress.all_consumed, within=90, what="the feed to be consumed")

        async def resumed() -> bool:
            return consumer.running

        await wait_until(resumed, within=10, what="the consumer to report running")
        assert lag(kafka_settings.kafka_topic) == 0
    finally:
        consumer.stop()
        await consuming
        await through_proxy.dispose()
        await proxy.close()
    await assert_exact(engine, records)


async def test_a_consumer_joins_its_group_only_once_the_database_answers(
    engine: AsyncEngine,
    kafka_settings: Settings,
    database_url: str,
    progress: Progress,
    caplog: pytest.LogCaptureFixture,
    pipeline: Pipeline,
) -> None:
    """A member that cannot store would hold its partitions for nothing until the
    group's session timed it out: it stays out of the group while the database is
    away, and then consumes everything exactly."""
    caplog.set_level(logging.INFO, logger="ingest.consumer")
    merchants = await register_merchants(engine)
    records = make_records(merchants, 3_000, prefix="j", seed=41)
    proxy, proxied_url = database_proxy(database_url)
    await proxy.start()
    proxy.cut()
    through_proxy = create_engine(proxied_url())
    consumer = RecordConsumer(kafka_settings, through_proxy, pipeline, max_poll_records=500)
    consuming = asyncio.create_task(consumer.run())
    try:
        bootstrap = kafka_settings.kafka_bootstrap_servers or ""
        await produce(bootstrap, kafka_settings.kafka_topic, messages_of(records, seed=42))

        async def retrying() -> bool:
            return sum(r.getMessage().startswith("consumer paused") for r in caplog.records) >= 2

        await wait_until(retrying, within=30, what="the consumer to retry")
        assert not any("assigned partitions" in r.getMessage() for r in caplog.records)
        assert not consumer.running

        proxy.restore()
        await wait_until(progress.all_consumed, within=90, what="the feed to be consumed")
    finally:
        consumer.stop()
        await consuming
        await through_proxy.dispose()
        await proxy.close()
    await assert_exact(engine, records)


async def test_the_api_consumes_when_started_with_the_consumer(
    engine: AsyncEngine, kafka_settings: Settings, database_url: str, progress: Progress
) -> None:
    merchants = await register_merchants(engine)
    records = make_records(merchants, 500, prefix="s", seed=41)
    app = create_app(kafka_settings, database_url)
    app.state.with_consumer = True
    transport = httpx.ASGITransport(app=app)
    topic = kafka_settings.kafka_topic
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://payfeed") as client,
    ):
        try:
            await produce(
                kafka_settings.kafka_bootstrap_servers or "", topic, messages_of(records, seed=42)
            )
            await wait_until(progress.all_consumed, within=60, what="the feed to be consumed")

            async def ready_without_lag() -> bool:
                response = await client.get("/readyz")
                metrics = (await client.get("/metrics")).text
                return (
                    response.status_code == 200
                    and response.json()["checks"]["consumer"]
                    and f'payfeed_kafka_lag{{partition="0",topic="{topic}"}} 0.0' in metrics
                    and "payfeed_kafka_batch_seconds_count" in metrics
                )

            await wait_until(ready_without_lag, within=10, what="/readyz and /metrics")
        finally:
            # The lifespan's shutdown does not run when the block raises.
            app.state.consumer.stop()
    assert not app.state.consumer.running
    await assert_exact(engine, records)
