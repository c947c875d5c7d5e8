"""The one ingest pipeline of a process: prepare, write, report.

HTTP batches, Kafka polls, backfill chunks and quarantine replays are the same
three steps over different inputs, so they are defined once here and each entry
path is a thin driver around them:

1. `prepare` (in a worker thread): a raw batch, as an adapter read it, to the
   normalised frame, with the process's payer-hash cache;
2. `write` (on the event loop): the normalised batch stored in the caller's
   transaction (`write_batch`);
3. `report`: its records counted by outcome, labelled with the path they came
   by (`source`) and the provider, and one JSON log line.

A process makes one `Pipeline` (the app's lifespan, each CLI command) and hands
it to every driver: everything ingest keeps between batches lives here, and all
of it is safe to share between the threads and tasks that use it at once (the
payer-hash cache takes care of itself; the rest is read-only or Prometheus's
own thread-safe series).
"""

import logging
from collections import Counter
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from ingest.adapters.base import RawBatch
from ingest.metrics import BATCH_RECORDS, BATCH_SECONDS, FAILED_BATCHES, RECORDS
from ingest.normalise import Normalised, PayerHashes, Window, normalise
from ingest.window import ingest_window
from ingest.writer import WriteResult, write_batch
from schemas.records import Outcome

log = logging.getLogger("ingest.pipeline")


class Source(StrEnum):
    """The path records came by: the `source` label of every series and log line."""

    HTTP = "http"
    KAFKA = "kafka"
    BACKFILL = "backfill"
    REPLAY = "replay"


LOGGED = ("received", "inserted", "duplicates", "rejected", "quarantined")


class Pipeline:
    """Everything stateful of ingest for one process: the payer-hash secret and
    cache, the campaign-window lookup and the outcome reporter."""

    def __init__(self, secret: bytes) -> None:
        self.payers = PayerHashes(secret)

    async def window(self, conn: AsyncConnection) -> Window:
        """The days records are accepted for, as the campaigns say now (read in
        `conn`'s transaction: a campaign extended a moment ago counts)."""
        return await ingest_window(conn)

    def prepare(self, raw: RawBatch, window: Window, now: datetime | None = None) -> Normalised:
        """Normalise a raw batch. CPU-bound: drivers run it in a worker thread,
        usually while the previous batch is being written."""
        return normalise(raw.frame, now=now or datetime.now(UTC), window=window, payers=self.payers)

    async def write(
        self,
        conn: AsyncConnection,
        provider: str,
        raw: RawBatch,
        normalised: Normalised,
        *,
        batch_id: str | None = None,
        source: dict[str, Any] | None = None,
        hold: bool = True,
    ) -> WriteResult:
        """Store a prepared batch in the caller's transaction (see `write_batch`)."""
        return await write_batch(
            conn, provider, raw, normalised, batch_id=batch_id, source=source, hold=hold
        )

    def report(
        self,
        source: Source,
        provider: str,
        result: WriteResult,
        seconds: float,
        **context: Any,
    ) -> None:
        """Count a stored batch's records by outcome and log it in one line (counts
        and identifiers only, never record content). `context` names the batch:
        its batch id, file, or topic and offsets."""
        counts: Counter[str] = Counter(str(error.code) for error in result.errors)
        counts[Outcome.INSERTED.value] += result.inserted
        counts[Outcome.DUPLICATE.value] += result.duplicates
        for outcome, count in counts.items():
            if count:
                RECORDS.labels(provider, outcome, source.value).inc(count)
        BATCH_RECORDS.labels(source.value).observe(result.received)
        BATCH_SECONDS.labels(source.value).observe(seconds)
        log.info(
            "batch stored",
            extra={
                "source": source.value,
                "provider": provider,
                **context,
                **{name: getattr(result, name) for name in LOGGED},
                "seconds": round(seconds, 4),
            },
        )

    def count(self, source: Source, provider: str, outcome: Outcome, records: int = 1) -> None:
        """Records that never became a batch (a Kafka message that is not records)."""
        RECORDS.labels(provider, outcome.value, source.value).inc(records)

    def failed(self, source: Source, error: BaseException, **context: Any) -> None:
        """A batch that could not be stored for a reason a retry would not cure
        (a defect, or input nothing can read), set aside so that ingest goes on."""
        FAILED_BATCHES.labels(source.value, type(error).__name__).inc()
        log.error(
            "batch failed: %s: %s",
            type(error).__name__,
            error,
            exc_info=error,
            extra={"source": source.value, **context},
        )
