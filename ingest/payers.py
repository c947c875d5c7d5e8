"""Payer sketches kept with the rollups: the writer queues each batch's payers,
a compactor merges the queue into the sketches off the batches' path, and the
rebuild recomputes them from stored records. The sketch format and its merge are
`store.sketches`.

Besides the day grains, the compactor keeps each enterprise's sketch over every
campaign's window and baseline (`payers_period`), merged once here rather than
on every dashboard read: a listing by enterprise over a campaign reads one
stored estimate per enterprise.

So `payer_count` lags the exact measures by up to one merge interval plus the
merge's own run time (`PAYER_COUNT_LAG_SECONDS` in `store.sketches`, stated in
the API docs); every other measure stays exact once a batch is answered."""

import asyncio
import io
import logging
from collections.abc import Iterable
from datetime import date
from typing import Any

import polars as pl
from datasketches import hll_sketch, hll_union
from sqlalchemy import Date, Table, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from store.db import raw_connection
from store.periods import CAMPAIGN_PERIODS, Period
from store.sketches import (
    LG_K,
    SKETCH_TABLES,
    TARGET,
    estimate_of,
    union_of,
    updated,
)
from store.tables import payer_periods, payers_period, rollup_enterprise_day_payers

COPY_CHUNK = 5000


def _dims(table: Table) -> list[str]:
    return [c.name for c in table.primary_key.columns]


def _sql_type(table: Table, column: str) -> str:
    return "date" if isinstance(table.c[column].type, Date) else "text"


def _select_sql(table: Table) -> str:
    """The stored sketches of the given keys, in the keys' order (null where a key
    has none yet): one array, so that no row is built or looked up per key."""
    dims = _dims(table)
    arrays = ", ".join(f"${i}::{_sql_type(table, d)}[]" for i, d in enumerate(dims, 1))
    return (
        f"SELECT array_agg(p.sketch ORDER BY k.i) "
        f"FROM unnest({arrays}) WITH ORDINALITY AS k({', '.join(dims)}, i) "
        f"LEFT JOIN {table.name} p USING ({', '.join(dims)})"
    )


def _stored_columns(table: Table) -> list[str]:
    """What a sketch row holds besides its key: the sketch, and its estimate at
    the coarse grains."""
    return ["sketch", *(["estimate"] if "estimate" in table.c else [])]


def _upsert_sql(table: Table) -> str:
    dims = _dims(table)
    stored = _stored_columns(table)
    columns = [*dims, *stored]
    types = [*(_sql_type(table, d) for d in dims), "bytea", "bigint"][: len(columns)]
    arrays = ", ".join(f"${i}::{t}[]" for i, t in enumerate(types, 1))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in stored)
    return (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "
        f"SELECT * FROM unnest({arrays}) AS d({', '.join(columns)}) "
        f"ORDER BY {', '.join(dims)} "
        f"ON CONFLICT ({', '.join(dims)}) DO UPDATE SET {updates}"
    )


SELECTS = {table.name: _select_sql(table) for table in (*SKETCH_TABLES, payers_period)}
UPSERTS = {table.name: _upsert_sql(table) for table in (*SKETCH_TABLES, payers_period)}

KEPT_PERIODS = "SELECT first_day, last_day FROM payer_periods"
PERIOD_SKETCHES = """
SELECT enterprise, city, array_agg(sketch) AS sketches FROM rollup_enterprise_day_payers
WHERE day BETWEEN $1 AND $2 GROUP BY enterprise, city
"""
DROP_PERIOD = (
    "DELETE FROM payers_period WHERE first_day = $1 AND last_day = $2",
    "DELETE FROM payer_periods WHERE first_day = $1 AND last_day = $2",
)


PAYER_COLUMNS = ("day", "city", "enterprise", "category", "channel", "provider", "payer_hash")
"""What the sketches of both grains need of a record."""
DAY_ORDER = ("day", "city", "category", "channel", "provider", "enterprise")
"""An order in which the key of every day grain (`SKETCH_TABLES`) is a prefix
(the enterprise-day key is the whole of it): each key's payers come together."""

