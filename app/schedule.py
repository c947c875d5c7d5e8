"""Scheduled publishing (`PAYFEED_PUBLISH_EVERY`): while `payfeed serve` runs,
every interval publishes each running campaign whose figures changed.

With several API processes each publishes on its own clock; a round that finds
the figures unchanged publishes nothing, so only the first after a change does.
"""

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from campaign.publications import publish_due

log = logging.getLogger(__name__)


async def publish_on_schedule(engine: AsyncEngine, every: timedelta) -> None:
    """Runs until cancelled; a failed round is logged and the next one tried."""
    while True:
        await asyncio.sleep(every.total_seconds())
        try:
            for published in await publish_due(engine, datetime.now(UTC)):
                log.info("published %s #%s on schedule", published["campaign"], published["number"])
        except Exception:
            log.exception("scheduled publishing failed; retrying at the next interval")
