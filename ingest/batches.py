"""A provider's batch from bytes to a stored answer, idempotent by batch id.

The answer, the records and their rollup changes commit together in the caller's
transaction; the same batch id with the same body returns the stored answer and
changes nothing; with a different body it is a 409.
"""

import asyncio
import hashlib
import logging
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ingest.adapters import ReadOptions, adapter_for
from ingest.metrics import BATCH_RECORDS, BATCH_SECONDS, RECORDS
from ingest.normalise import normalise
from ingest.window import ingest_window
from ingest.writer import WriteResult, write_batch
from store.errors import Conflict, TooLarge
from store.tables import batches

MAX_ERRORS = 1000

log = logging.getLogger(__name__)


def batch_digest(fmt: str, body: bytes) -> bytes:
    return hashlib.sha256(fmt.encode() + b"\0" + body).digest()


def answer_of(
    batch_id: str, provider: str, result: WriteResult, control_totals: Any
) -> dict[str, Any]:
    return {
        "batch_id": batch_id,
        "provider": provider,
        "received": result.received,
        "inserted": result.inserted,
        "duplicates": result.duplicates,
        "rejected": result.rejected,
        "quarantined": result.quarantined,
        "replayed": False,
        "control_totals": control_totals,
        "errors": [
            {
                "index": e.index,
                "txn_id": e.txn_id,
                "code": e.code,
                "field": e.field,
                "message": e.message,
            }
            for e in result.errors[:MAX_ERRORS]
        ],
    }


async def ingest_batch(
    conn: AsyncConnection,
    *,
    provider: str,
    batch_id: str,
    fmt: str,
    body: bytes,
    options: ReadOptions,
    secret: bytes,
    max_records: int,
) -> dict[str, Any]:
    started = time.monotonic()
    adapter = adapter_for(fmt)
    digest = batch_digest(fmt, body)
    stored = await _claim(conn, batch_id, provider, digest)
    if stored is not None:
        return {**stored, "replayed": True}
    raw = await asyncio.to_thread(adapter, body, options)
    if raw.received > max_records:
        raise TooLarge(
            "too_many_records", f"batch has {raw.received} records; the limit is {max_records}"
        )
    window = await ingest_window(conn)
    now = datetime.now(UTC)
    normalised = await asyncio.to_thread(
        normalise, raw.frame, now=now, window=window, secret=secret
    )
    result = await write_batch(conn, provider, raw, normalised, batch_id=batch_id)
    answer = answer_of(batch_id, provider, result, raw.control_totals)
    _observe(answer, result, time.monotonic() - started)
    await conn.execute(
        batches.update()
        .where(batches.c.batch_id == batch_id)
        .values(answer=orjson.loads(orjson.dumps(answer)))
    )
    return answer


LOGGED = ("batch_id", "provider", "received", "inserted", "duplicates", "rejected", "quarantined")


def _observe(answer: dict[str, Any], result: WriteResult, seconds: float) -> None:
    """Count the batch's records by outcome and log it (no record content)."""
    provider = answer["provider"]
    RECORDS.labels(provider, "inserted", "http").inc(result.inserted)
    RECORDS.labels(provider, "duplicate", "http").inc(result.duplicates)
    for code, count in Counter(str(error.code) for error in result.errors).items():
        RECORDS.labels(provider, code, "http").inc(count)
    BATCH_RECORDS.labels("http").observe(result.received)
    BATCH_SECONDS.labels("http").observe(seconds)
    log.info("batch stored", extra={**{k: answer[k] for k in LOGGED}, "seconds": round(seconds, 4)})


async def _claim(
    conn: AsyncConnection, batch_id: str, provider: str, digest: bytes
) -> dict[str, Any] | None:
    """Take the batch id for this body, or return the answer already stored for it.

    A concurrent request with the same id waits on the row lock until the first
    commits, then sees its answer: a retry never runs a batch twice.
    """
    claimed = await conn.execute(
        insert(batches)
        .values(batch_id=batch_id, provider=provider, digest=digest, answer={})
        .on_conflict_do_nothing()
        .returning(batches.c.batch_id)
    )
    if claimed.first() is not None:
        return None
    row = (await conn.execute(select(batches).where(batches.c.batch_id == batch_id))).one()
    if row.provider != provider or row.digest != digest:
        raise Conflict(
            "batch_id_reused", f"batch {batch_id} was already received with a different body"
        )
    return dict(row.answer)


async def stored_answer(conn: AsyncConnection, batch_id: str) -> tuple[str, dict[str, Any]] | None:
    row = (
        await conn.execute(
            select(batches.c.provider, batches.c.answer).where(batches.c.batch_id == batch_id)
        )
    ).first()
    return (row.provider, dict(row.answer)) if row else None
