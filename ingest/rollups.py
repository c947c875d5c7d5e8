"""Rollups: the per-batch delta, dashboard queries over them, and verify/rebuild.

Two grains (see `ingest.tables`): the writer adds every batch's inserted records
to both in the batch's own transaction, so a rollup always equals a recount of
the stored records once the batch is answered.
"""

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any

import polars as pl
from sqlalchemy import BigInteger, ColumnElement, Table, cast, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from ingest.db import raw_connection
from ingest.payers import PAYER_TABLES, estimate, rebuild_payers, union_of
from ingest.tables import ROLLUP_MEASURES, rollup_city_day, rollup_enterprise_day

ROLLUP_TABLES: tuple[Table, ...] = (rollup_city_day, rollup_enterprise_day)

MEASURE_SQL = {
    "payment_count": "count(*) FILTER (WHERE kind = 'payment')",
    "refund_count": "count(*) FILTER (WHERE kind = 'refund')",
    "gross_fen": "coalesce(sum(amount_fen) FILTER (WHERE kind = 'payment'), 0)",
    "refund_fen": "coalesce(sum(amount_fen) FILTER (WHERE kind = 'refund'), 0)",
}
assert tuple(MEASURE_SQL) == ROLLUP_MEASURES


def dims_of(table: Table) -> list[str]:
    return [c.name for c in table.primary_key.columns]


def aggregate_sql(table: Table, source: str) -> str:
    """`SELECT` of `table`'s rows from a relation of records named `source`,
    grouped and ordered by its key (a fixed order of row locks: concurrent
    batches queue rather than deadlock)."""
    dims = ", ".join(dims_of(table))
    measures = ", ".join(f"{sql} AS {name}" for name, sql in MEASURE_SQL.items())
    return f"SELECT {dims}, {measures} FROM {source} GROUP BY {dims} ORDER BY {dims}"


MEASURE_EXPRS = {
    "payment_count": (pl.col("kind") == "payment").sum(),
    "refund_count": (pl.col("kind") == "refund").sum(),
    "gross_fen": pl.col("amount_fen").filter(pl.col("kind") == "payment").sum(),
    "refund_fen": pl.col("amount_fen").filter(pl.col("kind") == "refund").sum(),
}
"""The same measures as `MEASURE_SQL`, over a polars frame of records (the
writer's deltas); `payfeed rollups verify` proves the two agree."""
assert tuple(MEASURE_EXPRS) == ROLLUP_MEASURES

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


DIMENSIONS = ("day", "province", "city", "enterprise", "category", "channel", "provider")
FILTERS = ("province", "city", "enterprise", "category", "channel", "provider")
MEASURES = ("txn_count", *ROLLUP_MEASURES, "net_fen")
ROW_MEASURES = (*MEASURES, "payer_count")
"""The measures of a query's rows and totals; `payer_count` is approximate and,
unlike the others, not a sum: a total merges the rows' sketches."""


def measures_of(row: Mapping[Any, Any]) -> dict[str, int]:
    """The published measures of a row of summed stored measures."""
    payments, refunds = int(row["payment_count"] or 0), int(row["refund_count"] or 0)
    gross, refunded = int(row["gross_fen"] or 0), int(row["refund_fen"] or 0)
    return {
        "txn_count": payments + refunds,
        "payment_count": payments,
        "refund_count": refunds,
        "gross_fen": gross,
        "refund_fen": refunded,
        "net_fen": gross - refunded,
    }


def total_of(rows: Iterable[Mapping[str, int]]) -> dict[str, int]:
    return {m: sum(row[m] for row in rows) for m in MEASURES}


def _column(table: Table, dim: str) -> ColumnElement[Any]:
    if dim == "province":
        return func.left(table.c.city, 2)
    return table.c[dim]


async def query_rollups(
    conn: AsyncConnection,
    dims: Sequence[str],
    first_day: date,
    last_day: date,
    filters: Mapping[str, str],
) -> list[dict[str, Any]]:
    """Rows of the measures grouped by `dims` over Asia/Shanghai days
    `first_day`..`last_day`, ordered by the dims. Reads the city grain unless
    enterprises are asked for."""
    rows, _ = await query_rollups_with_totals(conn, dims, first_day, last_day, filters)
    return rows


