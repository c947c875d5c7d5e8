"""Feed completeness (SPEC section 10): the state of every provider-day, read from
the delivery calendar the writer keeps, and the reconciliation of the files and
batches that declared control totals.

The state of a provider-day depends on the clock (`pending` turns into `missing`
or `complete` at its due time), so it is computed when asked, never stored: the
calendar holds only facts (records, batches, arrivals).
"""

import statistics
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, union
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas.records import LOCAL_TIME_ZONE, local_today
from schemas.registry import DEFAULT_DUE
from store.errors import BadRequest
from store.scope import NATIONAL, Scope
from store.tables import feed_days, feed_files, merchant_accounts, providers, rollup_city_day

STATES = ("complete", "pending", "missing", "suspect")
MISSING_LOOKBACK_DAYS = 7
"""A day without records is missing when the provider stored records in these
many days before it (an unused provider is quiet, not missing)."""
SUSPECT_LOOKBACK_DAYS = 28
SUSPECT_FRACTION = 3
"""A day is suspect when its records are fewer than a third of the median of the
provider's days with data among the 28 before it."""
MAX_DAYS = 366
DEFAULT_DAYS = 30


@dataclass(frozen=True)
class ProviderInfo:
    provider: str
    name: str | None
    kind: str | None
    delivery: str | None
    due: time
    registered: bool

    def due_at(self, day: date) -> datetime:
        """When `day`'s data is due: `due` local time on the next day."""
        return datetime.combine(day + timedelta(days=1), self.due, ZoneInfo(LOCAL_TIME_ZONE))

    def as_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "name": self.name,
            "kind": self.kind,
            "delivery": self.delivery,
            "due": self.due.strftime("%H:%M"),
            "registered": self.registered,
        }


async def known_providers(conn: AsyncConnection, only: str | None = None) -> list[ProviderInfo]:
    """Registered providers, and those only named by stored records or merchant
    accounts (`registered: false`, due at the default time)."""
    registered = {
        row.provider: ProviderInfo(row.provider, row.name, row.kind, row.delivery, row.due, True)
        for row in await conn.execute(select(providers))
    }
    named = union(
        select(feed_days.c.provider).distinct(),
        select(merchant_accounts.c.provider).distinct(),
    )
    for code in (await conn.execute(named)).scalars():
        registered.setdefault(code, ProviderInfo(code, None, None, None, DEFAULT_DUE, False))
    return [registered[code] for code in sorted(registered) if only is None or code == only]


async def coverage_clock(conn: AsyncConnection, now: datetime) -> tuple[datetime, datetime]:
    """The latest moment up to `now` at which a provider-day's state may have
    changed by the clock alone — a local midnight (a new day enters a window) or a
    provider's due time (pending days turn missing or complete) — and the first
    such moment after `now`. An answer that carries coverage varies with the first
    and stays true until the second (as long as the data version stands)."""
    dues = set((await conn.execute(select(providers.c.due).distinct())).scalars())
    local = now.astimezone(ZoneInfo(LOCAL_TIME_ZONE))
    moments = sorted(
        datetime.combine(local.date() + timedelta(days=shift), due, local.tzinfo)
        for due in {*dues, DEFAULT_DUE, time(0, 0)}
        for shift in (0, 1)
    )
    return max(m for m in moments if m <= local), min(m for m in moments if m > local)


def day_state(
    info: ProviderInfo,
    day: date,
    row: dict[str, Any] | None,
    earlier: dict[date, int],
    now: datetime,
) -> tuple[str, bool]:
    """The state of one provider-day and its late flag; `earlier` maps the
    provider's days before `day` to their records."""
    due = info.due_at(day)
    late = row is not None and row["first_arrival"] > due
    if now < due:
        return "pending", late
    records = row["records"] if row is not None else 0
    if records == 0 and any(
        earlier.get(day - timedelta(days=n), 0) for n in range(1, MISSING_LOOKBACK_DAYS + 1)
    ):
        return "missing", late
    history = [
        earlier[d]
        for d in (day - timedelta(days=n) for n in range(1, SUSPECT_LOOKBACK_DAYS + 1))
        if earlier.get(d, 0) > 0
    ]
    if history and records * SUSPECT_FRACTION < statistics.median(history):
        return "suspect", late
    return "complete", late


def default_range(
    first_day: date | None, last_day: date | None, now: datetime
) -> tuple[date, date]:
    """The range asked for; unless given, the 30 days up to yesterday (local), or
    from `first_day` on."""
    yesterday = local_today(now) - timedelta(days=1)
    if last_day is None:
        last_day = first_day + timedelta(days=DEFAULT_DAYS - 1) if first_day else yesterday
    return first_day or last_day - timedelta(days=DEFAULT_DAYS - 1), last_day