COMPACT_EVERY = 5.0
"""Seconds between merges of the queued payers into the sketches."""
COMPACT_BYTES = 24 << 20
"""Queued payers merged in one transaction at most, as stored (about 60 bytes a
record: some 400,000 records), however many batches or chunks they came in; at
least one batch. A merge holds its payers in memory, and a backfill's last merge
must not double its peak. Larger rounds cost less per record where batches are
scattered: each stored sketch is read and rewritten once per round, for all the
round's payers of its key, so 400,000 records over 200,000 enterprise-days
rewrite each about once, where 100,000 rewrote most of them once per 1.3
records."""
BACKFILL_COMPACT_BYTES = 8 << 20
"""A backfill's rounds, merged when the files are in: smaller, because they come
on top of the command's peak memory (635 MB at 24 MB a round for 2,000,000
records, against 600 MB allowed)."""
COMPACT_LOCK = 0x70617965  # "paye"
"""Advisory lock key: one compactor merges at a time, whichever process it runs in."""

QUEUE = "INSERT INTO payer_queue (payers) VALUES ($1)"
TAKE = """
SELECT id, payers FROM payer_queue
WHERE id <= coalesce(
    (SELECT max(id) FROM (
        SELECT id, sum(octet_length(payers)) OVER (ORDER BY id) AS upto
        FROM payer_queue ORDER BY id LIMIT 1000
    ) AS running WHERE upto <= $1),
    (SELECT min(id) FROM payer_queue))
ORDER BY id
"""
"""The oldest queued batches up to `$1` bytes, at least one (its size is read
from the header of its stored value, without reading the value)."""
DONE = "DELETE FROM payer_queue WHERE id = ANY($1::bigint[])"

log = logging.getLogger(__name__)


async def queue_payers(conn: AsyncConnection, inserted: pl.DataFrame) -> None:
    """Append the payers of a batch's newly inserted records to the queue, in the
    batch's transaction: one row, whatever the number of rollup keys the batch
    touches. `compact_payers` merges them into the sketches later.

    Why not merge here: updating a sketch is a read, a merge and a rewrite of
    every key the batch touches, so a batch spread over many enterprise-days costs
    in proportion to its keys (0.3 to 0.6 s for 10,000 records over 20 days and
    10,000 enterprises, against 0.04 s to queue them); merged later, a key is
    rewritten once per merge, however many batches touched it."""
    payers = inserted.filter(pl.col("payer_hash").is_not_null())
    if not payers.height:
        return
    buffer = io.BytesIO()
    payers.select(PAYER_COLUMNS).write_ipc(buffer, compression="lz4")
    pg = await raw_connection(conn)
    await pg.execute(QUEUE, buffer.getvalue())


async def compact_payers(conn: AsyncConnection, budget: int = COMPACT_BYTES) -> int:
    """Merge the oldest queued batches, up to `budget` bytes of them, into the
    sketches and take them off the queue; returns how many were merged (0 when
    another compactor holds the lock or nothing is queued). Merging a payer into
    a sketch twice changes nothing, so a merge that races a rebuild
    (`ingest.rollups.rebuild_rollups`) counts no payer twice."""
    # Through `conn`, so that its transaction has begun: the lock and every
    # statement after it on the raw connection belong to it.
    lock = text("SELECT pg_try_advisory_xact_lock(:key)")
    if not (await conn.execute(lock, {"key": COMPACT_LOCK})).scalar_one():
        return 0
    pg = await raw_connection(conn)
    kept = {(r["first_day"], r["last_day"]) for r in await pg.fetch(KEPT_PERIODS)}
    queued = await pg.fetch(TAKE, budget)
    if queued:
        payers = pl.concat([pl.read_ipc(io.BytesIO(row["payers"])) for row in queued])
        await merge_payers(pg, payers, kept)
        await pg.execute(DONE, [row["id"] for row in queued])
    await keep_campaign_periods(pg, kept)
    return len(queued)


async def compact_all(engine: AsyncEngine, budget: int = COMPACT_BYTES) -> int:
    """Merge everything queued, a transaction per `budget` bytes of it; returns
    how many batches were merged."""
    merged = 0
    while True:
        async with engine.begin() as conn:
            done = await compact_payers(conn, budget)
        merged += done
        if done == 0:
            return merged


async def compact_continuously(engine: AsyncEngine, every: float = COMPACT_EVERY) -> None:
    """Runs until cancelled: every `every` seconds, merge what is queued. Each API
    process and consumer runs one; the advisory lock lets one merge at a time. A
    failed round is logged and the next one tried."""
    while True:
        await asyncio.sleep(every)
        try:
            await compact_all(engine)
        except Exception:
            log.exception("merging queued payers failed; retrying at the next interval")