async def query_rollups_with_totals(
    conn: AsyncConnection,
    dims: Sequence[str],
    first_day: date,
    last_day: date,
    filters: Mapping[str, str],
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """`query_rollups` and the totals of its rows, `payer_count` included (the
    union of every row's payers, not their sum)."""
    table = rollup_enterprise_day if "enterprise" in {*dims, *filters} else rollup_city_day
    keys = [_column(table, d).label(d) for d in dims]
    sums = [cast(func.sum(table.c[m]), BigInteger).label(m) for m in ROLLUP_MEASURES]
    statement = (
        select(*keys, *sums)
        .where(table.c.day.between(first_day, last_day))
        .where(*(_column(table, name) == value for name, value in filters.items()))
    )
    if dims:
        statement = statement.group_by(*keys).order_by(*keys)
    payers, payer_total = await _payer_counts(conn, table, dims, first_day, last_day, filters)
    rows = []
    for row in (await conn.execute(statement)).mappings():
        if row["payment_count"] is None:
            continue
        key = tuple(row[d] for d in dims)
        rows.append(
            {**{d: row[d] for d in dims}, **measures_of(row), "payer_count": payers.get(key, 0)}
        )
    return rows, {**total_of(rows), "payer_count": payer_total}


async def _payer_counts(
    conn: AsyncConnection,
    rollup: Table,
    dims: Sequence[str],
    first_day: date,
    last_day: date,
    filters: Mapping[str, str],
) -> tuple[dict[tuple[Any, ...], int], int]:
    """Estimated distinct payers per group of `dims` and over all groups: the
    sketches of the matching keys, merged per group and then across groups."""
    table = PAYER_TABLES[rollup]
    keys = [_column(table, d).label(d) for d in dims]
    statement = (
        select(*keys, func.array_agg(table.c.sketch).label("sketches"))
        .where(table.c.day.between(first_day, last_day))
        .where(*(_column(table, name) == value for name, value in filters.items()))
    )
    if dims:
        statement = statement.group_by(*keys)
    counts = {}
    total = union_of([])
    for row in (await conn.execute(statement)).mappings():
        if row["sketches"] is None:
            continue
        union = union_of(row["sketches"])
        counts[tuple(row[d] for d in dims)] = estimate(union)
        total.update(union.get_result())
    return counts, estimate(total)


async def verify_rollups(
    conn: AsyncConnection, first_day: date, last_day: date
) -> list[dict[str, Any]]:
    """Every rollup row in the range that differs from a recount of the stored
    records, as `{"table", dims..., "stored": {...}, "recount": {...}}`; empty when
    every figure adds up."""
    source = "(SELECT * FROM records WHERE day BETWEEN :first AND :last) AS r"
    differences = []
    for table in ROLLUP_TABLES:
        dims = dims_of(table)
        pick = ", ".join(
            f"{side}.{m} AS {side}_{m}" for side in ("s", "c") for m in ROLLUP_MEASURES
        )
        same = " AND ".join(f"s.{m} IS NOT DISTINCT FROM c.{m}" for m in ROLLUP_MEASURES)
        statement = text(
            f"WITH c AS ({aggregate_sql(table, source)}), "
            f"s AS (SELECT * FROM {table.name} WHERE day BETWEEN :first AND :last) "
            f"SELECT {', '.join(dims)}, {pick} FROM s FULL JOIN c USING ({', '.join(dims)}) "
            f"WHERE NOT ({same}) ORDER BY {', '.join(dims)}"
        )
        rows = await conn.execute(statement, {"first": first_day, "last": last_day})
        for row in rows.mappings():
            differences.append(
                {
                    "table": table.name,
                    **{d: row[d] for d in dims},
                    "stored": {m: row[f"s_{m}"] for m in ROLLUP_MEASURES},
                    "recount": {m: row[f"c_{m}"] for m in ROLLUP_MEASURES},
                }
            )
    return differences


async def rebuild_rollups(conn: AsyncConnection, first_day: date, last_day: date) -> dict[str, int]:
    """Recompute every rollup (and payer sketch) of the days `first_day`..`last_day`
    from the stored records and swap them in atomically, while ingestion goes on.

    One transaction (READ COMMITTED, the default) first takes
    `LOCK … IN SHARE ROW EXCLUSIVE MODE` on the rollup tables, then their sketch
    tables. That mode conflicts with the ROW EXCLUSIVE lock a batch needs to add
    its deltas, and with itself, but not with readers: dashboards go on reading
    the old rows until the commit, then see the new ones — never a half-built
    range. A batch that has already added its deltas holds the tables until it
    commits, so the lock waits for it and the recount includes its records; a
    batch that copies records meanwhile is stopped at its deltas until the rebuild
    commits, is not in the recount, and adds its deltas on top afterwards. Either
    way every record counts exactly once. Writers wait only as long as the
    rebuild runs. Returns the rows written per table."""
    tables = [*ROLLUP_TABLES, *(PAYER_TABLES[t] for t in ROLLUP_TABLES)]
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
    counts.update(await rebuild_payers(conn, first_day, last_day))
    return counts
