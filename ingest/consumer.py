"""The Kafka consumer: poll, write, then commit offsets, for an exactly-once effect.

What it guarantees, and why:

- **Commit after write.** Each poll (`getmany`) is written in one database
  transaction: every provider's records through `write_batch` (the writer of
  every other path) and the poll's bad messages into the quarantine. Offsets
  are committed only after that transaction commits, in poll order. A crash
  anywhere before re-reads the messages; the writer deduplicates by (provider,
  txn_id), so a re-read record is a `duplicate` and changes nothing, and a bad
  message is quarantined once (by its coordinates). Records and rollups see
  each record exactly once.
- **Bad messages never stall a partition.** They are quarantined as
  `malformed` with topic, partition and offset in the same transaction and,
  when `PAYFEED_KAFKA_DLQ_TOPIC` is set, republished there before the offsets
  move (at least once: a crash in between republishes them).
- **Rebalances lose and double-count nothing.** The loop holds at most two
  polls (one being written, the next being decoded and normalised), under a
  lock that the revocation callback also takes: the callback asks the loop to
  stop fetching, and returns once every poll in hand is stored and its offsets
  committed, so the next owner of a partition starts exactly where this one
  stopped. Should the group drop this member anyway (a session timeout during a
  long write), its commit fails and the next owner re-reads from the last
  commit: duplicates, no effect.
- **A poll that cannot be stored** for a reason a retry would not cure (a
  defect met by its records, not an outage) is set aside rather than retried
  forever or stopping the consumer: its messages are quarantined as
  `malformed` with the error and dead-lettered, its offsets committed,
  `payfeed_failed_batches_total{source="kafka"}` counts it and `/readyz` shows
  the count and the last error.
- **Batches it cannot decode** (a codec it lacks, a corrupt batch) are found
  by reading the partitions one at a time, then its messages one at a time up
  to the failing one: each such message is quarantined and dead-lettered by its
  coordinates (nothing of it can be read) and counted as a failure, and the
  partition moves past it; the messages around it are stored as usual.
- **Outages.** When the database or the broker cannot be reached (or the
  database rolls a transaction back), the poll's transaction rolls back, the
  consumer seeks back to the first offsets of the polls in hand, reports
  `running = False` (for `/readyz`) and retries with capped exponential
  backoff; nothing is committed that was not stored.
- **Stop** (SIGTERM): the polls in hand are stored and committed, then the
  consumer leaves the group so that the others take over at once.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import (
    CommitFailedError,
    CorruptRecordException,
    IllegalStateError,
    KafkaError,
    UnsupportedCodecError,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ingest.kafka_messages import (
    BadMessage,
    DecodedPoll,
    Message,
    ProviderBatch,
    bad_message,
    decode_poll,
    undecodable_message,
)
from ingest.masking import mask_pans
from ingest.metrics import KAFKA_BATCH_SECONDS, KAFKA_LAG
from ingest.normalise import Normalised, Window
from ingest.pipeline import Pipeline, Source
from ingest.writer import WriteResult
from schemas.records import Outcome
from store.db import raw_connection
from store.errors import PayfeedError
from store.settings import Settings

log = logging.getLogger(__name__)

POLL_TIMEOUT_MS = 500
PROBE_TIMEOUT_MS = 100
"""Looking for the partition of an undecodable batch: a partition that gives
nothing this soon is passed over (the next poll finds it again if it was that one)."""
MAX_POLL_RECORDS = 30_000
FETCH_BYTES = 4 * 1024 * 1024
"""Per partition and fetch: a full poll in one or two fetches."""
FIRST_BACKOFF_S = 0.25
MAX_BACKOFF_S = 10.0
PROBE_EVERY_S = 5.0
"""An idle consumer asks the broker for metadata this often, so that a broker
outage shows on `/readyz` even when no messages arrive."""
MAX_LOGGED_ERRORS = 100

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


def _described(error: BaseException) -> str:
    """`Type: message`, once (aiokafka's errors name their type themselves)."""
    text = str(error)
    name = type(error).__name__
    return text if text.startswith(name) else f"{name}: {text}"


def undecodable(exc: BaseException) -> bool:
    """Whether fetching failed on a batch that cannot be decoded: a codec not
    installed, a corrupt batch, or any error from decompressing it (only network
    and protocol errors, `KafkaError`s, are transient there)."""
    if isinstance(exc, UnsupportedCodecError | CorruptRecordException):
        return True
    return not isinstance(exc, KafkaError | OSError | asyncio.CancelledError)


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


class _InHand:
    """What the poll loop holds while it has polls not yet committed, and what a
    rebalance (or a stop) asks it to hand over."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.wanted = False

    async def hand_over(self) -> None:
        """Return once the loop has stored and committed every poll in hand."""
        self.wanted = True
        try:
            async with self.lock:
                pass
        finally:
            self.wanted = False


class _FlushBeforeRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Partitions are given up only once their polls in hand are committed."""

    def __init__(self, in_hand: _InHand, taken: dict[TopicPartition, int]) -> None:
        self._in_hand = in_hand
        self._taken = taken

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._in_hand.hand_over()
        for tp in revoked:
            self._taken.pop(tp, None)
            with contextlib.suppress(KeyError):
                KAFKA_LAG.remove(tp.topic, str(tp.partition))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("assigned partitions %s", sorted(tp.partition for tp in assigned))


@dataclass
class _Fetched:
    """One poll's messages by partition, decoded and normalised per provider, and
    when they were taken; or the error that kept it from being prepared."""

    messages: dict[TopicPartition, list[Message]]
    spans: dict[TopicPartition, tuple[int, int]]
    """Per partition, the poll's first offset and the offset after its last (the
    one to commit), undecodable messages included."""
    decoded: DecodedPoll
    normalised: dict[str, Normalised]
    taken: float
    skipped: list[BadMessage]
    """Messages that could not be decoded, set aside by their coordinates."""
    failure: BaseException | None = None


def _spans(
    messages: dict[TopicPartition, list[Message]], skipped: list[BadMessage]
) -> dict[TopicPartition, tuple[int, int]]:
    offsets: dict[TopicPartition, list[int]] = {
        tp: [m.offset for m in batch] for tp, batch in messages.items()
    }
    for bad in skipped:
        tp = TopicPartition(bad.source["topic"], bad.source["partition"])
        offsets.setdefault(tp, []).append(bad.source["offset"])
    return {tp: (min(found), max(found) + 1) for tp, found in offsets.items() if found}


class RecordConsumer:
    """One member of the consumer group; `run()` until `stop()`."""

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        pipeline: Pipeline,
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
        self.engine = engine
        self.pipeline = pipeline
        self.session_timeout_ms = session_timeout_ms
        self.max_poll_records = max_poll_records
        self.running = False
        """True while consuming; False before the first poll, while backing off
        from an unreachable database or broker, and after `stop()`."""
        self.failures = 0
        """Polls that could not be stored and messages that could not be decoded,
        set aside (quarantined, dead-lettered) so that the partitions move on."""
        self.last_failure: str | None = None
        self._taken: dict[TopicPartition, int] = {}
        """Per partition, the offset after the last message taken into a poll."""
        self._stopping = asyncio.Event()
        self._in_hand = _InHand()
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
                        log.exception("consumer stopped: %s: %s", type(exc).__name__, exc)
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
        # Join the group only once the database answers: a member that cannot store
        # holds its partitions for nothing, and the pool's first connection (with
        # the driver's set-up) is then made before the first poll waits on it.
        async with self.engine.connect() as conn:
            await self.pipeline.window(conn)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=self.group,
            client_id="payfeed",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=self.session_timeout_ms // 3,
            max_partition_fetch_bytes=FETCH_BYTES,
        )
        consumer.subscribe([self.topic], listener=_FlushBeforeRevoke(self._in_hand, self._taken))
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
        async with self._in_hand.lock:
            try:
                await self._drain(consumer)
            finally:
                await self._export_lag(consumer)

    async def _drain(self, consumer: AIOKafkaConsumer) -> None:
        """Store polls until none comes, or a rebalance or a stop wants the
        partitions; return with every poll taken stored and committed.

        The next poll is fetched, decoded and normalised while the current one
        is written, so that Python and PostgreSQL work at the same time; writes
        stay one transaction at a time, in poll order (two of one consumer's
        transactions would contend for the same rows). At most two polls are in
        hand.
        """
        current = await self._fetch(consumer)
        while current is not None:
            steps: list[Awaitable[_Fetched | None]] = [self._store(consumer, current)]
            if not self._handing_over():
                steps.append(self._fetch(consumer))
            stored, *fetched = await asyncio.gather(*steps, return_exceptions=True)
            following = fetched[0] if fetched else None
            if isinstance(stored, BaseException):
                taken = [current, *([following] if isinstance(following, _Fetched) else [])]
                self._rewind(consumer, taken)
                raise stored
            if isinstance(following, BaseException):
                raise following
            current = following

    def _handing_over(self) -> bool:
        return self._in_hand.wanted or self._stopping.is_set()

    async def _fetch(self, consumer: AIOKafkaConsumer) -> _Fetched | None:
        skipped: list[BadMessage] = []
        try:
            messages = await consumer.getmany(
                timeout_ms=POLL_TIMEOUT_MS, max_records=self.max_poll_records
            )
        except Exception as exc:
            if not undecodable(exc):
                raise
            messages, skipped = await self._around_undecodable(consumer, exc)
        if not messages and not skipped:
            if time.monotonic() - self._last_contact > PROBE_EVERY_S:
                await asyncio.wait_for(consumer.topics(), PROBE_EVERY_S)
                self._last_contact = time.monotonic()
            return None
        taken = time.monotonic()
        fetched = _Fetched(messages, _spans(messages, skipped), DecodedPoll(), {}, taken, skipped)
        for tp, (_, following) in fetched.spans.items():
            self._taken[tp] = following
        flat = [message for batch in messages.values() for message in batch]
        try:
            async with self.engine.connect() as conn:
                window = await self.pipeline.window(conn)
            fetched.decoded, fetched.normalised = await asyncio.to_thread(
                self._prepare, flat, window
            )
        except Exception as exc:
            if not transient(exc):
                fetched.failure = exc
                return fetched
            self._rewind(consumer, [fetched])
            raise
        except BaseException:
            self._rewind(consumer, [fetched])
            raise
        fetched.decoded.bad.extend(skipped)
        return fetched

    async def _around_undecodable(
        self, consumer: AIOKafkaConsumer, error: Exception
    ) -> tuple[dict[TopicPartition, list[Message]], list[BadMessage]]:
        """A poll taken around a batch that cannot be decoded, and its messages
        set aside by their coordinates.

        aiokafka says neither which partition failed nor where, and a failed
        fetch leaves positions moved past records it never handed over: so every
        partition goes back to the first message not taken, the partitions are
        read one at a time until one fails, and that one a message at a time up
        to the failing message, which is set aside and stepped over."""
        self.failures += 1
        self.last_failure = f"a batch could not be decoded: {_described(error)}"
        self.pipeline.failed(Source.KAFKA, error, topic=self.topic)
        partitions = sorted(consumer.assignment(), key=lambda tp: tp.partition)
        for tp in partitions:
            await self._restart(consumer, tp)
        messages: dict[TopicPartition, list[Message]] = {}
        skipped: list[BadMessage] = []
        budget = self.max_poll_records
        for tp in partitions:
            if budget <= 0:
                break
            try:
                found = await consumer.getmany(tp, timeout_ms=PROBE_TIMEOUT_MS, max_records=budget)
            except Exception as exc:
                if not undecodable(exc):
                    raise
                await self._restart(consumer, tp)
                taken, skipped = await self._one_at_a_time(consumer, tp, budget, exc)
                if taken:
                    messages[tp] = taken
                break
            if found.get(tp):
                messages[tp] = found[tp]
                budget -= len(found[tp])
        return messages, skipped

    async def _one_at_a_time(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, budget: int, error: Exception
    ) -> tuple[list[Message], list[BadMessage]]:
        """Messages of `tp` up to `budget`, stepping over each one that cannot be
        decoded (every message of an undecodable batch fails alike)."""
        taken: list[Message] = []
        skipped: list[BadMessage] = []
        while len(taken) + len(skipped) < budget:
            try:
                found = await consumer.getmany(tp, timeout_ms=POLL_TIMEOUT_MS, max_records=1)
            except Exception as exc:
                if not undecodable(exc):
                    raise
                offset = await consumer.position(tp)
                reason = f"the batch could not be decoded: {_described(exc)}"
                skipped.append(undecodable_message(tp.topic, tp.partition, offset, reason))
                consumer.seek(tp, offset + 1)
                continue
            if not found.get(tp):
                break
            taken.extend(found[tp])
        if skipped:
            log.error(
                "set aside %d messages of %s/%d that could not be decoded, from offset %d: %s",
                len(skipped),
                tp.topic,
                tp.partition,
                skipped[0].source["offset"],
                error,
            )
        return taken, skipped

    async def _restart(self, consumer: AIOKafkaConsumer, tp: TopicPartition) -> None:
        """Seek `tp` to the first message not taken into a poll yet."""
        if tp in self._taken:
            consumer.seek(tp, self._taken[tp])
            return
        committed = await consumer.committed(tp)
        if committed is None:
            await consumer.seek_to_beginning(tp)
        else:
            consumer.seek(tp, committed)

    def _rewind(self, consumer: AIOKafkaConsumer, polls: list[_Fetched]) -> None:
        """Seek back to the first message whose offset is not committed: for each
        partition, its first offset in the earliest of `polls` that holds it."""
        for poll in reversed(polls):
            for tp, (first, _) in poll.spans.items():
                consumer.seek(tp, first)
                self._taken[tp] = first

    def _prepare(
        self, messages: list[Message], window: Window
    ) -> tuple[DecodedPoll, dict[str, Normalised]]:
        """Decode and normalise a poll (in a thread, while the previous poll is
        written): all of a poll's Python work but the writer's."""
        decoded = decode_poll(messages)
        now = datetime.now(UTC)
        normalised = {
            provider: self.pipeline.prepare(part.raw, window, now)
            for provider, part in decoded.batches.items()
        }
        return decoded, normalised

    async def _store(self, consumer: AIOKafkaConsumer, fetched: _Fetched) -> None:
        """Write a poll (or set it aside), then commit its offsets."""
        started = time.monotonic()
        failure = fetched.failure
        results: dict[str, WriteResult] = {}
        if failure is None:
            try:
                results = await self._write(fetched)
            except Exception as exc:
                if transient(exc):
                    raise
                failure = exc
        if failure is not None:
            await self._set_aside(fetched, failure)
        else:
            await self._dead_letter(fetched.decoded.bad)
        await self._commit(consumer, fetched.spans)
        await self._export_lag(consumer)
        KAFKA_BATCH_SECONDS.observe(time.monotonic() - fetched.taken)
        self._report(fetched.decoded, results, time.monotonic() - started)
        self._last_contact = time.monotonic()
        self.running = True

    async def _set_aside(self, fetched: _Fetched, error: BaseException) -> None:
        """Quarantine and dead-letter every message of a poll that cannot be
        stored, with the error, so that its offsets can move on."""
        reason = f"the poll could not be stored: {_described(error)}"
        bad = [
            bad_message(message, reason)
            for messages in fetched.messages.values()
            for message in messages
        ]
        fetched.decoded = DecodedPoll(bad=[*bad, *fetched.skipped])
        async with self.engine.begin() as conn:
            await quarantine_messages(conn, bad)
        await self._dead_letter(bad)
        self.failures += 1
        self.last_failure = mask_pans(reason)
        self.pipeline.failed(
            Source.KAFKA,
            error,
            topic=self.topic,
            offsets={str(tp.partition): list(span) for tp, span in fetched.spans.items()},
        )

    async def _write(self, fetched: _Fetched) -> dict[str, WriteResult]:
        """Write a poll in one transaction, its bad messages quarantined."""
        decoded = fetched.decoded
        results: dict[str, WriteResult] = {}
        async with self.engine.begin() as conn:
            # Providers in a fixed order: every poll's transaction takes its row locks
            # (records, then rollup rows by key) in the same order, so that concurrent
            # consumers queue rather than deadlock.
            for provider, part in sorted(decoded.batches.items()):
                results[provider] = await self.pipeline.write(
                    conn, provider, part.raw, fetched.normalised[provider], source=part.source
                )
            await quarantine_messages(conn, decoded.bad)
        return results

    async def _dead_letter(self, bad: list[BadMessage]) -> None:
        """Republish bad messages to the dead-letter topic, if one is set, and wait
        until the broker has them (before their offsets are committed)."""
        if not bad or self._producer is None:
            return
        topic = self.dlq_topic
        assert topic is not None
        sent = [
            await self._producer.send(topic, m.value, m.key, headers=m.dead_letter_headers())
            for m in bad
        ]
        await asyncio.gather(*sent)

    async def _commit(
        self, consumer: AIOKafkaConsumer, spans: dict[TopicPartition, tuple[int, int]]
    ) -> None:
        try:
            await consumer.commit({tp: following for tp, (_, following) in spans.items()})
        except (CommitFailedError, IllegalStateError) as exc:
            log.warning(
                "stored a poll but the group moved on before its offsets were committed "
                "(%s): the partitions' next owner re-reads it as duplicates",
                exc,
            )

    def _report(
        self, decoded: DecodedPoll, results: dict[str, WriteResult], seconds: float
    ) -> None:
        """Count every record by outcome, a line per provider's part of the poll,
        and a warning for every rejected record with its message's coordinates
        (capped per poll), card numbers masked."""
        for bad in decoded.bad:
            self.pipeline.count(Source.KAFKA, bad.provider, Outcome.MALFORMED)
            log.warning(
                "quarantined a bad message at %s/%d@%d: %s",
                bad.source["topic"],
                bad.source["partition"],
                bad.source["offset"],
                bad.reason,
                extra={"provider": bad.provider, "code": Outcome.MALFORMED.value, **bad.source},
            )
        for provider, result in results.items():
            part = decoded.batches[provider]
            self.pipeline.report(Source.KAFKA, provider, result, seconds, **part.source)
            _log_rejected(provider, part, result)

    async def _export_lag(self, consumer: AIOKafkaConsumer) -> None:
        """Lag per partition after every poll stored, and after every failed one:
        it grows during an outage, which is when it matters. (A poll fetched ahead
        counts as consumed.)"""
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


def _log_rejected(provider: str, part: ProviderBatch, result: WriteResult) -> None:
    for error in result.errors[:MAX_LOGGED_ERRORS]:
        partition, offset = part.origin(error.index)
        txn_id = mask_pans(error.txn_id or "-")
        topic = part.source["topic"]
        log.warning(
            "%s record of %s at %s/%d@%d (txn_id %s): %s",
            error.code,
            provider,
            topic,
            partition,
            offset,
            txn_id,
            mask_pans(error.message),
            extra={
                "provider": provider,
                "code": str(error.code),
                "topic": topic,
                "partition": partition,
                "offset": offset,
                "txn_id": txn_id,
            },
        )
    if len(result.errors) > MAX_LOGGED_ERRORS:
        log.warning(
            "%d more rejected records of %s in this poll",
            len(result.errors) - MAX_LOGGED_ERRORS,
            provider,
        )