async def merge_payers(pg: Any, payers: pl.DataFrame, periods: Iterable[Period] = ()) -> None:
    """Add payers to the sketch of every rollup row they count in, and of their
    enterprise over each of `periods` their day falls in. The tables are written
    in a fixed order (`SKETCH_TABLES`, then `payers_period`), the one
    `ingest.rollups.rebuild_rollups` locks them in.

    Each payer's item (the hex of its hash) is made once: sorted by `DAY_ORDER`,
    the payers of every day grain's key are one slice of the same list, and the
    periods take theirs from it by index. Every sketch gets the registers that
    adding its payers one by one gives, whatever their order, so the same
    estimates (`store.sketches`). An enterprise-day's or a period's payers keep
    the order they came in, so those sketches are the same bytes too; a coarser
    day's come in key order, which changes only the order-dependent estimator
    its bytes also carry, one payfeed never reads.

    The work between statements runs on a thread (here and in `_merge_into`),
    so that the requests of the process go on while a round merges."""
    ordered, items = await asyncio.to_thread(_in_day_order, payers)
    for table in SKETCH_TABLES:
        await _merge_into(pg, table, ordered, items)
    periods = list(periods)
    if periods:
        by_period, period_items = await asyncio.to_thread(_by_period, ordered, items, periods)
        await _merge_into(pg, payers_period, by_period, period_items)


def _in_day_order(payers: pl.DataFrame) -> tuple[pl.DataFrame, list[str]]:
    """The payers in `DAY_ORDER`, ties by arrival, and their items in that order."""
    # Sorted as one struct: several times as fast as a sort by six text columns,
    # or a stable sort.
    ordered = payers.with_row_index("came").sort(pl.struct(*DAY_ORDER, "came"))
    return ordered, ordered["payer_hash"].bin.encode("hex").to_list()


def _by_period(
    ordered: pl.DataFrame, items: list[str], periods: list[Period]
) -> tuple[pl.DataFrame, list[str]]:
    """The payers of each period (`payers_period`'s key order, ties by arrival),
    and their items, taken from the day-ordered ones by index."""
    in_periods = [
        ordered.with_row_index("item")
        .filter(pl.col("day").is_between(first, last))
        .with_columns(first_day=pl.lit(first), last_day=pl.lit(last))
        for first, last in periods
    ]
    by_period = pl.concat(in_periods).sort(pl.struct(*_dims(payers_period), "came"))
    return by_period, [items[i] for i in by_period["item"].to_list()]


async def _merge_into(pg: Any, table: Table, keyed: pl.DataFrame, items: list[str]) -> None:
    """`keyed` is ordered so that the rows of each of `table`'s keys are
    consecutive, and `items[i]` is the payer of its row `i`. The stored sketches
    of those keys are loaded with one SELECT, each updated with its slice of
    `items`, and written back with one upsert, rows in key order."""
    if not keyed.height:
        return
    dims = _dims(table)
    first_rows = keyed.select(
        pl.any_horizontal(pl.col(d).ne_missing(pl.col(d).shift()) for d in dims)
    ).to_series()
    starts = first_rows.arg_true().to_list()
    keys = [keyed[d].gather(starts).to_list() for d in dims]
    stored = await pg.fetchval(SELECTS[table.name], *keys)
    ends = [*starts[1:], keyed.height]
    # On a thread: a round's sketch work is seconds of CPU that would otherwise hold
    # the event loop, and every request of the process, until it is done.
    values = await asyncio.to_thread(
        _updated_sketches, items, starts, ends, stored, "estimate" in table.c
    )
    await pg.execute(UPSERTS[table.name], *keys, *values)


def _updated_sketches(
    items: list[str], starts: list[int], ends: list[int], stored: list[Any], estimates: bool
) -> list[list[Any]]:
    """Each key's stored sketch (or a new one) with its slice of `items` added,
    serialized, and with `estimates` their estimates: one library call per payer."""
    sketches = [
        bytes(updated(items[start:end], base).serialize_compact())
        for start, end, base in zip(starts, ends, stored, strict=True)
    ]
    return [sketches, [estimate_of(s) for s in sketches]] if estimates else [sketches]


async def keep_campaign_periods(pg: Any, kept: set[Period]) -> None:
    """Make the kept periods (`kept`: `payer_periods` as read) the campaigns'
    windows and baselines: a period no campaign has any more is dropped, a new
    one is built from the enterprise-day sketches. Writes nothing when nothing
    changed, so the data version stays put."""
    wanted = {(r["first_day"], r["last_day"]) for r in await pg.fetch(CAMPAIGN_PERIODS)}
    for period in sorted(kept - wanted):
        await _drop_period(pg, period)
    for period in sorted(wanted - kept):
        await build_period(pg, period)


async def _drop_period(pg: Any, period: Period) -> None:
    for statement in DROP_PERIOD:
        await pg.execute(statement, *period)


