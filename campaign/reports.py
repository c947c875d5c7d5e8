"""The campaign report (SPEC section 5): per province or participating city, the
registry's counts (cities, enterprises, activities and sessions, policies) and
net sales in the campaign window against the baseline.

Every figure comes from the city-day totals and the registry in one set-based
query per campaign, with each city's own window: a city's local extension
(`campaign_cities.last_day`) lengthens its window, and its baseline is scaled to
its own number of campaign days. Province rows and the total add up their
cities; `uplift_pct` of a sum is its uplift over the sum of the scaled baselines.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from campaign.campaigns import campaign_row, uplift, uplift_pct
from campaign.coverage import window_coverage
from schemas.regions import CITIES, PROVINCES
from store.errors import BadRequest
from store.scope import NATIONAL, Scope, parse_region

LEVELS = ("province", "city")
FIELDS = (
    "unit",
    "name",
    "cities",
    "enterprises",
    "activities",
    "sessions",
    "policies",
    "net_fen",
    "baseline_net_fen",
    "uplift_fen",
    "uplift_pct",
)
TOTAL_UNIT = "total"
TOTAL_NAME = "合计"
SALES_MEASURES = ("payment_count", "refund_count", "gross_fen", "refund_fen")

CITY_FIGURES = text(
    """
WITH c AS (
    SELECT * FROM campaigns WHERE code = :campaign
), units AS (
    SELECT cc.city, c.first_day, coalesce(cc.last_day, c.last_day) AS last_day,
           c.baseline_first_day, c.baseline_last_day
    FROM campaign_cities cc JOIN c ON cc.campaign = c.code
    WHERE CAST(:region AS text) IS NULL OR left(cc.city, length(:region)) = :region
), sales AS (
    SELECT u.city,
           sum(r.payment_count) FILTER (WHERE r.day BETWEEN u.first_day AND u.last_day)
               AS payment_count,
           sum(r.refund_count) FILTER (WHERE r.day BETWEEN u.first_day AND u.last_day)
               AS refund_count,
           sum(r.gross_fen) FILTER (WHERE r.day BETWEEN u.first_day AND u.last_day)
               AS gross_fen,
           sum(r.refund_fen) FILTER (WHERE r.day BETWEEN u.first_day AND u.last_day)
               AS refund_fen,
           sum(r.gross_fen - r.refund_fen)
               FILTER (WHERE r.day BETWEEN u.baseline_first_day AND u.baseline_last_day)
               AS baseline_net_fen
    FROM units u JOIN totals_city_day r ON r.city = u.city
     AND r.day BETWEEN least(u.first_day, u.baseline_first_day)
                   AND greatest(u.last_day, u.baseline_last_day)
    GROUP BY u.city
), registered AS (
    SELECT city, count(*) AS enterprises FROM enterprises
    WHERE campaign = :campaign GROUP BY city
), held AS (
    SELECT city, count(*) AS activities, sum(sessions) AS sessions FROM activities
    WHERE campaign = :campaign GROUP BY city
)
SELECT u.city, u.first_day, u.last_day,
       coalesce(s.payment_count, 0) AS payment_count,
       coalesce(s.refund_count, 0) AS refund_count,
       coalesce(s.gross_fen, 0) AS gross_fen,
       coalesce(s.refund_fen, 0) AS refund_fen,
       coalesce(s.baseline_net_fen, 0) AS baseline_net_fen,
       coalesce(e.enterprises, 0) AS enterprises,
       coalesce(h.activities, 0) AS activities,
       coalesce(h.sessions, 0) AS sessions
FROM units u
LEFT JOIN sales s USING (city)
LEFT JOIN registered e USING (city)
LEFT JOIN held h USING (city)
ORDER BY u.city
"""
)

POLICIES_BY_UNIT = text(
    """
SELECT unit, count(*) AS policies FROM policies
WHERE campaign = :campaign
  AND (CAST(:region AS text) IS NULL OR left(unit, length(:region)) = :region)
GROUP BY unit
"""
)
"""Policies of the campaign by unit within a region (a province's own and its
cities'; a city's own: `left('33', 6)` is not `'330100'`)."""


@dataclass(frozen=True)
class CityFigures:
    """One participating city's figures in its own window."""

    city: str
    last_day: date
    sales: dict[str, int]
    """`SALES_MEASURES` in the city's campaign window."""
    baseline_net_fen: int
    enterprises: int
    activities: int
    sessions: int
    policies: int
    uplift_fen: int
    scaled_baseline_fen: int

    @property
    def net_fen(self) -> int:
        return self.sales["gross_fen"] - self.sales["refund_fen"]


