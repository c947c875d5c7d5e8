"""Rollups: the per-batch delta, dashboard queries over them, and verify/rebuild.

Three grains by day (see `store.tables`) and the enterprises' totals over the
campaign periods (`store.periods`): the writer adds every batch's inserted
records to each in the batch's own transaction, so a rollup always equals a
recount of the stored records once the batch is answered.
"""

from collections.abc import Callable
from datetime import date
from typing import Any

import polars as pl
from sqlalchemy import Table, text
from sqlalchemy.ext.asyncio import AsyncConnection

from ingest.calendar import rebuild_calendar, verify_calendar
from ingest.measures import MEASURE_EXPRS, MEASURE_SQL, differing_rows
from ingest.payers import rebuild_payers
from store.db import raw_connection
from store.periods import PERIOD_UPSERT, Period, keep_period_totals, listed_periods, sum_period
from store.sketches import SKETCH_TABLES
from store.tables import (
    ROLLUP_MEASURES,
    feed_days,
    payer_periods,
    payers_period,
    rollup_city_day,
    rollup_enterprise_day,
    totals_city_day,
    totals_enterprise_period,
)

ROLLUP_TABLES: tuple[Table, ...] = (rollup_city_day, rollup_enterprise_day, totals_city_day)
"""In the order a batch locks their rows, the enterprises' period totals
(`store.periods`) after them. The totals come last: every provider's batches of
a day share their rows, so they are held only for the end of a batch's
transaction."""
PERIOD_DIMS = ["day", "enterprise", "city"]


def dims_of(table: Table) -> list[str]:
    return [c.name for c in table.primary_key.columns]


def aggregate_sql(table: Table, source: str) -> str:
    """`SELECT` of `table`'s rows from a relation of records named `source`,
    grouped and ordered by its key (a fixed order of row locks: concurrent
    batches queue rather than deadlock)."""
    dims = ", ".join(dims_of(table))
    measures = ", ".join(f"{sql} AS {name}" for name, sql in MEASURE_SQL.items())
    return f"SELECT {dims}, {measures} FROM {source} GROUP BY {dims} ORDER BY {dims}"


_SQL_TYPES = {"day": "date", **dict.fromkeys(ROLLUP_MEASURES, "bigint")}


def _upsert_unnest_sql(table: Table) -> str:
    dims = dims_of(table)
    columns = [*dims, *ROLLUP_MEASURES]
    arrays = ", ".join(f"${i}::{_SQL_TYPES.get(c, 'text')}[]" for i, c in enumerate(columns, 1))
    updates = ", ".join(f"{m} = t.{m} + EXCLUDED.{m}" for m in ROLLUP_MEASURES)
    return (
        f"INSERT INTO {table.name} AS t ({', '.join(columns)}) "
        f"SELECT * FROM unnest({arrays}) AS d({', '.join(columns)}) ORDER BY {', '.join(dims)} "
        f"ON CONFLICT ({', '.join(dims)}) DO UPDATE SET {updates}"
    )


UPSERTS = {table.name: _upsert_unnest_sql(table) for table in ROLLUP_TABLES}


async def add_to_rollups(conn: AsyncConnection, inserted: pl.DataFrame) -> None:
    """Add newly inserted records to every rollup: aggregated here, then one
    upsert per rollup table, rows in key order (a fixed order of row locks:
    concurrent batches queue rather than deadlock)."""
    if not inserted.height:
        return
    pg = await raw_connection(conn)
    for table in ROLLUP_TABLES:
        dims = dims_of(table)
        delta = inserted.group_by(dims).agg(**MEASURE_EXPRS).sort(dims)
        await pg.execute(UPSERTS[table.name], *(delta[c].to_list() for c in delta.columns))
    delta = inserted.group_by(PERIOD_DIMS).agg(**MEASURE_EXPRS)
    await pg.execute(PERIOD_UPSERT, *(delta[c].to_list() for c in delta.columns))


