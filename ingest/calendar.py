"""The delivery calendar (SPEC section 10): per provider and local day, what the
feeds stored and when it arrived; and, per file or batch that declared control
totals, its declared figures against what was read and what is stored.

`record_delivery` is the writer's one call, in the batch's transaction, after
the rollups: the calendar is exact like them (`verify_calendar` recounts it from
the records, `rebuild_calendar` recomputes it). A day's arrival is its records'
`ingested_at` (the writing transaction's start, `now()`), so the number of
batches that carried a day is the number of distinct `ingested_at` among its
records, and first/last arrival are their minimum and maximum.
"""

from datetime import date
from typing import Any

import orjson
import polars as pl
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ingest.adapters.base import RawBatch
from ingest.measures import MEASURE_EXPRS, MEASURE_SQL, differing_rows
from ingest.normalise import Normalised
from schemas.records import Outcome
from store.db import raw_connection
from store.tables import ROLLUP_MEASURES, feed_days

CALENDAR_COLUMNS = (*ROLLUP_MEASURES, "batches", "first_arrival", "last_arrival")

ADD_TO_CALENDAR = f"""
INSERT INTO feed_days AS t (provider, day, {", ".join(ROLLUP_MEASURES)},
                            batches, first_arrival, last_arrival)
SELECT $1, d.day, {", ".join(f"d.{m}" for m in ROLLUP_MEASURES)}, 1, now(), now()
FROM unnest($2::date[], {", ".join(f"${i}::bigint[]" for i in range(3, 3 + len(ROLLUP_MEASURES)))})
     AS d(day, {", ".join(ROLLUP_MEASURES)})
ORDER BY d.day
ON CONFLICT (provider, day) DO UPDATE SET
    {", ".join(f"{m} = t.{m} + EXCLUDED.{m}" for m in ROLLUP_MEASURES)},
    batches = t.batches + (t.last_arrival <> EXCLUDED.last_arrival)::int,
    first_arrival = least(t.first_arrival, EXCLUDED.first_arrival),
    last_arrival = greatest(t.last_arrival, EXCLUDED.last_arrival)
"""
"""`now()` is the transaction's start, the `ingested_at` of its records: a second
write of the same provider and day in one transaction adds no batch."""

RECOUNT = f"""
SELECT provider, day, {", ".join(f"{sql} AS {name}" for name, sql in MEASURE_SQL.items())},
       count(DISTINCT ingested_at) AS batches,
       min(ingested_at) AS first_arrival, max(ingested_at) AS last_arrival
FROM records WHERE day BETWEEN :first AND :last
GROUP BY provider, day
"""

FILE_MEASURES = {
    "records": pl.len(),
    "payment_count": MEASURE_EXPRS["payment_count"],
    "payment_fen": MEASURE_EXPRS["gross_fen"],
    "refund_count": MEASURE_EXPRS["refund_count"],
    "refund_fen": MEASURE_EXPRS["refund_fen"],
}

STORED_FILE = (
    "SELECT read::text, received, stored::text FROM feed_files WHERE provider = $1 AND source = $2"
)

UPSERT_FILE = """
INSERT INTO feed_files AS t (provider, source, declared, read, received, stored,
                             first_day, last_day, first_arrival, last_arrival)
VALUES ($1, $2, $3::jsonb, $4::jsonb, $5, $6::jsonb, $7, $8, now(), now())
ON CONFLICT (provider, source) DO UPDATE SET
    declared = coalesce(EXCLUDED.declared, t.declared),
    read = EXCLUDED.read, received = EXCLUDED.received, stored = EXCLUDED.stored,
    first_day = least(t.first_day, EXCLUDED.first_day),
    last_day = greatest(t.last_day, EXCLUDED.last_day),
    last_arrival = EXCLUDED.last_arrival
"""


