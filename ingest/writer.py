"""The batch writer: merchants resolved, new records COPYed straight into the
record table, rollup deltas added, held records quarantined — all inside the
caller's transaction.

Every path into payfeed (HTTP batches, Kafka, backfill, quarantine replay) ends
here, so deduplication and rollups are defined once. The caller owns the
transaction: if it rolls back, nothing of the batch remains.

Why COPY and not `INSERT … ON CONFLICT`: a batch of new records is copied as it
is (binary COPY, costing what a raw COPY costs) and the primary key finds any
txn_id stored already; then, and only then, the batch is checked against the
stored records (one indexed lookup of all its txn_ids) and only its new records
are copied. A concurrent batch may store one of the same txn_ids in between: the
COPY then fails again inside its savepoint, and the check runs again.
"""

import hashlib
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
import polars as pl
from pgpq import ArrowToPostgresBinaryEncoder
from sqlalchemy.ext.asyncio import AsyncConnection

from ingest.adapters.base import RawBatch, RowError
from ingest.calendar import record_delivery
from ingest.masking import mask_values
from ingest.normalise import CONTENT, Normalised
from ingest.payers import queue_payers
from ingest.rollups import add_to_rollups
from schemas.records import QUARANTINED_CODES, STANDARD_FIELDS, Outcome
from store.db import raw_connection

RECORD_COLUMNS = (
    "provider",
    "txn_id",
    "kind",
    "amount_fen",
    "occurred_at",
    "day",
    "merchant_id",
    "channel",
    "mcc",
    "original_txn_id",
    "payer_hash",
    "enterprise",
    "city",
    "category",
)

RESOLVE = """
SELECT ma.merchant_id, ma.uscc AS enterprise, coalesce(ma.city, e.city) AS city,
       ma.category AS account_category, e.category AS enterprise_category
FROM merchant_accounts ma JOIN enterprises e ON e.uscc = ma.uscc
WHERE ma.provider = $1 AND ma.merchant_id = ANY($2::text[])
"""

STORED = """
SELECT txn_id, kind, amount_fen, occurred_at, merchant_id, channel, mcc, original_txn_id,
       payer_hash
FROM records WHERE provider = $1 AND txn_id = ANY($2::text[])
"""

MAX_ATTEMPTS = 5


@dataclass
class WriteResult:
    received: int = 0
    inserted: int = 0
    duplicates: int = 0
    rejected: int = 0
    quarantined: int = 0
    errors: list[RowError] = field(default_factory=list)


async def write_batch(
    conn: AsyncConnection,
    provider: str,
    raw: RawBatch,
    normalised: Normalised,
    *,
    batch_id: str | None = None,
    source: dict[str, Any] | None = None,
    hold: bool = True,
) -> WriteResult:
    """Store a normalised batch; return its exact per-record outcome.

    Idempotent: records already stored with the same content count as duplicates
    and change nothing. Never commits. `hold=False` leaves held records out of
    the quarantine (a quarantine replay keeps its own rows).
    """
    outcome: dict[int, str] = {}
    new = normalised.records.clear()
    if normalised.records.height:
        resolved = await _resolve_merchants(conn, provider, normalised.records)
        for index in resolved.filter(pl.col("enterprise").is_null())["index"]:
            outcome[index] = Outcome.UNKNOWN_MERCHANT
        new, seen = await _insert_new(
            conn, provider, resolved.filter(pl.col("enterprise").is_not_null())
        )
        outcome.update(seen)
        await add_to_rollups(conn, new)
        await queue_payers(conn, new)
    await record_delivery(conn, provider, raw, normalised, new, outcome, batch_id, source)
    _resolve_repeats(normalised.repeats, outcome)

    held = {idx: code for idx, code in outcome.items() if code in QUARANTINED_CODES}
    txn_ids = _txn_ids(raw.frame, held)
    errors = [
        *raw.malformed,
        *(
            RowError(r["index"], r["code"], r["message"], r["field"], r["txn_id"])
            for r in normalised.rejected.iter_rows(named=True)
        ),
        *(
            RowError(idx, code, _held_message(code, txn_ids[idx], provider), None, txn_ids[idx])
            for idx, code in held.items()
        ),
    ]
    return WriteResult(
        received=raw.received,
        inserted=new.height,
        duplicates=sum(1 for code in outcome.values() if code == Outcome.DUPLICATE),
        rejected=len(errors),
        quarantined=await quarantine_records(
            conn, provider, raw.frame, normalised, held, batch_id=batch_id, source=source
        )
        if hold
        else 0,
        errors=sorted(errors, key=lambda e: e.index),
    )