@dataclass(frozen=True)
class CampaignFigures:
    code: str
    first_day: date
    last_day: date
    cities: list[CityFigures]
    policies: dict[str, int]
    """Policies registered for the campaign, by unit (province prefix or city)."""

    @property
    def window_last_day(self) -> date:
        """The campaign's last day, or a later one of a city's local extension."""
        return max([self.last_day, *(c.last_day for c in self.cities)])


async def campaign_figures(
    conn: AsyncConnection, code: str, scope: Scope = NATIONAL
) -> CampaignFigures:
    """Every participating city's figures within `scope` (404 for an unknown
    campaign)."""
    campaign = await campaign_row(conn, code)
    params = {"campaign": code, "region": scope.region}
    policies = {row.unit: int(row.policies) for row in await conn.execute(POLICIES_BY_UNIT, params)}
    baseline_days = (campaign.baseline_last_day - campaign.baseline_first_day).days + 1
    cities = []
    for row in (await conn.execute(CITY_FIGURES, params)).mappings():
        sales = {m: int(row[m]) for m in SALES_MEASURES}
        days = (row["last_day"] - row["first_day"]).days + 1
        baseline = int(row["baseline_net_fen"])
        uplift_fen, scaled = uplift(
            sales["gross_fen"] - sales["refund_fen"], baseline, days, baseline_days
        )
        cities.append(
            CityFigures(
                city=row["city"],
                last_day=row["last_day"],
                sales=sales,
                baseline_net_fen=baseline,
                enterprises=int(row["enterprises"]),
                activities=int(row["activities"]),
                sessions=int(row["sessions"]),
                policies=policies.get(row["city"], 0),
                uplift_fen=uplift_fen,
                scaled_baseline_fen=scaled,
            )
        )
    return CampaignFigures(code, campaign.first_day, campaign.last_day, cities, policies)


def _row(unit: str, name: str, cities: list[CityFigures], policies: int) -> dict[str, Any]:
    uplift_fen = sum(c.uplift_fen for c in cities)
    return {
        "unit": unit,
        "name": name,
        "cities": len(cities),
        "enterprises": sum(c.enterprises for c in cities),
        "activities": sum(c.activities for c in cities),
        "sessions": sum(c.sessions for c in cities),
        "policies": policies,
        "net_fen": sum(c.net_fen for c in cities),
        "baseline_net_fen": sum(c.baseline_net_fen for c in cities),
        "uplift_fen": uplift_fen,
        "uplift_pct": uplift_pct(uplift_fen, sum(c.scaled_baseline_fen for c in cities)),
    }


def report_of(figures: CampaignFigures, level: str) -> dict[str, Any]:
    """The report's JSON shape at `level`: rows ordered by unit, then the total.

    Policies: a city row counts its city's; a province row its own and those of
    its cities; the total every policy of the campaign."""
    if level == "city":
        rows = [
            _row(c.city, CITIES[c.city].name, [c], c.policies)
            for c in sorted(figures.cities, key=lambda c: c.city)
        ]
    elif level == "province":
        by_province: dict[str, list[CityFigures]] = defaultdict(list)
        for city in figures.cities:
            by_province[city.city[:2]].append(city)
        rows = [
            _row(
                province,
                PROVINCES[province],
                cities,
                sum(n for unit, n in figures.policies.items() if unit[:2] == province),
            )
            for province, cities in sorted(by_province.items())
        ]
    else:
        raise BadRequest("unknown_level", f"level is one of {', '.join(LEVELS)}, not {level!r}")
    return {
        "campaign": figures.code,
        "level": level,
        "first_day": figures.first_day,
        "last_day": figures.last_day,
        "rows": rows,
        "total": _row(TOTAL_UNIT, TOTAL_NAME, figures.cities, sum(figures.policies.values())),
    }


async def campaign_report(
    conn: AsyncConnection,
    code: str,
    level: str,
    scope: Scope = NATIONAL,
    unit: str | None = None,
    *,
    now: datetime,
) -> dict[str, Any]:
    """The report of `scope`'s cities: its rows and a total of the scope, with the
    coverage of the feeds behind it (its window, local extensions included, up to
    today). `unit` (a province prefix or a city code) narrows it to that unit, 403
    when `scope` does not cover it."""
    if level not in LEVELS:
        raise BadRequest("unknown_level", f"level is one of {', '.join(LEVELS)}, not {level!r}")
    if unit is not None:
        scope = narrowed(scope, unit)
    figures = await campaign_figures(conn, code, scope)
    coverage = await window_coverage(conn, figures.first_day, figures.window_last_day, now)
    return {**report_of(figures, level), "coverage": coverage}


def narrowed(scope: Scope, unit: str) -> Scope:
    """The scope of `unit` within `scope` (403 `out_of_scope` outside it)."""
    region = parse_region(unit)
    if region is None or not scope.covers_unit(region):
        raise scope.refusal("the report unit")
    return Scope(region)
