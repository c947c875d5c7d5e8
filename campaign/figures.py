"""Dashboard figures: the rollups grouped and filtered as asked, with exact
measures and the payer sketches' estimate, read from the grain that needs the
fewest merges (`_payer_counts`)."""

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    Table,
    and_,
    cast,
    func,
    select,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas.regions import resolve_city
from store.db import fetch_records
from store.periods import is_listed
from store.scope import NATIONAL, Scope
from store.sketches import estimate, sketch_table_for, union_of
from store.tables import (
    ROLLUP_MEASURES,
    enterprises,
    payer_periods,
    rollup_city_day,
    rollup_enterprise_day,
    totals_city_day,
    totals_enterprise_period,
)

DIMENSIONS = ("day", "province", "city", "enterprise", "category", "channel", "provider")
FILTERS = ("province", "city", "enterprise", "category", "channel", "provider")
MEASURES = ("txn_count", *ROLLUP_MEASURES, "net_fen")
ROW_MEASURES = (*MEASURES, "payer_count")
"""The measures of a query's rows and totals; `payer_count` is approximate and,
unlike the others, not a sum: a total merges the rows' sketches."""


def _published_sums(table: Table) -> list[ColumnElement[Any]]:
    """`MEASURES` summed over a group of `table`'s rows, in that order: the
    database adds them up, so a row of thousands costs Python one dict."""
    s = {m: cast(func.sum(table.c[m]), BigInteger) for m in ROLLUP_MEASURES}
    return [
        (s["payment_count"] + s["refund_count"]).label("txn_count"),
        *(s[m].label(m) for m in ROLLUP_MEASURES),
        (s["gross_fen"] - s["refund_fen"]).label("net_fen"),
    ]


