"""Records from a producer that is not aiokafka (librdkafka, through
confluent-kafka), idempotent, with every compression codec Kafka has: each is
consumed exactly. A batch the consumer cannot decompress is set aside (counted,
quarantined, dead-lettered), never a silent stall."""

import asyncio
from collections.abc import AsyncIterator

import aiokafka.record.default_records
import pytest
from confluent_kafka import Producer
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncEngine

from ingest.consumer import RecordConsumer
from ingest.pipeline import Pipeline
from store.settings import Settings
from tests.kafka.feed import (
    Outgoing,
    Progress,
    assert_exact,
    make_records,
    messages_of,
    register_merchants,
    scalar,
    wait_until,
)
from tests.kafka.test_kafka_consumer import dead_letters

pytestmark = pytest.mark.kafka

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")


@pytest.fixture
async def progress(kafka_settings: Settings) -> AsyncIterator[Progress]:
    async with Progress(kafka_settings) as progress:
        yield progress


def produce_with_librdkafka(settings: Settings, messages: list[Outgoing], compression: str) -> None:
    """Every message acknowledged by the broker, or the test fails with why not."""
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "enable.idempotence": True,
            "compression.type": compression,
            "linger.ms": 20,
        }
    )
    failures: list[str] = []

    def delivered(error: object, _message: object) -> None:
        if error is not None:
            failures.append(str(error))

    for key, value, headers in messages:
        producer.produce(
            settings.kafka_topic, value=value, key=key, headers=headers, on_delivery=delivered
        )
        producer.poll(0)
    assert producer.flush(30) == 0, "messages still unacknowledged"
    assert failures == []


@pytest.mark.parametrize("compression", CODECS)
async def test_librdkafka_records_are_consumed_exactly_with_every_codec(
    compression: str,
    engine: AsyncEngine,
    kafka_settings: Settings,
    pipeline: Pipeline,
    progress: Progress,
) -> None:
    merchants = await register_merchants(engine)
    records = make_records(merchants, 3_000, prefix=compression, seed=7)
    outgoing = messages_of(records, arrays=0.2, seed=8)
    await asyncio.to_thread(produce_with_librdkafka, kafka_settings, outgoing, compression)
    consumer = RecordConsumer(kafka_settings, engine, pipeline)
    consuming = asyncio.create_task(consumer.run())
    try:
        await wait_until(progress.all_consumed, within=60, what=f"the {compression} feed")
        assert consumer.running and consumer.failures == 0
    finally:
        consumer.stop()
        await consuming
    await assert_exact(engine, records)


async def test_a_batch_that_cannot_be_decompressed_is_set_aside_not_a_stall(
    engine: AsyncEngine,
    kafka_settings: Settings,
    pipeline: Pipeline,
    progress: Progress,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    merchants = await register_merchants(engine)
    first = make_records(merchants, 200, prefix="plain", seed=11)
    packed = make_records(merchants, 30, prefix="lz4", seed=12)
    last = make_records(merchants, 200, prefix="after", seed=13)
    await asyncio.to_thread(produce_with_librdkafka, kafka_settings, messages_of(first), "none")
    await asyncio.to_thread(produce_with_librdkafka, kafka_settings, messages_of(packed), "lz4")
    await asyncio.to_thread(produce_with_librdkafka, kafka_settings, messages_of(last), "none")
    # As on a consumer installed without the lz4 codec.
    monkeypatch.setattr(aiokafka.record.default_records.codecs, "has_lz4", lambda: False)
    failed_before = REGISTRY.get_sample_value(
        "payfeed_failed_batches_total", {"source": "kafka", "error": "UnsupportedCodecError"}
    )
    consumer = RecordConsumer(kafka_settings, engine, pipeline)
    consuming = asyncio.create_task(consumer.run())
    try:
        await wait_until(progress.all_consumed, within=60, what="every partition to move on")
        assert consumer.running
    finally:
        consumer.stop()
        await consuming
    await assert_exact(engine, first + last)
    held = await scalar(
        engine,
        "SELECT count(*) FROM quarantine WHERE code = 'malformed' "
        "AND message LIKE 'the batch could not be decoded: UnsupportedCodecError%'",
    )
    assert held == len(packed)
    assert consumer.failures >= 1
    failed = REGISTRY.get_sample_value(
        "payfeed_failed_batches_total", {"source": "kafka", "error": "UnsupportedCodecError"}
    )
    assert failed == (failed_before or 0) + consumer.failures
    letters = await dead_letters(kafka_settings, len(packed))
    assert len(letters) == len(packed)
    assert all(
        dict(m.headers)["error"].startswith(b"malformed: the batch could not be decoded")
        for m in letters
    )
