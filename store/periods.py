"""Campaign periods — every campaign's window and baseline — and the exact
measures of each enterprise over them (`totals_enterprise_period`).

The periods kept are listed in `total_periods`. The writer adds a batch's
records to every listed period their day falls in, in the batch's own
transaction (`PERIOD_UPSERT`), so the totals of a listed period are exact and
read-your-writes like every rollup. A campaign change lists its new periods,
sums them from the enterprise-day rollups and drops the periods no campaign has
any more, in its own transaction (`keep_period_totals`). Either order of the two
counts every record once: the change locks the totals against writers, so a
batch that added to the old list has committed before the new periods are
summed from its rollups, and a batch still to add waits, then reads the new
list — a statement's snapshot is taken once its locks are held.

A reader uses the totals of a listed period only: campaigns changed by hand in
SQL are read from the enterprise-day rollups until a campaign change through
the API, or `payfeed rollups rebuild`, lists their periods.
"""

from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from store.tables import ROLLUP_MEASURES, total_periods, totals_enterprise_period

Period = tuple[date, date]

CAMPAIGN_PERIODS = """
SELECT first_day, last_day FROM campaigns
UNION SELECT baseline_first_day, baseline_last_day FROM campaigns
"""

_KEY = "first_day, last_day, enterprise, city"
_MEASURES = ", ".join(ROLLUP_MEASURES)

PERIOD_UPSERT = (
    f"INSERT INTO {totals_enterprise_period.name} AS t ({_KEY}, {_MEASURES}) "
    f"SELECT p.first_day, p.last_day, d.enterprise, d.city, "
    + ", ".join(f"sum(d.{m})" for m in ROLLUP_MEASURES)
    + " FROM unnest($1::date[], $2::text[], $3::text[], "
    + ", ".join(f"${i}::bigint[]" for i in range(4, 4 + len(ROLLUP_MEASURES)))
    + f") AS d(day, enterprise, city, {_MEASURES}) "
    f"JOIN {total_periods.name} AS p ON d.day BETWEEN p.first_day AND p.last_day "
    f"GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4 "
    f"ON CONFLICT ({_KEY}) DO UPDATE SET "
    + ", ".join(f"{m} = t.{m} + EXCLUDED.{m}" for m in ROLLUP_MEASURES)
)
"""Adds a batch's measures per day, enterprise and city (`$1`…) to every listed
period each day falls in, rows in key order (the lock order of every rollup)."""

_SUMMED = (
    f"INSERT INTO {totals_enterprise_period.name} ({_KEY}, {_MEASURES}) "
    f"SELECT CAST(:first AS date), CAST(:last AS date), enterprise, city, "
    + ", ".join(f"sum({m})" for m in ROLLUP_MEASURES)
    + " FROM rollup_enterprise_day WHERE day BETWEEN :first AND :last GROUP BY enterprise, city"
)
_BOUNDS = "first_day = :first AND last_day = :last"
_DROPPED = f"DELETE FROM {totals_enterprise_period.name} WHERE {_BOUNDS}"


async def campaign_periods(conn: AsyncConnection) -> set[Period]:
    return {(r.first_day, r.last_day) for r in await conn.execute(text(CAMPAIGN_PERIODS))}


async def listed_periods(conn: AsyncConnection) -> set[Period]:
    rows = await conn.execute(text(f"SELECT first_day, last_day FROM {total_periods.name}"))
    return {(r.first_day, r.last_day) for r in rows}


async def is_listed(conn: AsyncConnection, period: Period) -> bool:
    """Whether `period` has its enterprises' totals."""
    found = await conn.execute(
        text(f"SELECT 1 FROM {total_periods.name} WHERE {_BOUNDS}"),
        {"first": period[0], "last": period[1]},
    )
    return found.first() is not None


async def lock_period_totals(conn: AsyncConnection) -> None:
    """Keep writers from adding to the period totals until the transaction ends;
    readers go on."""
    await conn.execute(
        text(f"LOCK TABLE {totals_enterprise_period.name} IN SHARE ROW EXCLUSIVE MODE")
    )


async def keep_period_totals(conn: AsyncConnection) -> None:
    """List exactly the campaigns' periods, as they are in this transaction: sum
    the new ones from the enterprise-day rollups, drop those no campaign has any
    more. Writes nothing when they are the same. Takes `lock_period_totals`."""
    await lock_period_totals(conn)
    wanted, listed = await campaign_periods(conn), await listed_periods(conn)
    for first, last in sorted(listed - wanted):
        bounds = {"first": first, "last": last}
        await conn.execute(text(_DROPPED), bounds)
        await conn.execute(text(f"DELETE FROM {total_periods.name} WHERE {_BOUNDS}"), bounds)
    for period in sorted(wanted - listed):
        await sum_period(conn, period)
        await conn.execute(
            text(f"INSERT INTO {total_periods.name} VALUES (:first, :last)"),
            {"first": period[0], "last": period[1]},
        )


async def sum_period(conn: AsyncConnection, period: Period) -> int:
    """(Re)write `period`'s totals from the enterprise-day rollups; returns the rows
    written. The caller holds `lock_period_totals`."""
    bounds: dict[str, Any] = {"first": period[0], "last": period[1]}
    await conn.execute(text(_DROPPED), bounds)
    return (await conn.execute(text(_SUMMED), bounds)).rowcount