def total_of(rows: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """`MEASURES` summed over `rows`, a column at a time (half the time of a sum
    per row and measure over thousands of rows)."""
    sums = [sum(column) for column in zip(*map(itemgetter(*MEASURES), rows), strict=True)]
    return dict(zip(MEASURES, sums or [0] * len(MEASURES), strict=True))


def _column(table: Table, dim: str) -> ColumnElement[Any]:
    if dim == "province":
        return func.left(table.c.city, 2)
    return table.c[dim]


CITY_TOTAL_COLUMNS = frozenset({"day", "province", "city"})
PERIOD_TOTAL_COLUMNS = frozenset({"enterprise", "province", "city"})


async def grain_for(
    conn: AsyncConnection,
    dims: Sequence[str],
    filters: Mapping[str, str],
    first_day: date,
    last_day: date,
) -> Table:
    """The rollup grain with the fewest rows that has every dim and filter: the
    city-day totals for days, provinces and cities alone; the enterprises'
    totals over a campaign window or baseline when the days are exactly a
    listed one (`store.periods`) and nothing finer than the enterprise is
    asked; else the city grain unless enterprises are grouped or filtered by."""
    needed = {*dims, *filters}
    if needed <= CITY_TOTAL_COLUMNS:
        return totals_city_day
    if "enterprise" not in needed:
        return rollup_city_day
    if needed <= PERIOD_TOTAL_COLUMNS and await is_listed(conn, (first_day, last_day)):
        return totals_enterprise_period
    return rollup_enterprise_day


async def check_filters(conn: AsyncConnection, scope: Scope, filters: Mapping[str, str]) -> None:
    """403 `out_of_scope` for a filter naming a region outside `scope`: a province
    other than the scope's own, a city it does not cover, an enterprise not
    registered in one of its cities (whether registered elsewhere or nowhere)."""
    if scope.national:
        return
    province, city, enterprise = (filters.get(k) for k in ("province", "city", "enterprise"))
    if province is not None and province != scope.province:
        raise scope.refusal("the province filter")
    if city is not None:
        resolved = resolve_city(city)
        if resolved is None or not scope.covers_city(resolved.code):
            raise scope.refusal("the city filter")
    if enterprise is not None:
        cities = (
            await conn.execute(select(enterprises.c.city).where(enterprises.c.uscc == enterprise))
        ).scalars()
        if not any(scope.covers_city(c) for c in cities):
            raise scope.refusal("the enterprise filter")


def _selected(
    table: Table, first_day: date, last_day: date, filters: Mapping[str, str], scope: Scope
) -> list[ColumnElement[bool]]:
    """The rows of the days, filters and scope asked for: every query of rollups
    or sketches selects through here, so none reads outside the caller's scope.
    A table kept per period (`payers_period`) is read at exactly those days."""
    days = (
        table.c.day.between(first_day, last_day)
        if "day" in table.c
        else and_(table.c.first_day == first_day, table.c.last_day == last_day)
    )
    return [
        days,
        *(_column(table, name) == value for name, value in filters.items()),
        *([] if scope.national else scope.where(table.c.city)),  # payers_day has no city
    ]


def _grouped_sums(
    table: Table,
    dims: Sequence[str],
    first_day: date,
    last_day: date,
    filters: Mapping[str, str],
    scope: Scope,
) -> Select[Any]:
    keys = [_column(table, d).label(d) for d in dims]
    statement = select(*keys, *_published_sums(table)).where(
        *_selected(table, first_day, last_day, filters, scope)
    )
    return statement.group_by(*keys).order_by(*keys) if dims else statement


def _key_of(dims: Sequence[str]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """The group key of a driver record whose first columns are `dims`."""
    if len(dims) > 1:
        return itemgetter(*range(len(dims)))
    return lambda record: tuple(record[: len(dims)])


def _rows_of(
    found: Iterable[Sequence[Any]], dims: Sequence[str], payers: Mapping[tuple[Any, ...], int]
) -> list[dict[str, Any]]:
    """The answer's rows from `_grouped_sums`' records: each group's dims and
    measures, and its payer count. A sum over no stored row (a total of nothing)
    is no row. Each row is made in one step from the record's values (thousands
    of rows: half the time of copying the record and adding to it)."""
    names = (*dims, *MEASURES, "payer_count")
    key_of, counted = _key_of(dims), len(dims)  # the column of txn_count
    return [
        dict(zip(names, (*record, payers.get(key_of(record), 0)), strict=True))
        for record in found
        if record[counted] is not None
    ]


async def query_rollups(
    conn: AsyncConnection,
    dims: Sequence[str],
    first_day: date,
    last_day: date,
    filters: Mapping[str, str],
    scope: Scope = NATIONAL,
) -> list[dict[str, Any]]:
    """Rows of the measures grouped by `dims` over Asia/Shanghai days
    `first_day`..`last_day`, ordered by the dims, from the grain `grain_for`
    picks."""
    rows, _ = await query_rollups_with_totals(conn, dims, first_day, last_day, filters, scope)
    return rows


async def query_rollups_with_totals(
    conn: AsyncConnection,
    dims: Sequence[str],
    first_day: date,
    last_day: date,
    filters: Mapping[str, str],
    scope: Scope = NATIONAL,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """`query_rollups` and the totals of its rows, `payer_count` included (the
    union of every row's payers, not their sum). Rows outside `scope` are never
    read; filters are checked against it first (`check_filters`)."""
    await check_filters(conn, scope, filters)
    table = await grain_for(conn, dims, filters, first_day, last_day)
    statement = _grouped_sums(table, dims, first_day, last_day, filters, scope)
    payers, payer_total = await _payer_counts(
        conn, table, dims, first_day, last_day, filters, scope
    )
    rows = _rows_of(await fetch_records(conn, statement), dims, payers)
    return rows, {**total_of(rows), "payer_count": payer_total or 0}


async def query_rollup_page(
    conn: AsyncConnection,
    dims: Sequence[str],
    first_day: date,
    last_day: date,
    filters: Mapping[str, str],
    limit: int,
    after: Sequence[Any] | None,
    scope: Scope = NATIONAL,
) -> tuple[list[dict[str, Any]], bool]:
    """At most `limit` rows of `query_rollups` (non-empty `dims`) that come after
    the key `after` in their order, and whether more follow. Keyset paging: a page
    costs its own rows whatever its position, and rows stored meanwhile never
    shift a row onto two pages."""
    await check_filters(conn, scope, filters)
    table = await grain_for(conn, dims, filters, first_day, last_day)
    statement = _grouped_sums(table, dims, first_day, last_day, filters, scope)
    if after is not None:
        statement = statement.where(_key(table, dims) > tuple_(*after))
    found = await fetch_records(conn, statement.limit(limit + 1))
    page = found[:limit]
    if not page:
        return [], False
    bounds = (tuple(page[0][d] for d in dims), tuple(page[-1][d] for d in dims))
    payers, _ = await _payer_counts(conn, table, dims, first_day, last_day, filters, scope, bounds)
    return _rows_of(page, dims, payers), len(found) > limit


async def active_count(
    conn: AsyncConnection, dim: str, first_day: date, last_day: date, scope: Scope
) -> int:
    """How many distinct cities or enterprises (`dim`) of `scope` have records on
    the days: grouped, then counted (a hash aggregate; `count(DISTINCT …)` sorts,
    three times slower), from the grain `grain_for` picks."""
    table = await grain_for(conn, [dim], {}, first_day, last_day)
    values = (
        select(table.c[dim])
        .where(*_selected(table, first_day, last_day, {}, scope))
        .group_by(table.c[dim])
        .subquery()
    )
    return int((await conn.execute(select(func.count()).select_from(values))).scalar_one())


def _key(table: Table, dims: Sequence[str]) -> ColumnElement[Any]:
    return tuple_(*(_column(table, d) for d in dims))


def _needed(dims: Sequence[str], filters: Mapping[str, str], scope: Scope) -> set[str]:
    """The columns a sketch table must have to answer: the dims, the filters, and
    the city when the scope is regional."""
    return {*dims, *filters, *([] if scope.national else ["city"])}


async def _period_kept(conn: AsyncConnection, first_day: date, last_day: date) -> bool:
    kept = select(payer_periods.c.first_day).where(
        payer_periods.c.first_day == first_day, payer_periods.c.last_day == last_day
    )
    return (await conn.execute(kept)).first() is not None


async def _group_estimates(
    conn: AsyncConnection, table: Table, dims: Sequence[str], where: list[ColumnElement[bool]]
) -> dict[tuple[Any, ...], int]:
    """The estimate of each group of `dims` among `table`'s rows `where`: a group
    of one key reads its stored estimate, only groups of several keys (and every
    group of a table without estimates) fetch and merge their sketches."""
    keys = [_column(table, d).label(d) for d in dims]
    counts: dict[tuple[Any, ...], int] = {}
    several: list[tuple[Any, ...]] | None = None  # None: every group merges
    if "estimate" in table.c:
        several = []
        single = select(*keys, func.count(), func.min(table.c.estimate))
        key_of = _key_of(dims)
        for row in await fetch_records(conn, single.where(*where).group_by(*keys)):
            if row[-2] == 1:  # the group's stored keys
                counts[key_of(row)] = row[-1]
            else:
                several.append(key_of(row))
        if not several:
            return counts
    merged = select(*keys, func.array_agg(table.c.sketch)).where(*where).group_by(*keys)
    if several is not None:
        merged = merged.where(_key(table, dims).in_(several))
    for row in await conn.execute(merged):
        counts[tuple(row[: len(dims)])] = estimate(union_of(row[-1]))
    return counts


async def _payer_counts(
    conn: AsyncConnection,
    rollup: Table,
    dims: Sequence[str],
    first_day: date,
    last_day: date,
    filters: Mapping[str, str],
    scope: Scope,
    within: tuple[tuple[Any, ...], tuple[Any, ...]] | None = None,
) -> tuple[dict[tuple[Any, ...], int], int | None]:
    """Estimated distinct payers per group of `dims` (those from `within[0]` to
    `within[1]` when given) and, without `within`, over all groups.

    Each is read from the sketch grain with the fewest keys per group
    (`store.sketches.sketch_table_for`): a row per day or per city and day from
    the day grains; a listing by enterprise over a campaign's window or baseline
    from `payers_period`, one key per enterprise. A group that is one stored key
    reads that key's stored estimate and merges nothing; only a group of several
    keys merges their sketches (the same estimate either way: `store.sketches`).
    The total is the union at the coarsest grain the filters and scope allow (a
    national total: one sketch per day)."""
    needed = _needed(dims, filters, scope)
    kept = "enterprise" in needed and await _period_kept(conn, first_day, last_day)
    counts: dict[tuple[Any, ...], int] = {}
    if dims:
        table = sketch_table_for(rollup, needed, kept)
        where = _selected(table, first_day, last_day, filters, scope)
        if within is not None:
            where.append(_key(table, dims).between(tuple_(*within[0]), tuple_(*within[1])))
        counts = await _group_estimates(conn, table, dims, where)
    if within is not None:
        return counts, None
    table = sketch_table_for(rollup, _needed([], filters, scope), kept)
    all_sketches = (
        await conn.execute(
            select(table.c.sketch).where(*_selected(table, first_day, last_day, filters, scope))
        )
    ).scalars()
    total = estimate(union_of(all_sketches))
    return (counts if dims else {(): total}), total