async def record_delivery(
    conn: AsyncConnection,
    provider: str,
    raw: RawBatch,
    normalised: Normalised,
    inserted: pl.DataFrame,
    outcome: dict[int, str],
    batch_id: str | None,
    source: dict[str, Any] | None,
) -> None:
    """Add a batch's inserted records to the calendar and, when its format has
    control totals, its figures to its file's reconciliation row (kept under
    `batch:<id>` for an HTTP batch, `file:<path>` for a backfilled file).

    Of the batch's valid records, those inserted or found stored already (by
    `outcome`, the writer's outcome per index) count as stored. Never commits."""
    await _add_to_calendar(conn, provider, inserted)
    if raw.declared_totals is None and raw.read_totals is None:
        return
    if batch_id is not None:
        key = f"batch:{batch_id}"
    elif source is not None and "file" in source:
        key = f"file:{source['file']}"
    else:
        return
    duplicates = [i for i, code in outcome.items() if code == Outcome.DUPLICATE]
    stored = normalised.records.filter(
        pl.col("index").is_in(inserted["index"].implode()) | pl.col("index").is_in(duplicates)
    )
    await _add_to_file(
        conn, provider, key, raw.declared_totals, raw.read_totals or {}, raw.received, stored
    )


async def _add_to_calendar(conn: AsyncConnection, provider: str, inserted: pl.DataFrame) -> None:
    if not inserted.height:
        return
    delta = inserted.group_by("day").agg(**MEASURE_EXPRS).sort("day")
    pg = await raw_connection(conn)
    await pg.execute(ADD_TO_CALENDAR, provider, *(delta[c].to_list() for c in delta.columns))


async def _add_to_file(
    conn: AsyncConnection,
    provider: str,
    source: str,
    declared: dict[str, Any] | None,
    read: dict[str, Any],
    received: int,
    stored: pl.DataFrame,
) -> None:
    """Sum this batch into its file's row: a backfilled file comes in chunks, each
    with its rows' read totals; the declared totals come with the chunk that holds
    the file's trailer or summary."""
    pg = await raw_connection(conn)
    before = await pg.fetchrow(STORED_FILE + " FOR UPDATE", provider, source)
    figures = {k: int(v or 0) for k, v in stored.select(**FILE_MEASURES).row(0, named=True).items()}
    days = stored["day"]
    if before is not None:
        read = _summed(orjson.loads(before["read"]), read)
        figures = _summed(orjson.loads(before["stored"]), figures)
        received += before["received"]
    await pg.execute(
        UPSERT_FILE,
        provider,
        source,
        None if declared is None else orjson.dumps(declared).decode(),
        orjson.dumps(read).decode(),
        received,
        orjson.dumps(figures).decode(),
        days.min(),
        days.max(),
    )


def _summed(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    return {k: a.get(k, 0) + b.get(k, 0) for k in {*a, *b}}


async def verify_calendar(
    conn: AsyncConnection, first_day: date, last_day: date
) -> list[dict[str, Any]]:
    """Every calendar row of the range that differs from a recount of the stored
    records, as `{"table", "provider", "day", "stored", "recount"}`."""
    return await differing_rows(
        conn, feed_days.name, ("provider", "day"), CALENDAR_COLUMNS, RECOUNT, first_day, last_day
    )


async def rebuild_calendar(conn: AsyncConnection, first_day: date, last_day: date) -> int:
    """Recompute the calendar of the range from the stored records. The caller
    holds the lock that keeps writers out (`ingest.rollups.rebuild_rollups`).
    Returns the rows written."""
    bounds = {"first": first_day, "last": last_day}
    await conn.execute(text("DELETE FROM feed_days WHERE day BETWEEN :first AND :last"), bounds)
    columns = ", ".join(("provider", "day", *CALENDAR_COLUMNS))
    inserted = await conn.execute(text(f"INSERT INTO feed_days ({columns}) {RECOUNT}"), bounds)
    return int(inserted.rowcount)