def empty_summary(provider_days: int) -> dict[str, int]:
    """The counts of a coverage, in SPEC order, before any day is counted."""
    return {"provider_days": provider_days, **dict.fromkeys(STATES, 0), "late": 0}


def check_range(first_day: date, last_day: date) -> None:
    if last_day < first_day:
        raise BadRequest("bad_range", f"to ({last_day}) is before from ({first_day})")
    if (last_day - first_day).days >= MAX_DAYS:
        raise BadRequest("bad_range", f"a coverage range is at most {MAX_DAYS} days")


async def feed_coverage(
    conn: AsyncConnection,
    first_day: date,
    last_day: date,
    now: datetime,
    provider: str | None = None,
    scope: Scope = NATIONAL,
) -> dict[str, Any]:
    """`GET /v1/feeds/coverage`: every provider-day of the range with its state,
    ordered by provider then day, and the counts of each state.

    States, batches and arrivals are the provider's feed as a whole; for a
    regional `scope`, `records` and `net_fen` are those of its cities (from the
    city-grain rollups), nothing of another region."""
    infos = await known_providers(conn, provider)
    rows = await conn.execute(
        select(feed_days).where(
            feed_days.c.day.between(first_day - timedelta(days=SUSPECT_LOOKBACK_DAYS), last_day),
            *([feed_days.c.provider == provider] if provider is not None else []),
        )
    )
    calendar: dict[str, dict[date, dict[str, Any]]] = {}
    for r in rows.mappings():
        calendar.setdefault(r["provider"], {})[r["day"]] = {
            "records": r["payment_count"] + r["refund_count"],
            "net_fen": r["gross_fen"] - r["refund_fen"],
            "batches": r["batches"],
            "first_arrival": r["first_arrival"],
            "last_arrival": r["last_arrival"],
        }
    if not scope.national:
        await _scoped_figures(conn, calendar, first_day, last_day, provider, scope)
    days: list[dict[str, Any]] = []
    span = [first_day + timedelta(days=n) for n in range((last_day - first_day).days + 1)]
    for info in infos:
        delivered = calendar.get(info.provider, {})
        counts = {day: row["records"] for day, row in delivered.items()}
        for day in span:
            row = delivered.get(day)
            state, late = day_state(info, day, row, counts, now)
            records, net_fen = (
                row.get("scoped", (row["records"], row["net_fen"])) if row else (0, 0)
            )
            days.append(
                {
                    "provider": info.provider,
                    "day": day,
                    "state": state,
                    "late": late,
                    "records": records,
                    "net_fen": net_fen,
                    "batches": row["batches"] if row else 0,
                    "first_arrival": row["first_arrival"] if row else None,
                    "last_arrival": row["last_arrival"] if row else None,
                }
            )
    summary = empty_summary(len(days))
    for entry in days:
        summary[entry["state"]] += 1
        summary["late"] += entry["late"]
    return {
        "from": first_day,
        "to": last_day,
        "providers": [info.as_json() for info in infos],
        "days": days,
        "summary": summary,
    }


async def _scoped_figures(
    conn: AsyncConnection,
    calendar: dict[str, dict[date, dict[str, Any]]],
    first_day: date,
    last_day: date,
    provider: str | None,
    scope: Scope,
) -> None:
    """Replace the calendar's records and net sales of the range by `scope`'s."""
    r = rollup_city_day
    rows = await conn.execute(
        select(
            r.c.provider,
            r.c.day,
            func.sum(r.c.payment_count + r.c.refund_count).label("records"),
            func.sum(r.c.gross_fen - r.c.refund_fen).label("net_fen"),
        )
        .where(
            r.c.day.between(first_day, last_day),
            *scope.where(r.c.city),
            *([r.c.provider == provider] if provider is not None else []),
        )
        .group_by(r.c.provider, r.c.day)
    )
    scoped = {(row.provider, row.day): (int(row.records), int(row.net_fen)) for row in rows}
    for code, days in calendar.items():
        for day, entry in days.items():
            if first_day <= day <= last_day:
                entry["scoped"] = scoped.get((code, day), (0, 0))


