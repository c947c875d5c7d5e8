"""The Kafka consumer: poll, write, then commit offsets, for an exactly-once effect.

What it guarantees, and why:

- **Commit after write.** Each poll (`getmany`) is written in one database
  transaction: every provider's records through `write_batch` (the writer of
  every other path) and the poll's bad messages into the quarantine. Offsets
  are committed only after that transaction commits. A crash anywhere before
  re-reads the messages; the writer deduplicates by (provider, txn_id), so a
  re-read record is a `duplicate` and changes nothing, and a bad message is
  quarantined once (by its coordinates). Records and rollups see each record
  exactly once.
- **Bad messages never stall a partition.** They are quarantined as
  `malformed` with topic, partition and offset in the same transaction and,
  when `PAYFEED_KAFKA_DLQ_TOPIC` is set, republished there before the offsets
  move (at least once: a crash in between republishes them).
- **Rebalances lose and double-count nothing.** The loop holds `_in_hand` from
  `getmany` until the offsets are committed, and the revocation callback takes
  the same lock: partitions change hands only between polls, with everything
  read from them written and committed, so the next owner starts exactly where
  this one stopped. Should the group drop this member anyway (a session timeout
  during a long write), its commit fails and the next owner re-reads from the
  last commit: duplicates, no effect.
- **Outages.** When the database or the broker cannot be reached, the
  transaction rolls back, the consumer seeks back to the poll's first offsets,
  reports `running = False` (for `/readyz`) and retries with capped
  exponential backoff; nothing is committed that was not stored.
- **Stop** (SIGTERM): the poll in hand is finished and committed, then the
  consumer leaves the group so that the others take over at once.
"""

import asyncio
import contextlib
import logging
import time
from collections import Counter
from datetime import UTC, datetime

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ingest.campaigns import ingest_window
from ingest.db import raw_connection
from ingest.errors import PayfeedError
from ingest.kafka_messages import BadMessage, DecodedPoll, Message, decode_poll
from ingest.masking import mask_pans
from ingest.metrics import KAFKA_BATCH_SECONDS, KAFKA_LAG, RECORDS
from ingest.normalise import normalise
from ingest.settings import Settings
from ingest.writer import WriteResult, write_batch
from schemas.records import Outcome

log = logging.getLogger(__name__)

POLL_TIMEOUT_MS = 500
MAX_POLL_RECORDS = 10_000
FIRST_BACKOFF_S = 0.25
MAX_BACKOFF_S = 10.0
PROBE_EVERY_S = 5.0
"""An idle consumer asks the broker for metadata this often, so that a broker
outage shows on `/readyz` even when no messages arrive."""
MAX_LOGGED_ERRORS = 100

Poll = dict[TopicPartition, list[Message]]

TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.TransactionRollbackError,
    asyncpg.InterfaceError,
    KafkaError,
)
"""An unreachable database or broker, or a transaction the database rolled back
(a deadlock or serialization failure): a retry can succeed."""

QUARANTINE_MESSAGES = """
INSERT INTO quarantine (provider, code, message, record, source)
SELECT m.provider, 'malformed', m.message, m.record::jsonb, m.source::jsonb
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS m(provider, message, record, source)
WHERE NOT EXISTS (
    SELECT 1 FROM quarantine q
    WHERE q.provider = m.provider AND q.code = 'malformed' AND q.source = m.source::jsonb
)
"""
"""Idempotent by the message's coordinates, so that a poll re-read after a crash
quarantines its bad messages once."""


def transient(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) is `TRANSIENT`; anything else is a bug and
    stops the loop rather than being retried forever."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, TRANSIENT):
            return True
        if isinstance(cause, DBAPIError) and cause.connection_invalidated:
            return True
        cause = cause.__cause__
    return False


async def quarantine_messages(conn: AsyncConnection, bad: list[BadMessage]) -> None:
    if not bad:
        return
    pg = await raw_connection(conn)
    await pg.execute(
        QUARANTINE_MESSAGES,
        [m.provider for m in bad],
        [m.reason for m in bad],
        [orjson.dumps(m.record).decode() for m in bad],
        [orjson.dumps(m.source).decode() for m in bad],
    )


