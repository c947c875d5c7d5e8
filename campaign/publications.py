"""Publications: numbered, immutable snapshots of a campaign's report.

A publication holds the report at both levels (province and city rows and the
total: exactly the figures of `campaign.reports`), the sales measures, net sales
per day over the campaign against the baseline's daily average, the days it
covers and the records behind it, the coverage of the feeds behind it (which
provider-days were missing or suspect when it was made; `provisional` while any
is missing), who published it, when, a note and whether it is the campaign's
final one. Its `sha256` is the SHA-256 of the canonical JSON
of its body (orjson, sorted keys, dates as ISO strings), which holds everything
but the checksum itself.

Guarantees: every figure of a publication is read at one snapshot
(`publish_consistently` runs at REPEATABLE READ), so batches arriving meanwhile
are either wholly in it or wholly out; numbers run 1, 2, 3 … per campaign with
no gap (a concurrent publisher that takes the same number retries on a fresh
snapshot); a campaign has at most one final publication; a stored publication
is never updated or deleted (a trigger refuses both), a later one revises it.
"""

import hashlib
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from campaign.campaigns import campaign_row, uplift
from campaign.coverage import is_provisional, late_arrivals, window_coverage
from campaign.reports import FIELDS, SALES_MEASURES, campaign_figures, report_of
from schemas.records import local_today
from store.audit import record_change
from store.errors import BadRequest, Conflict, NotFound, PayfeedError
from store.principal import SCHEDULE, Principal
from store.tables import campaign_cities, campaigns, publications

HEADER = ("campaign", "number", "published_at", "published_by", "note", "final")
FIGURES = ("records", "measures", "reports", "daily", "baseline_daily_net_fen")
"""The parts of a body that `publish_if_changed` compares: not the days covered
nor the feeds' coverage, which move every day even when no figure does."""
MEASURES = tuple(f for f in FIELDS if f not in ("unit", "name"))
NUMBER_RETRIES = 5

DAILY_NET = text(
    """
WITH c AS (
    SELECT * FROM campaigns WHERE code = :campaign
), units AS (
    SELECT cc.city, c.first_day, coalesce(cc.last_day, c.last_day) AS last_day
    FROM campaign_cities cc JOIN c ON cc.campaign = c.code
)
SELECT r.day, sum(r.gross_fen - r.refund_fen) AS net_fen
FROM units u JOIN totals_city_day r
  ON r.city = u.city AND r.day BETWEEN u.first_day AND u.last_day
GROUP BY r.day
"""
)


def canonical(body: dict[str, Any]) -> bytes:
    """The bytes the checksum is taken over."""
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def checksum(body: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(body)).hexdigest()


def plain(value: Any) -> Any:
    """`value` as JSON gives it back (dates as ISO strings), so that the body
    checksummed is the body stored; -0.0 becomes 0.0, which JSONB cannot keep."""
    return _no_negative_zero(orjson.loads(orjson.dumps(value)))


