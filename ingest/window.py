"""The window of local days records are accepted for, read from the campaigns."""

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ingest.normalise import Window
from store.tables import campaign_cities, campaigns

LATE_DAYS = 30


async def ingest_window(conn: AsyncConnection) -> Window:
    """Records are accepted from the earliest baseline day of any campaign to the
    latest last day of any campaign (local extensions included) plus 30 days."""
    bounds = (
        await conn.execute(
            select(func.min(campaigns.c.baseline_first_day), func.max(campaigns.c.last_day))
        )
    ).one()
    extended = (await conn.execute(select(func.max(campaign_cities.c.last_day)))).scalar()
    last = max(d for d in (bounds[1], extended) if d is not None)
    return Window(bounds[0], last + timedelta(days=LATE_DAYS))