async def build_period(pg: Any, period: Period) -> int:
    """Every enterprise's sketch over `period`: the union of its enterprise-day
    sketches, streamed in bounded memory; the period is then listed as kept.
    Returns the rows written. The caller holds the compactor's lock, or the
    rebuild's table locks, so no merge runs meanwhile."""
    out: list[tuple[Any, ...]] = []
    written = 0
    columns = [*_dims(payers_period), "sketch", "estimate"]
    async for row in pg.cursor(PERIOD_SKETCHES, *period, prefetch=1000):
        union = union_of(row["sketches"])
        merged = bytes(union.get_result(TARGET).serialize_compact())
        out.append((*period, row["enterprise"], row["city"], merged, estimate_of(merged)))
        if len(out) >= COPY_CHUNK:
            await pg.copy_records_to_table(payers_period.name, records=out, columns=columns)
            written += len(out)
            out.clear()
    if out:
        await pg.copy_records_to_table(payers_period.name, records=out, columns=columns)
        written += len(out)
    await pg.execute(f"INSERT INTO {payer_periods.name} VALUES ($1, $2)", *period)
    return written


REBUILD_SQL = f"""
SELECT {", ".join(DAY_ORDER)}, array_agg(payer_hash) AS hashes
FROM records WHERE day BETWEEN $1 AND $2 AND payer_hash IS NOT NULL
GROUP BY {", ".join(DAY_ORDER)} ORDER BY {", ".join(DAY_ORDER)}
"""
"""One pass over the records: ordered so that the enterprises of each key of a
coarser grain come together, and its sketch is the union of theirs (an HLL union
is the same sketch as one built from all the payers)."""


async def rebuild_payers(conn: AsyncConnection, first_day: date, last_day: date) -> dict[str, int]:
    """Replace the sketches of the days `first_day`..`last_day` at every grain with
    sketches recomputed from the stored records, streamed in bounded memory, then
    every kept period that overlaps those days from the enterprise-day sketches.
    The caller holds the locks that keep writers out
    (`ingest.rollups.rebuild_rollups`)."""
    pg = await raw_connection(conn)
    fine = rollup_enterprise_day_payers
    # Each keyed by a prefix of REBUILD_SQL's order, so each key's rows come together.
    coarser = [t for t in SKETCH_TABLES if t is not fine]
    out: dict[Table, list[tuple[Any, ...]]] = {t: [] for t in SKETCH_TABLES}
    counts = dict.fromkeys((t.name for t in SKETCH_TABLES), 0)
    for table in SKETCH_TABLES:
        await pg.execute(
            f"DELETE FROM {table.name} WHERE day BETWEEN $1 AND $2", first_day, last_day
        )

    async def flush(table: Table) -> None:
        columns = [*_dims(table), *_stored_columns(table)]
        await pg.copy_records_to_table(table.name, records=out[table], columns=columns)
        counts[table.name] += len(out[table])
        out[table].clear()

    def close(table: Table, key: tuple[Any, ...], sketch: hll_sketch) -> None:
        image = bytes(sketch.serialize_compact())
        out[table].append((*key, image, *([estimate_of(image)] if "estimate" in table.c else [])))

    open_unions: dict[Table, tuple[tuple[Any, ...], hll_union]] = {}
    async for row in pg.cursor(REBUILD_SQL, first_day, last_day, prefetch=1000):
        sketch = hll_sketch(LG_K, TARGET)
        for payer in row["hashes"]:
            sketch.update(payer.hex())
        close(fine, tuple(row[d] for d in _dims(fine)), sketch)
        for table in coarser:
            key = tuple(row[d] for d in _dims(table))
            if table in open_unions and open_unions[table][0] != key:
                close(table, open_unions[table][0], open_unions[table][1].get_result(TARGET))
                del open_unions[table]
            open_unions.setdefault(table, (key, hll_union(LG_K)))[1].update(sketch)
        for table in SKETCH_TABLES:
            if len(out[table]) >= COPY_CHUNK:
                await flush(table)
    for table, (key, union) in open_unions.items():
        close(table, key, union.get_result(TARGET))
    for table in SKETCH_TABLES:
        await flush(table)
    counts[payers_period.name] = 0
    for period in await pg.fetch(
        f"{KEPT_PERIODS} WHERE first_day <= $2 AND last_day >= $1 ORDER BY 1, 2",
        first_day,
        last_day,
    ):
        await _drop_period(pg, (period[0], period[1]))
        counts[payers_period.name] += await build_period(pg, (period[0], period[1]))
    return counts
