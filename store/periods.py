"""Campaign periods — every campaign's window and baseline — and the exact
measures of each enterprise over them (`totals_enterprise_period`).

The writer adds a batch's records to every period their day falls in, in the
batch's own transaction (`PERIOD_UPSERT`), so the totals are exact and
read-your-writes like every rollup. The periods are read from `campaigns` by
that same statement; a change of a campaign's days builds and drops periods in
its own transaction (`keep_period_totals`). Either order of the two counts every
record once: the change locks the table against writers, so a batch that added
to the old periods has committed before the new ones are summed from its
rollups, and a batch still to add waits, then reads the new periods — a
statement's snapshot is taken once its locks are held.
"""

from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from store.tables import ROLLUP_MEASURES, totals_enterprise_period

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
    f"JOIN ({CAMPAIGN_PERIODS}) AS p ON d.day BETWEEN p.first_day AND p.last_day "
    f"GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4 "
    f"ON CONFLICT ({_KEY}) DO UPDATE SET "
    + ", ".join(f"{m} = t.{m} + EXCLUDED.{m}" for m in ROLLUP_MEASURES)
)
"""Adds a batch's measures per day, enterprise and city (`$1`…) to every campaign
period each day falls in, rows in key order (the lock order of every rollup)."""

_SUMMED = (
    f"INSERT INTO {totals_enterprise_period.name} ({_KEY}, {_MEASURES}) "
    f"SELECT CAST(:first AS date), CAST(:last AS date), enterprise, city, "
    + ", ".join(f"sum({m})" for m in ROLLUP_MEASURES)
    + " FROM rollup_enterprise_day WHERE day BETWEEN :first AND :last GROUP BY enterprise, city"
)
_DROPPED = (
    f"DELETE FROM {totals_enterprise_period.name} WHERE first_day = :first AND last_day = :last"
)


async def campaign_periods(conn: AsyncConnection) -> set[Period]:
    return {(r.first_day, r.last_day) for r in await conn.execute(text(CAMPAIGN_PERIODS))}


async def is_campaign_period(conn: AsyncConnection, period: Period) -> bool:
    found = await conn.execute(
        text(
            f"SELECT 1 FROM ({CAMPAIGN_PERIODS}) AS p WHERE first_day = :first AND last_day = :last"
        ),
        {"first": period[0], "last": period[1]},
    )
    return found.first() is not None


async def lock_period_totals(conn: AsyncConnection) -> None:
    """Keep writers from adding to the period totals until the transaction ends;
    readers go on."""
    await conn.execute(
        text(f"LOCK TABLE {totals_enterprise_period.name} IN SHARE ROW EXCLUSIVE MODE")
    )


async def keep_period_totals(conn: AsyncConnection, before: set[Period]) -> None:
    """After the campaigns changed in this transaction (whose lock
    `lock_period_totals` took before `before` was read): drop the totals of the
    periods no campaign has any more, sum the new ones from the enterprise-day
    rollups. Writes nothing when the periods stayed the same."""
    after = await campaign_periods(conn)
    for first, last in sorted(before - after):
        await conn.execute(text(_DROPPED), {"first": first, "last": last})
    for first, last in sorted(after - before):
        await sum_period(conn, (first, last))


async def sum_period(conn: AsyncConnection, period: Period) -> int:
    """(Re)write `period`'s totals from the enterprise-day rollups; returns the rows
    written. The caller holds the lock that keeps writers out."""
    bounds: dict[str, Any] = {"first": period[0], "last": period[1]}
    await conn.execute(text(_DROPPED), bounds)
    return (await conn.execute(text(_SUMMED), bounds)).rowcount
