"""A provider's batch from bytes to a stored answer, idempotent by batch id.

The answer, the records and their rollup changes commit together in the caller's
transaction; the same batch id with the same body returns the stored answer and
changes nothing; with a different body it is a 409.
"""

import asyncio
import hashlib
import time
from dataclasses import dataclass, replace
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ingest.adapters import RawBatch, ReadOptions, adapter_for
from ingest.pipeline import Pipeline, Source
from ingest.writer import WriteResult
from schemas.text import control_character_in
from store.errors import Conflict, PayfeedError, TooLarge
from store.tables import batches

MAX_ERRORS = 1000


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
                # An adapter's error may quote a txn_id it could not validate.
                "txn_id": e.txn_id if e.txn_id and control_character_in(e.txn_id) is None else None,
                "code": e.code,
                "field": e.field,
                "message": e.message,
            }
            for e in result.errors[:MAX_ERRORS]
        ],
    }


@dataclass(frozen=True)
class ReadBatch:
    """A body read by its format's adapter, before any database work: what a
    route holds while it waits for a connection."""

    fmt: str
    digest: bytes
    raw: RawBatch


def read_batch(fmt: str, body: bytes, options: ReadOptions, max_records: int) -> ReadBatch:
    """The body through its adapter (CPU only: run it in a thread); 413 over
    `max_records` records."""
    try:
        raw = adapter_for(fmt)(body, replace(options, max_records=max_records))
    except PayfeedError as exc:
        # Without the adapter's frames: they hold the unpacked body, which a
        # traceback caught in a reference cycle would keep until a full collection.
        raise exc.with_traceback(None) from None
    if raw.received > max_records:
        raise TooLarge(
            "too_many_records", f"batch has {raw.received} records; the limit is {max_records}"
        )
    return ReadBatch(fmt, batch_digest(fmt, body), raw)


async def store_batch(
    conn: AsyncConnection, pipeline: Pipeline, *, provider: str, batch_id: str, read: ReadBatch
) -> dict[str, Any]:
    """Prepare and write a read batch in `conn`'s transaction, or return the answer
    stored for the same id and body."""
    started = time.monotonic()
    stored = await _claim(conn, batch_id, provider, read.digest)
    if stored is not None:
        return {**stored, "replayed": True}
    raw = read.raw
    window = await pipeline.window(conn)
    normalised = await asyncio.to_thread(pipeline.prepare, raw, window)
    result = await pipeline.write(conn, provider, raw, normalised, batch_id=batch_id)
    answer = answer_of(batch_id, provider, result, raw.control_totals)
    pipeline.report(Source.HTTP, provider, result, time.monotonic() - started, batch_id=batch_id)
    await conn.execute(
        batches.update()
        .where(batches.c.batch_id == batch_id)
        .values(answer=orjson.loads(orjson.dumps(answer)))
    )
    return answer


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
