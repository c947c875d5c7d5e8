"""What the authorities publish while a campaign runs (动态发布): the running
campaign's totals, its days so far and its top ten cities by net sales.

The figures are the campaign report's (`ingest.reports`): `measures.net_fen` is
its total, `top_cities` its city rows. Nothing per enterprise or per provider.
"""

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from ingest.errors import NotFound
from ingest.reports import SALES_MEASURES, campaign_figures, report_of
from ingest.tables import campaigns
from schemas.records import LOCAL_TIME_ZONE

TOP_CITIES = 10


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
    today = now.astimezone(ZoneInfo(LOCAL_TIME_ZONE)).date()
    figures = await campaign_figures(conn, await running_campaign(conn, today))
    report = report_of(figures, "city")
    sales = {m: sum(c.sales[m] for c in figures.cities) for m in SALES_MEASURES}
    top = sorted(report["rows"], key=lambda row: (-row["net_fen"], row["unit"]))[:TOP_CITIES]
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
    }