class _FinishBeforeRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Partitions are given up only when no poll is in hand (see the module)."""

    def __init__(self, in_hand: asyncio.Lock) -> None:
        self._in_hand = in_hand

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self._in_hand:
            for tp in revoked:
                with contextlib.suppress(KeyError):
                    KAFKA_LAG.remove(tp.topic, str(tp.partition))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("assigned partitions %s", sorted(tp.partition for tp in assigned))


class RecordConsumer:
    """One member of the consumer group; `run()` until `stop()`."""

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        *,
        session_timeout_ms: int = 10_000,
        max_poll_records: int = MAX_POLL_RECORDS,
    ) -> None:
        if not settings.kafka_bootstrap_servers:
            raise PayfeedError(
                "kafka_not_configured", "PAYFEED_KAFKA_BOOTSTRAP_SERVERS is not set", 500
            )
        self.bootstrap_servers = settings.kafka_bootstrap_servers
        self.topic = settings.kafka_topic
        self.group = settings.kafka_group
        self.dlq_topic = settings.kafka_dlq_topic
        self.secret = settings.resolved_secret()
        self.engine = engine
        self.session_timeout_ms = session_timeout_ms
        self.max_poll_records = max_poll_records
        self.running = False
        """True while consuming; False before the first poll, while backing off
        from an unreachable database or broker, and after `stop()`."""
        self._stopping = asyncio.Event()
        self._in_hand = asyncio.Lock()
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._last_contact = 0.0

    def stop(self) -> None:
        """Ask the loop to finish the poll in hand, commit, leave the group and return."""
        self._stopping.set()

    async def run(self) -> None:
        delay = FIRST_BACKOFF_S
        try:
            while not self._stopping.is_set():
                try:
                    if self._consumer is None:
                        await self._connect()
                    await self._poll()
                except Exception as exc:
                    if not transient(exc):
                        raise
                    self.running = False
                    log.warning("consumer paused %.2fs: %s: %s", delay, type(exc).__name__, exc)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), delay)
                    delay = min(delay * 2, MAX_BACKOFF_S)
                else:
                    self.running = True
                    delay = FIRST_BACKOFF_S
        finally:
            self.running = False
            await self._disconnect()

    async def _connect(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=self.group,
            client_id="payfeed",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=self.session_timeout_ms // 3,
        )
        consumer.subscribe([self.topic], listener=_FinishBeforeRevoke(self._in_hand))
        producer = (
            AIOKafkaProducer(bootstrap_servers=self.bootstrap_servers, acks="all")
            if self.dlq_topic
            else None
        )
        try:
            await consumer.start()
            if producer is not None:
                await producer.start()
        except BaseException:
            await _quietly_stop(consumer, producer)
            raise
        self._consumer, self._producer = consumer, producer
        log.info("consumer joined group %s on topic %s", self.group, self.topic)

    async def _disconnect(self) -> None:
        """Leave the group (so that the partitions move at once) and close."""
        await _quietly_stop(self._consumer, self._producer)
        self._consumer = self._producer = None

    async def _poll(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        async with self._in_hand:
            try:
                batch = await consumer.getmany(
                    timeout_ms=POLL_TIMEOUT_MS, max_records=self.max_poll_records
                )
                if batch:
                    await self._handle(consumer, batch)
                elif time.monotonic() - self._last_contact > PROBE_EVERY_S:
                    await asyncio.wait_for(consumer.topics(), PROBE_EVERY_S)
                    self._last_contact = time.monotonic()
            finally:
                await self._export_lag(consumer)

    async def _handle(self, consumer: AIOKafkaConsumer, batch: Poll) -> None:
        """Store a poll, then commit its offsets; on failure, rewind to its start."""
        started = time.monotonic()
        try:
            decoded, results = await self._store(batch)
        except BaseException:
            for tp, messages in batch.items():
                consumer.seek(tp, messages[0].offset)
            raise
        await self._commit(consumer, batch)
        KAFKA_BATCH_SECONDS.observe(time.monotonic() - started)
        _report(decoded, results)
        self._last_contact = time.monotonic()

    async def _store(self, batch: Poll) -> tuple[DecodedPoll, dict[str, WriteResult]]:
        """Write the poll in one transaction, then dead-letter its bad messages."""
        messages = [message for messages in batch.values() for message in messages]
        decoded = await asyncio.to_thread(decode_poll, messages)
        results: dict[str, WriteResult] = {}
        async with self.engine.begin() as conn:
            window = await ingest_window(conn)
            now = datetime.now(UTC)
            # Providers in a fixed order: every poll's transaction takes its row locks
            # (records, then rollup rows by key) in the same order, so that concurrent
            # consumers queue rather than deadlock.
            for provider, part in sorted(decoded.batches.items()):
                normalised = await asyncio.to_thread(
                    normalise, part.raw.frame, now=now, window=window, secret=self.secret
                )
                results[provider] = await write_batch(
                    conn, provider, part.raw, normalised, source=part.source
                )
            await quarantine_messages(conn, decoded.bad)
        if decoded.bad and self._producer is not None:
            assert self.dlq_topic is not None
            sent = [
                await self._producer.send(
                    self.dlq_topic, m.value, m.key, headers=m.dead_letter_headers()
                )
                for m in decoded.bad
            ]
            await asyncio.gather(*sent)
        return decoded, results

    async def _commit(self, consumer: AIOKafkaConsumer, batch: Poll) -> None:
        try:
            await consumer.commit({tp: messages[-1].offset + 1 for tp, messages in batch.items()})
        except (CommitFailedError, IllegalStateError) as exc:
            log.warning(
                "stored a poll but the group moved on before its offsets were committed "
                "(%s): the partitions' next owner re-reads it as duplicates",
                exc,
            )

    async def _export_lag(self, consumer: AIOKafkaConsumer) -> None:
        """Lag per partition after every poll, stored or not: it grows during an
        outage, which is when it matters."""
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is not None:
                position = await consumer.position(tp)
                KAFKA_LAG.labels(tp.topic, str(tp.partition)).set(highwater - position)


async def _quietly_stop(
    consumer: AIOKafkaConsumer | None, producer: AIOKafkaProducer | None
) -> None:
    """Close the clients; an unreachable broker must not keep the process from exiting."""
    for client in (consumer, producer):
        if client is not None:
            try:
                await client.stop()
            except KafkaError as exc:
                log.warning("closing the Kafka client failed: %s", exc)


def _report(decoded: DecodedPoll, results: dict[str, WriteResult]) -> None:
    """Count every record by outcome and log every rejected one with its message's
    coordinates (capped per poll), card numbers masked."""
    for bad in decoded.bad:
        RECORDS.labels(bad.provider, Outcome.MALFORMED.value, "kafka").inc()
        log.warning("quarantined a bad message at %s: %s", bad.source, bad.reason)
    for provider, result in results.items():
        RECORDS.labels(provider, Outcome.INSERTED.value, "kafka").inc(result.inserted)
        RECORDS.labels(provider, Outcome.DUPLICATE.value, "kafka").inc(result.duplicates)
        for code, count in Counter(error.code for error in result.errors).items():
            RECORDS.labels(provider, str(code), "kafka").inc(count)
        part = decoded.batches[provider]
        for error in result.errors[:MAX_LOGGED_ERRORS]:
            partition, offset = part.origins[error.index]
            log.warning(
                "%s record of %s at %s/%d@%d (txn_id %s): %s",
                error.code,
                provider,
                part.source["topic"],
                partition,
                offset,
                mask_pans(error.txn_id or "-"),
                mask_pans(error.message),
            )
        if len(result.errors) > MAX_LOGGED_ERRORS:
            log.warning(
                "%d more rejected records of %s in this poll",
                len(result.errors) - MAX_LOGGED_ERRORS,
                provider,
            )
