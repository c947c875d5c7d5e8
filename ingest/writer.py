"""The batch writer: one staging COPY, one set-based merge, rollup deltas and
quarantine, all inside the caller's transaction.

Every path into payfeed (HTTP batches, Kafka, backfill, quarantine replay) ends
here, so deduplication and rollups are defined once. The caller owns the
transaction: if it rolls back, nothing of the batch remains.
"""

import io
from dataclasses import dataclass, field
from typing import Any

import orjson
import polars as pl
from sqlalchemy.ext.asyncio import AsyncConnection

from ingest.adapters.base import RawBatch, RowError
from ingest.db import raw_connection
from ingest.masking import mask_values
from ingest.normalise import Normalised
from ingest.rollups import ROLLUP_TABLES, upsert_delta_sql
from schemas.records import QUARANTINED_CODES, STANDARD_FIELDS, Outcome

STAGE_COLUMNS = (
    "idx",
    "txn_id",
    "kind",
    "amount_fen",
    "occurred_at",
    "day",
    "merchant_id",
    "channel",
    "mcc",
    "mcc_category",
    "original_txn_id",
    "payer_hash",
)

CREATE_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS stage_records (
    idx bigint PRIMARY KEY, txn_id text NOT NULL, kind text NOT NULL,
    amount_fen bigint NOT NULL, occurred_at timestamptz NOT NULL, day date NOT NULL,
    merchant_id text NOT NULL, channel text NOT NULL, mcc text, mcc_category text,
    original_txn_id text, payer_hash bytea
) ON COMMIT DELETE ROWS
"""

RECORD_COLUMNS = (
    "provider, txn_id, kind, amount_fen, occurred_at, day, merchant_id, channel, mcc, "
    "original_txn_id, payer_hash, enterprise, city, category"
)

_rollup_ctes = ",\n".join(
    f"rollup_{i} AS ({upsert_delta_sql(table, 'inserted')})"
    for i, table in enumerate(ROLLUP_TABLES)
)

MERGE = f"""
WITH resolved AS (
    SELECT s.*, ma.uscc AS enterprise, coalesce(ma.city, e.city) AS city,
           coalesce(ma.category, s.mcc_category, e.category, 'other') AS category
    FROM stage_records s
    LEFT JOIN merchant_accounts ma ON ma.provider = $1 AND ma.merchant_id = s.merchant_id
    LEFT JOIN enterprises e ON e.uscc = ma.uscc
), inserted AS (
    INSERT INTO records ({RECORD_COLUMNS})
    SELECT $1, txn_id, kind, amount_fen, occurred_at, day, merchant_id, channel, mcc,
           original_txn_id, payer_hash, enterprise, city, category
    FROM resolved WHERE enterprise IS NOT NULL ORDER BY txn_id
    ON CONFLICT (provider, txn_id) DO NOTHING
    RETURNING {RECORD_COLUMNS}
), {_rollup_ctes}
SELECT r.idx, r.enterprise IS NOT NULL AS known
FROM resolved r LEFT JOIN inserted i ON i.txn_id = r.txn_id
WHERE i.txn_id IS NULL
"""
"""Resolve merchants, insert new records, add them to every rollup; answer the
staged rows that were not inserted (unknown merchant, or txn_id already stored)."""

COMPARE = """
SELECT s.idx,
       (r.kind, r.amount_fen, r.occurred_at, r.merchant_id, r.channel, r.mcc,
        r.original_txn_id, r.payer_hash)
       IS NOT DISTINCT FROM
       (s.kind, s.amount_fen, s.occurred_at, s.merchant_id, s.channel, s.mcc,
        s.original_txn_id, s.payer_hash) AS same