async def _resolve_merchants(
    conn: AsyncConnection, provider: str, records: pl.DataFrame
) -> pl.DataFrame:
    """Enterprise, city and category of every record from its merchant account
    (one query for the batch's distinct merchants); `enterprise` null = unknown.
    Category: the account's, else the MCC's, else the enterprise's, else other."""
    pg = await raw_connection(conn)
    merchants = records["merchant_id"].unique().to_list()
    rows = await pg.fetch(RESOLVE, provider, merchants)
    accounts = pl.DataFrame(
        [dict(r) for r in rows],
        schema={
            "merchant_id": pl.String,
            "enterprise": pl.String,
            "city": pl.String,
            "account_category": pl.String,
            "enterprise_category": pl.String,
        },
        orient="row",
    )
    return records.join(accounts, on="merchant_id", how="left").with_columns(
        pl.coalesce(
            "account_category", "mcc_category", "enterprise_category", pl.lit("other")
        ).alias("category"),
        pl.lit(provider).alias("provider"),
    )


async def _insert_new(
    conn: AsyncConnection, provider: str, known: pl.DataFrame
) -> tuple[pl.DataFrame, dict[int, str]]:
    """COPY the records whose txn_id is not stored yet; classify the others as
    duplicates (same content) or conflicts. Returns the inserted rows.

    A batch is usually all new (a retried HTTP batch is answered from the batch
    table, a backfill resumes after its last chunk), so it is first copied as it
    is, the primary key checking it. Only when that fails on a stored txn_id is
    the batch looked up against the stored records and its new rows copied."""
    pg = await raw_connection(conn)
    # In txn_id order: concurrent batches that share txn_ids then wait on each
    # other's keys in one order instead of deadlocking.
    rows = known.sort("txn_id")
    if await _copy_records(conn, pg, rows):
        return rows, {}
    for _ in range(MAX_ATTEMPTS):
        stored = await _stored_content(pg, provider, rows["txn_id"].to_list())
        new = rows.filter(~pl.col("txn_id").is_in(stored["txn_id"].implode()))
        if not await _copy_records(conn, pg, new):
            continue
        compared = rows.join(stored, on="txn_id", suffix="_stored").select(
            "index",
            pl.all_horizontal(pl.col(c).eq_missing(pl.col(f"{c}_stored")) for c in CONTENT).alias(
                "same"
            ),
        )
        seen: dict[int, str] = {
            index: Outcome.DUPLICATE if same else Outcome.CONFLICT
            for index, same in compared.iter_rows()
        }
        return new, seen
    raise RuntimeError(f"records kept colliding with concurrent batches {MAX_ATTEMPTS} times")


async def _copy_records(conn: AsyncConnection, pg: Any, rows: pl.DataFrame) -> bool:
    """COPY `rows` into the records in a savepoint; False (and nothing stored)
    when one of their txn_ids is stored already.

    Binary COPY encoded from Arrow by pgpq (Rust): no text to render here and
    none for the server to parse, which is most of what COPY costs beyond the
    index updates."""
    if not rows.height:
        return True
    table = rows.select(RECORD_COLUMNS).to_arrow()
    encoder = ArrowToPostgresBinaryEncoder(table.schema)
    data = b"".join(
        [encoder.write_header(), *map(encoder.write_batch, table.to_batches()), encoder.finish()]
    )
    try:
        async with conn.begin_nested():
            # A buffer is sent as it is (bytes would be taken for a path, and a file
            # is read in 512 KB pieces through the thread pool).
            await pg.copy_to_table(
                "records", source=memoryview(data), columns=RECORD_COLUMNS, format="binary"
            )
    except asyncpg.UniqueViolationError:
        return False
    return True