def coverage_summary(coverage: dict[str, Any]) -> dict[str, Any]:
    """What travels with figures: the counts of `summary`, with `missing` and
    `suspect` as lists of `{"provider", "day"}`, the days that arrived late
    (`late_days`), and how many of the providers have delivered every day due in
    the window (`delivered` of `providers`)."""

    def listed(match: Any) -> list[dict[str, Any]]:
        return [{"provider": d["provider"], "day": d["day"]} for d in coverage["days"] if match(d)]

    behind = {d["provider"] for d in coverage["days"] if d["state"] in ("missing", "suspect")}
    summary = coverage["summary"]
    return {
        "from": coverage["from"],
        "to": coverage["to"],
        "provider_days": summary["provider_days"],
        "complete": summary["complete"],
        "pending": summary["pending"],
        "late": summary["late"],
        "missing": listed(lambda d: d["state"] == "missing"),
        "suspect": listed(lambda d: d["state"] == "suspect"),
        "late_days": listed(lambda d: d["late"]),
        "providers": len(coverage["providers"]),
        "delivered": len(coverage["providers"]) - len(behind),
    }


def is_provisional(coverage: dict[str, Any]) -> bool:
    """Figures are provisional while any provider-day of their window is missing
    (SPEC section 10); a suspect day is named, but does not hold figures back."""
    return bool(coverage["missing"])


def public_coverage(coverage: dict[str, Any]) -> dict[str, Any]:
    """What the public may know of a `coverage_summary`: its counts (`missing`
    and `suspect` as counts, as in the `summary` of `GET /v1/feeds/coverage`),
    how many providers have delivered, and the days missing or suspect without
    naming a provider (nothing per provider is public)."""

    def days_of(entries: list[dict[str, Any]]) -> list[str]:
        return sorted({str(d["day"]) for d in entries})

    return {
        "from": coverage["from"],
        "to": coverage["to"],
        "provider_days": coverage["provider_days"],
        "complete": coverage["complete"],
        "pending": coverage["pending"],
        "missing": len(coverage["missing"]),
        "suspect": len(coverage["suspect"]),
        "late": coverage["late"],
        "providers": coverage["providers"],
        "delivered": coverage["delivered"],
        "missing_days": days_of(coverage["missing"]),
        "suspect_days": days_of(coverage["suspect"]),
    }


async def window_coverage(
    conn: AsyncConnection, first_day: date, last_day: date, now: datetime
) -> dict[str, Any]:
    """The coverage of a campaign window up to today (no day after it is due).
    A window that has not begun covers no provider-day."""
    today = local_today(now)
    last = min(last_day, today)
    if last < first_day:
        return coverage_summary(
            {
                "from": first_day,
                "to": last,
                "providers": [p.as_json() for p in await known_providers(conn)],
                "days": [],
                "summary": empty_summary(0),
            }
        )
    return coverage_summary(await feed_coverage(conn, first_day, last, now))


def late_arrivals(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """The provider-days missing or suspect in an older body's coverage that
    arrived late by a newer one's: what a revision between the two is owed to.
    Bodies without coverage (published before it was kept) attribute nothing."""
    before, after = old.get("coverage"), new.get("coverage")
    if not before or not after:
        return []

    def keys(entries: list[dict[str, Any]]) -> set[tuple[str, str]]:
        return {(d["provider"], str(d["day"])) for d in entries}

    lacking = keys(before["missing"]) | keys(before["suspect"])
    settled = keys(after["late_days"]) - keys(after["missing"]) - keys(after["suspect"])
    return [{"provider": p, "day": day} for p, day in sorted(lacking & settled)]


async def reconciliation(
    conn: AsyncConnection, provider: str | None, first_day: date, last_day: date
) -> list[dict[str, Any]]:
    """Every file or batch that declared control totals and carried records of
    the range (or none at all), with declared, read and stored figures;
    mismatches first, then by provider and source."""
    check_range(first_day, last_day)
    statement = select(feed_files).where(
        feed_files.c.declared.is_not(None),
        (feed_files.c.first_day.is_(None))
        | (feed_files.c.first_day.between(first_day, last_day))
        | (feed_files.c.last_day.between(first_day, last_day))
        | ((feed_files.c.first_day < first_day) & (feed_files.c.last_day > last_day)),
        *([feed_files.c.provider == provider] if provider is not None else []),
    )
    files = []
    for r in (await conn.execute(statement)).mappings():
        declared_match = r["declared"] == r["read"]
        stored_match = r["stored"].get("records", 0) == r["received"]
        files.append(
            {
                "provider": r["provider"],
                "source": r["source"],
                "first_day": r["first_day"],
                "last_day": r["last_day"],
                "declared": r["declared"],
                "read": r["read"],
                "received": r["received"],
                "stored": r["stored"],
                "declared_match": declared_match,
                "stored_match": stored_match,
                "match": declared_match and stored_match,
                "first_arrival": r["first_arrival"],
                "last_arrival": r["last_arrival"],
            }
        )
    return sorted(files, key=lambda f: (f["match"], f["provider"], f["source"]))
