"""What the authorities publish while a campaign runs (动态发布): the running
campaign's totals, its days so far and its top ten cities by net sales, and how
complete the feeds behind them are (SPEC section 10): `provisional` while a
provider-day of the window is missing, and `coverage` in counts and days.

The figures are the campaign report's (`campaign.reports`): `measures.net_fen` is
its total, `top_cities` its city rows. Nothing per enterprise or per provider.
Once the campaign has a publication, the summary is its latest publication's
(read from the publications alone, never the records or rollups), with its
`publication` number and `published_at`.
"""

from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from campaign.coverage import is_provisional, late_arrivals, public_coverage, window_coverage
from campaign.publications import diff_bodies, latest_publication, recent_publications, snapshot
from campaign.reports import SALES_MEASURES, campaign_figures, report_of
from schemas.records import local_today
from store.errors import NotFound
from store.tables import campaigns

TOP_CITIES = 10
PAGE_PUBLICATIONS = 20


async def running_campaign(conn: AsyncConnection, today: date) -> str:
    """The campaign whose window holds `today`, else the latest that has begun."""
    code = (
        await conn.execute(
            select(campaigns.c.code)
            .where(campaigns.c.first_day <= today)
            .order_by(
                (campaigns.c.last_day >= today).desc(),
                campaigns.c.first_day.desc(),
                campaigns.c.code.desc(),
            )
            .limit(1)
        )
    ).scalar()
    if code is None:
        raise NotFound("no_running_campaign", f"no campaign has begun by {today}")
    return str(code)


async def live_summary(conn: AsyncConnection, now: datetime) -> dict[str, Any]:
    """The public summary computed now from the rollups and the registry."""
    today = local_today(now)
    figures = await campaign_figures(conn, await running_campaign(conn, today))
    report = report_of(figures, "city")
    sales = {m: sum(c.sales[m] for c in figures.cities) for m in SALES_MEASURES}
    top = sorted(report["rows"], key=lambda row: (-row["net_fen"], row["unit"]))[:TOP_CITIES]
    coverage = await window_coverage(conn, figures.first_day, figures.window_last_day, now)
    return {
        "campaign": figures.code,
        "first_day": figures.first_day,
        "last_day": figures.last_day,
        "days_so_far": max(0, (min(today, figures.last_day) - figures.first_day).days + 1),
        "as_of": now,
        "measures": {
            "txn_count": sales["payment_count"] + sales["refund_count"],
            **sales,
            "net_fen": report["total"]["net_fen"],
        },
        "top_cities": [
            {"city": row["unit"], "name": row["name"], "net_fen": row["net_fen"]} for row in top
        ],
        **_coverage_of(coverage),
    }


def _coverage_of(coverage: dict[str, Any] | None) -> dict[str, Any]:
    """`provisional` and the public part of the figures' `coverage`; nothing for a
    publication made before coverage was kept, which cannot say."""
    if coverage is None:
        return {}
    return {"provisional": is_provisional(coverage), "coverage": public_coverage(coverage)}


def published_summary(publication: dict[str, Any]) -> dict[str, Any]:
    """The public summary of a stored publication."""
    rows = publication["reports"]["city"]["rows"]
    top = sorted(rows, key=lambda row: (-row["net_fen"], row["unit"]))[:TOP_CITIES]
    return {
        "campaign": publication["campaign"],
        "first_day": publication["first_day"],
        "last_day": publication["last_day"],
        "days_so_far": publication["days"]["count"],
        "as_of": publication["published_at"],
        "measures": publication["measures"],
        "top_cities": [
            {"city": row["unit"], "name": row["name"], "net_fen": row["net_fen"]} for row in top
        ],
        "publication": publication["number"],
        "published_at": publication["published_at"],
        **_coverage_of(publication.get("coverage")),
    }


async def public_summary(conn: AsyncConnection, now: datetime) -> dict[str, Any]:
    """The running campaign's latest publication, else its live summary."""
    code = await running_campaign(conn, local_today(now))
    latest = await latest_publication(conn, code)
    return published_summary(latest) if latest is not None else await live_summary(conn, now)


async def public_page_data(
    conn: AsyncConnection, now: datetime, revisions: int = PAGE_PUBLICATIONS
) -> dict[str, Any]:
    """What the public page shows: the running campaign, its latest publication's
    figures (else a live snapshot, marked `live`), and its latest publications,
    newest first, each with what it changed against the one before and the
    provider-days that arrived late in between (what the revision is owed to)."""
    code = await running_campaign(conn, local_today(now))
    campaign = (await conn.execute(select(campaigns).where(campaigns.c.code == code))).one()
    recent = await recent_publications(conn, code, revisions + 1)
    listed = [
        {
            **{k: p[k] for k in ("number", "published_at", "note", "final", "sha256", "days")},
            "changes": diff_bodies(recent[n + 1], p) if n + 1 < len(recent) else None,
            "late_arrivals": late_arrivals(recent[n + 1], p) if n + 1 < len(recent) else [],
        }
        for n, p in enumerate(recent[:revisions])
    ]
    figures = recent[0] if recent else await snapshot(conn, code, now)
    return {
        "campaign": {"code": code, "name": campaign.name, "slogan": campaign.slogan},
        "live": not recent,
        "figures": figures,
        "publications": listed,
    }