def _no_negative_zero(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _no_negative_zero(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_negative_zero(v) for v in value]
    if isinstance(value, float) and value == 0:
        return 0.0
    return value


async def campaign_last_day(conn: AsyncConnection, code: str) -> date:
    """The campaign's last day with its cities' local extensions."""
    c = await campaign_row(conn, code)
    extended = (
        await conn.execute(
            select(func.max(campaign_cities.c.last_day)).where(campaign_cities.c.campaign == code)
        )
    ).scalar()
    last: date = max(c.last_day, extended or c.last_day)
    return last


async def snapshot(conn: AsyncConnection, code: str, now: datetime) -> dict[str, Any]:
    """The figures a publication of `code` made `now` holds (no header).

    `days` covered run from the first day to today or the campaign's last day
    (local extensions included), whichever is earlier; `daily` has one entry per
    day of that whole window (zero where nothing sold), each city counted in its
    own window, so the days sum to the report's total net sales. `coverage` is
    the feeds' completeness over the days covered."""
    figures = await campaign_figures(conn, code)
    c = await campaign_row(conn, code)
    last = await campaign_last_day(conn, code)
    covered_to = min(local_today(now), last)
    sales = {m: sum(city.sales[m] for city in figures.cities) for m in SALES_MEASURES}
    per_day = {
        row.day: int(row.net_fen) for row in await conn.execute(DAILY_NET, {"campaign": code})
    }
    baseline_days = (c.baseline_last_day - c.baseline_first_day).days + 1
    _, baseline_daily = uplift(
        0, sum(city.baseline_net_fen for city in figures.cities), 1, baseline_days
    )
    records = sales["payment_count"] + sales["refund_count"]
    coverage = await window_coverage(conn, c.first_day, last, now)
    figures_now: dict[str, Any] = plain(
        {
            "first_day": c.first_day,
            "last_day": last,
            "days": {
                "first_day": c.first_day,
                "last_day": covered_to,
                "count": max(0, (covered_to - c.first_day).days + 1),
            },
            "records": records,
            "measures": {
                "txn_count": records,
                **sales,
                "net_fen": sales["gross_fen"] - sales["refund_fen"],
            },
            "reports": {
                level: {**report_of(figures, level), "coverage": coverage}
                for level in ("province", "city")
            },
            "daily": [
                {"day": day, "net_fen": per_day.get(day, 0)}
                for day in (
                    c.first_day + timedelta(days=n) for n in range((last - c.first_day).days + 1)
                )
            ],
            "baseline_daily_net_fen": baseline_daily,
            "coverage": coverage,
            "provisional": is_provisional(coverage),
        }
    )
    return figures_now


async def publish(
    conn: AsyncConnection,
    campaign: str,
    actor: Principal,
    note: str,
    final: bool,
    now: datetime,
    figures: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Store the next publication of `campaign` in the caller's transaction, which
    should be REPEATABLE READ (`publish_consistently`). 409 if `final` and the
    campaign already has its final publication."""
    now = now.astimezone(UTC)
    await campaign_row(conn, campaign)
    if final and await _final_number(conn, campaign) is not None:
        raise _final_exists(campaign)
    figures = figures if figures is not None else await snapshot(conn, campaign, now)
    latest = (
        await conn.execute(
            select(func.max(publications.c.number)).where(publications.c.campaign == campaign)
        )
    ).scalar()
    header = {
        "campaign": campaign,
        "number": (latest or 0) + 1,
        "published_at": now.isoformat(),
        "published_by": actor.name,
        "note": note,
        "final": final,
    }
    body = {**header, **figures}
    sha256 = checksum(body)
    await conn.execute(
        publications.insert().values(**header | {"published_at": now}, sha256=sha256, body=body)
    )
    await record_change(
        conn, actor, "publication.create", f"campaign {campaign} #{header['number']}", 1
    )
    return {**body, "sha256": sha256}


async def publish_if_changed(
    conn: AsyncConnection, campaign: str, actor: Principal, now: datetime
) -> dict[str, Any] | None:
    """Publish unless the figures equal the latest publication's (then `None`)."""
    figures = await snapshot(conn, campaign, now)
    latest = await latest_publication(conn, campaign)
    if latest is not None and _figures_of(latest) == _figures_of(figures):
        return None
    return await publish(conn, campaign, actor, "", False, now, figures)


def _figures_of(body: dict[str, Any]) -> dict[str, Any]:
    """The `FIGURES` of a body, its reports without their coverage (which moves as
    days fall due even when no figure does)."""
    reports = {
        level: {k: v for k, v in report.items() if k != "coverage"}
        for level, report in body["reports"].items()
    }
    return {**{k: body[k] for k in FIGURES}, "reports": reports}


async def publish_consistently(
    engine: AsyncEngine,
    campaign: str,
    actor: Principal,
    note: str = "",
    final: bool = False,
    *,
    only_if_changed: bool = False,
    now: datetime | None = None,
) -> dict[str, Any] | None:
    """Publish in a transaction of its own at REPEATABLE READ.

    This owns its transaction because a number taken by a concurrent publisher
    is only seen on a fresh snapshot: the loser of that race retries whole."""
    for attempt in range(NUMBER_RETRIES):
        at = now or datetime.now(UTC)
        try:
            async with engine.connect() as conn:
                await conn.execution_options(isolation_level="REPEATABLE READ")
                async with conn.begin():
                    if only_if_changed:
                        return await publish_if_changed(conn, campaign, actor, at)
                    return await publish(conn, campaign, actor, note, final, at)
        except IntegrityError as exc:
            if "uq_publications_final" in str(exc):
                raise _final_exists(campaign) from exc
            if "pk_publications" not in str(exc) or attempt == NUMBER_RETRIES - 1:
                raise
        except DBAPIError as exc:
            # A batch committed meanwhile what this snapshot also writes (the data
            # version): REPEATABLE READ asks for the whole transaction again.
            if getattr(exc.orig, "sqlstate", None) != SERIALIZATION_FAILURE:
                raise
            if attempt == NUMBER_RETRIES - 1:
                raise DatabaseBusy(
                    "busy", "the figures kept changing while publishing; retry shortly"
                ) from exc
    raise AssertionError("unreachable")


SERIALIZATION_FAILURE = "40001"


class DatabaseBusy(PayfeedError):
    status = 503


def _final_exists(campaign: str) -> Conflict:
    return Conflict("final_exists", f"campaign {campaign} already has its final publication")


async def _final_number(conn: AsyncConnection, campaign: str) -> int | None:
    number = (
        await conn.execute(
            select(publications.c.number).where(
                publications.c.campaign == campaign, publications.c.final
            )
        )
    ).scalar()
    return None if number is None else int(number)


async def list_publications(conn: AsyncConnection, campaign: str) -> list[dict[str, Any]]:
    """Every publication of `campaign`, oldest first, without its figures."""
    await campaign_row(conn, campaign)
    rows = await conn.execute(
        select(
            *(publications.c[k] for k in HEADER),
            publications.c.sha256,
            publications.c.body["days"].label("days"),
        )
        .where(publications.c.campaign == campaign)
        .order_by(publications.c.number)
    )
    return [dict(row._mapping) for row in rows]


async def read_publication(conn: AsyncConnection, campaign: str, number: int) -> dict[str, Any]:
    row = (
        await conn.execute(
            select(publications.c.body, publications.c.sha256).where(
                publications.c.campaign == campaign, publications.c.number == number
            )
        )
    ).first()
    if row is None:
        await campaign_row(conn, campaign)
        raise NotFound("unknown_publication", f"campaign {campaign} has no publication {number}")
    return {**row.body, "sha256": row.sha256}


async def latest_publication(conn: AsyncConnection, campaign: str) -> dict[str, Any] | None:
    row = (
        await conn.execute(
            select(publications.c.body, publications.c.sha256)
            .where(publications.c.campaign == campaign)
            .order_by(publications.c.number.desc())
            .limit(1)
        )
    ).first()
    return None if row is None else {**row.body, "sha256": row.sha256}


async def recent_publications(
    conn: AsyncConnection, campaign: str, count: int
) -> list[dict[str, Any]]:
    """The latest `count` publications with their bodies, newest first."""
    rows = await conn.execute(
        select(publications.c.body, publications.c.sha256)
        .where(publications.c.campaign == campaign)
        .order_by(publications.c.number.desc())
        .limit(count)
    )
    return [{**row.body, "sha256": row.sha256} for row in rows]


def diff_bodies(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """Per unit and measure, where they differ: the old value, the new one and the
    change (`None` where either side has no value). The total comes once, with
    the count of records behind it."""
    changes = []

    def compare(level: str, before: dict[str, Any], after: dict[str, Any]) -> None:
        for unit in sorted(set(before) | set(after)):
            a, b = before.get(unit, {}), after.get(unit, {})
            for measure in (*MEASURES, "records"):
                was, now = a.get(measure), b.get(measure)
                if was != now:
                    changes.append(
                        {
                            "level": level,
                            "unit": unit,
                            "name": (b or a)["name"],
                            "measure": measure,
                            "old": was,
                            "new": now,
                            "change": None
                            if was is None or now is None
                            else round(now - was, 2)
                            if isinstance(now - was, float)
                            else now - was,
                        }
                    )

    for level in ("province", "city"):
        compare(
            level,
            {row["unit"]: row for row in old["reports"][level]["rows"]},
            {row["unit"]: row for row in new["reports"][level]["rows"]},
        )
    compare(
        "total",
        {"total": {**old["reports"]["city"]["total"], "records": old["records"]}},
        {"total": {**new["reports"]["city"]["total"], "records": new["records"]}},
    )
    return changes


async def diff_publications(
    conn: AsyncConnection, campaign: str, old: int, new: int
) -> dict[str, Any]:
    before = await read_publication(conn, campaign, old)
    after = await read_publication(conn, campaign, new)
    return {
        "campaign": campaign,
        "from": old,
        "to": new,
        "changes": diff_bodies(before, after),
        "late_arrivals": late_arrivals(before, after),
    }


async def verify_publications(conn: AsyncConnection) -> list[dict[str, Any]]:
    """Every publication whose stored checksum or header no longer matches its
    body: `[{"campaign", "number", "sha256", "computed"}]` (empty when none)."""
    altered = []
    for row in await conn.execute(select(publications).order_by("campaign", "number")):
        computed = checksum(row.body)
        header_agrees = all(
            row.body.get(k) == (row.published_at.isoformat() if k == "published_at" else row[i])
            for i, k in enumerate(HEADER)
        )
        if computed != row.sha256 or not header_agrees:
            altered.append(
                {
                    "campaign": row.campaign,
                    "number": row.number,
                    "sha256": row.sha256,
                    "computed": computed,
                }
            )
    return altered


INTERVAL = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_interval(value: str) -> timedelta:
    """`PAYFEED_PUBLISH_EVERY`: a positive whole number of seconds, minutes, hours
    or days (`90s`, `30m`, `1h`, `1d`; no unit means seconds)."""
    match = INTERVAL.match(value)
    if match is None or int(match[1]) == 0:
        raise BadRequest("bad_interval", f"an interval is like 90s, 30m or 1h, not {value!r}")
    return timedelta(seconds=int(match[1]) * UNIT_SECONDS[match[2]])


async def publish_due(engine: AsyncEngine, now: datetime) -> list[dict[str, Any]]:
    """One round of scheduled publishing: every campaign whose window (local
    extensions included) holds today is published as `schedule` if its figures
    changed since its latest publication. Returns what was published."""
    today = local_today(now)
    async with engine.connect() as conn:
        codes = [
            code
            for code in (
                await conn.execute(
                    select(campaigns.c.code)
                    .where(campaigns.c.first_day <= today)
                    .order_by(campaigns.c.code)
                )
            ).scalars()
            if today <= await campaign_last_day(conn, code)
        ]
    published = []
    for code in codes:
        done = await publish_consistently(engine, code, SCHEDULE, only_if_changed=True, now=now)
        if done is not None:
            published.append(done)
    return published