FROM stage_records s JOIN records r ON r.provider = $1 AND r.txn_id = s.txn_id
WHERE s.idx = ANY($2::bigint[])
"""
"""Stored records with a staged txn_id: same content is a duplicate, else a conflict.
A separate statement so that it sees records committed by a concurrent batch."""


@dataclass
class WriteResult:
    received: int = 0
    inserted: int = 0
    duplicates: int = 0
    rejected: int = 0
    quarantined: int = 0
    errors: list[RowError] = field(default_factory=list)

    def add(self, other: "WriteResult") -> None:
        self.received += other.received
        self.inserted += other.inserted
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        self.quarantined += other.quarantined
        self.errors.extend(other.errors)


async def write_batch(
    conn: AsyncConnection,
    provider: str,
    raw: RawBatch,
    normalised: Normalised,
    *,
    batch_id: str | None = None,
    source: dict[str, Any] | None = None,
) -> WriteResult:
    """Store a normalised batch; return its exact per-record outcome.

    Idempotent: records already stored with the same content count as duplicates
    and change nothing. Never commits.
    """
    pg = await raw_connection(conn)
    outcome: dict[int, tuple[str, str | None]] = {}
    if normalised.records.height:
        await pg.execute(CREATE_STAGE)
        await pg.copy_to_table(
            "stage_records",
            source=io.BytesIO(_stage_csv(normalised.records)),
            columns=STAGE_COLUMNS,
            format="csv",
        )
        leftovers = await pg.fetch(MERGE, provider)
        stored = [row["idx"] for row in leftovers if row["known"]]
        for row in leftovers:
            if not row["known"]:
                outcome[row["idx"]] = (Outcome.UNKNOWN_MERCHANT, None)
        if stored:
            for row in await pg.fetch(COMPARE, provider, stored):
                code = Outcome.DUPLICATE if row["same"] else Outcome.CONFLICT
                outcome[row["idx"]] = (code, None)
        await pg.execute("TRUNCATE stage_records")
    _resolve_repeats(normalised.repeats, outcome)

    result = WriteResult(received=raw.received)
    result.inserted = normalised.records.height - sum(
        1 for idx in normalised.records["index"] if idx in outcome
    )
    result.duplicates = sum(1 for code, _ in outcome.values() if code == Outcome.DUPLICATE)
    held = {idx: code for idx, (code, _) in outcome.items() if code in QUARANTINED_CODES}
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
    result.errors = sorted(errors, key=lambda e: e.index)
    result.rejected = len(result.errors)
    result.quarantined = await quarantine_records(
        conn, provider, raw.frame, normalised, held, batch_id=batch_id, source=source
    )
    return result


def _resolve_repeats(repeats: pl.DataFrame, outcome: dict[int, tuple[str, str | None]]) -> None:
    """A txn_id seen again later in the same batch is compared with its first
    occurrence: the same content shares the first's fate (a duplicate of a stored
    record), different content is a conflict unless the first was never storable."""
    for row in repeats.iter_rows(named=True):
        first, _ = outcome.get(row["first_index"], (Outcome.INSERTED, None))
        if first == Outcome.UNKNOWN_MERCHANT:
            code = Outcome.UNKNOWN_MERCHANT
        elif row["same"]:
            code = Outcome.CONFLICT if first == Outcome.CONFLICT else Outcome.DUPLICATE
        else:
            code = Outcome.CONFLICT
        outcome[row["index"]] = (code, None)


def _held_message(code: str, txn_id: str | None, provider: str) -> str:
    if code == Outcome.UNKNOWN_MERCHANT:
        return f"merchant account is not registered for provider {provider}; record quarantined"
    return f"txn_id {txn_id} is stored with different content; the stored record stands"


def _txn_ids(frame: pl.DataFrame, held: dict[int, str]) -> dict[int, str | None]:
    if not held:
        return {}
    rows = frame.filter(pl.col("index").is_in(list(held))).select("index", "txn_id")
    return dict(rows.iter_rows())


def _stage_csv(records: pl.DataFrame) -> bytes:
    return (
        records.rename({"index": "idx"})
        .select(STAGE_COLUMNS)
        .write_csv(include_header=False, datetime_format="%Y-%m-%dT%H:%M:%S%.6f%z")
        .encode()
    )


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
    numbers masked."""
    if not held:
        return 0
    hashes = dict(normalised.records.select("index", "payer_hash").iter_rows())
    rows = []
    for record in frame.filter(pl.col("index").is_in(list(held))).iter_rows(named=True):
        index = record["index"]
        stored = {name: record[name] for name in STANDARD_FIELDS if record[name] is not None}
        stored.pop("payer_ref", None)
        if hashes.get(index):
            stored["payer_hash"] = hashes[index]
        code = held[index]
        rows.append(
            (
                provider,
                code,
                _held_message(code, record["txn_id"], provider),
                record["txn_id"],
                orjson.dumps(mask_values(stored)).decode(),
                batch_id,
                orjson.dumps(source).decode() if source else None,
            )
        )
    pg = await raw_connection(conn)
    await pg.copy_records_to_table(
        "quarantine",
        records=rows,
        columns=("provider", "code", "message", "txn_id", "record", "batch_id", "source"),
    )
    return len(rows)