async def _stored_content(pg: Any, provider: str, txn_ids: list[str]) -> pl.DataFrame:
    rows = await pg.fetch(STORED, provider, txn_ids)
    return pl.DataFrame(
        [dict(r) for r in rows],
        schema={
            "txn_id": pl.String,
            "kind": pl.String,
            "amount_fen": pl.Int64,
            "occurred_at": pl.Datetime("us", "UTC"),
            "merchant_id": pl.String,
            "channel": pl.String,
            "mcc": pl.String,
            "original_txn_id": pl.String,
            "payer_hash": pl.Binary,
        },
        orient="row",
    )


def _resolve_repeats(repeats: pl.DataFrame, outcome: dict[int, str]) -> None:
    """A txn_id seen again later in the same batch is compared with its first
    occurrence: the same content shares the first's fate (a duplicate of a stored
    record), different content is a conflict unless the first was never storable."""
    for row in repeats.iter_rows(named=True):
        first = outcome.get(row["first_index"], Outcome.INSERTED)
        if first == Outcome.UNKNOWN_MERCHANT:
            code = Outcome.UNKNOWN_MERCHANT
        elif row["same"]:
            code = Outcome.CONFLICT if first == Outcome.CONFLICT else Outcome.DUPLICATE
        else:
            code = Outcome.CONFLICT
        outcome[row["index"]] = code


def _held_message(code: str, txn_id: str | None, provider: str) -> str:
    if code == Outcome.UNKNOWN_MERCHANT:
        return f"merchant account is not registered for provider {provider}; record quarantined"
    return f"txn_id {txn_id} is stored with different content; the stored record stands"


def _txn_ids(frame: pl.DataFrame, held: dict[int, str]) -> dict[int, str | None]:
    if not held:
        return {}
    rows = frame.filter(pl.col("index").is_in(list(held))).select("index", "txn_id")
    return dict(rows.iter_rows())


QUARANTINE = """
INSERT INTO quarantine (provider, code, message, txn_id, record, batch_id, source, digest)
SELECT $1, u.code, u.message, u.txn_id, u.record::jsonb, $2, $3::jsonb, u.digest
FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::bytea[])
     AS u(code, message, txn_id, record, digest)
ON CONFLICT (provider, digest) DO NOTHING
"""


async def quarantine_records(
    conn: AsyncConnection,
    provider: str,
    frame: pl.DataFrame,
    normalised: Normalised,
    held: dict[int, str],
    *,
    batch_id: str | None,
    source: dict[str, Any] | None,
) -> int:
    """Keep held records as the standard record they were read as, so that ops can
    fix the registry and replay them: the payer reference only as its hash, card
    numbers masked. A record already held (same provider, same stored form) is
    not held twice. Returns how many of the batch's records are held."""
    if not held:
        return 0
    hashes = dict(normalised.records.select("index", "payer_hash").iter_rows())
    columns: tuple[list[Any], ...] = ([], [], [], [], [])
    for record in frame.filter(pl.col("index").is_in(list(held))).iter_rows(named=True):
        index = record["index"]
        stored = {name: record[name] for name in STANDARD_FIELDS if record[name] is not None}
        stored.pop("payer_ref", None)
        if hashes.get(index):
            stored["payer_hash"] = "\\x" + hashes[index].hex()
        text = orjson.dumps(mask_values(stored), option=orjson.OPT_SORT_KEYS).decode()
        code = held[index]
        for column, value in zip(
            columns,
            (
                code,
                _held_message(code, record["txn_id"], provider),
                record["txn_id"],
                text,
                hashlib.sha256(text.encode()).digest(),
            ),
            strict=True,
        ):
            column.append(value)
    pg = await raw_connection(conn)
    await pg.execute(
        QUARANTINE,
        provider,
        batch_id,
        orjson.dumps(source).decode() if source else None,
        *columns,
    )
    return len(held)