async def verify_rollups(
    conn: AsyncConnection,
    first_day: date,
    last_day: date,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Every rollup row in the range that differs from a recount of the stored
    records, as `{"table", dims..., "stored": {...}, "recount": {...}}`; empty when
    every figure adds up. The delivery calendar (`ingest.calendar`) is checked
    with them. `progress(done, total)` follows the tables."""
    source = "(SELECT * FROM records WHERE day BETWEEN :first AND :last) AS r"
    differences = []
    for done, table in enumerate(ROLLUP_TABLES, 1):
        differences += await differing_rows(
            conn,
            table.name,
            dims_of(table),
            ROLLUP_MEASURES,
            aggregate_sql(table, source),
            first_day,
            last_day,
        )
        if progress is not None:
            progress(done, len(ROLLUP_TABLES))
    for first, last in await _periods_within(conn, first_day, last_day):
        differences += await differing_rows(
            conn,
            totals_enterprise_period.name,
            dims_of(totals_enterprise_period),
            ROLLUP_MEASURES,
            "SELECT CAST(:first AS date) AS first_day, CAST(:last AS date) AS last_day, "
            "enterprise, city, "
            + ", ".join(f"{sql} AS {name}" for name, sql in MEASURE_SQL.items())
            + " FROM records WHERE day BETWEEN :first AND :last GROUP BY enterprise, city",
            first,
            last,
            "first_day = :first AND last_day = :last",
        )
    differences.extend(await verify_calendar(conn, first_day, last_day))
    return differences


async def _periods_within(conn: AsyncConnection, first_day: date, last_day: date) -> list[Period]:
    """The listed periods that share a day with `first_day`..`last_day`."""
    return sorted(p for p in await listed_periods(conn) if p[0] <= last_day and first_day <= p[1])


async def rebuild_rollups(
    conn: AsyncConnection,
    first_day: date,
    last_day: date,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, int]:
    """Recompute every rollup (and payer sketch) of the days `first_day`..`last_day`
    from the stored records and swap them in atomically, while ingestion goes on.

    One transaction (READ COMMITTED, the default) first takes
    `LOCK … IN SHARE ROW EXCLUSIVE MODE` on the rollup tables, then every sketch
    table in the order the payer compactor writes them (so the two queue rather
    than deadlock). That mode conflicts with the ROW EXCLUSIVE lock a batch needs to add
    its deltas, and with itself, but not with readers: dashboards go on reading
    the old rows until the commit, then see the new ones — never a half-built
    range. A batch that has already added its deltas holds the tables until it
    commits, so the lock waits for it and the recount includes its records; a
    batch that copies records meanwhile is stopped at its deltas until the rebuild
    commits, is not in the recount, and adds its deltas on top afterwards. Either
    way every record counts exactly once. Writers wait only as long as the
    rebuild runs. The periods of enterprises' totals are made the campaigns'
    (`store.periods`), and every one that shares a day with the range is summed
    again from the rebuilt enterprise-day rollups.
    The delivery calendar is locked (last, after the writer's order) and rebuilt
    with them. Returns the rows written per table; `progress(done,
    total)` follows the tables (the payer sketches and the calendar last)."""
    tables = [
        *ROLLUP_TABLES,
        totals_enterprise_period,
        *SKETCH_TABLES,
        payers_period,
        payer_periods,
        feed_days,
    ]
    await conn.execute(
        text(f"LOCK TABLE {', '.join(t.name for t in tables)} IN SHARE ROW EXCLUSIVE MODE")
    )
    bounds = {"first": first_day, "last": last_day}
    source = "(SELECT * FROM records WHERE day BETWEEN :first AND :last) AS r"
    counts = {}
    for table in ROLLUP_TABLES:
        columns = ", ".join([*dims_of(table), *ROLLUP_MEASURES])
        await conn.execute(
            text(f"DELETE FROM {table.name} WHERE day BETWEEN :first AND :last"), bounds
        )
        inserted = await conn.execute(
            text(f"INSERT INTO {table.name} ({columns}) {aggregate_sql(table, source)}"), bounds
        )
        counts[table.name] = inserted.rowcount
        if progress is not None:
            progress(len(counts), len(ROLLUP_TABLES) + 1)
    await keep_period_totals(conn)
    counts[totals_enterprise_period.name] = 0
    for period in await _periods_within(conn, first_day, last_day):
        counts[totals_enterprise_period.name] += await sum_period(conn, period)
    counts.update(await rebuild_payers(conn, first_day, last_day))
    counts[feed_days.name] = await rebuild_calendar(conn, first_day, last_day)
    if progress is not None:
        progress(len(ROLLUP_TABLES) + 1, len(ROLLUP_TABLES) + 1)
    return counts
