"""`GET /v1/public/summary`: no token, cached in the process for at most 60 s.

The cache keeps a burst of public readers from recomputing the report; each API
process holds its own, so a figure is at most `MAX_AGE` seconds old anywhere.
"""

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.exc import InterfaceError, OperationalError

from app.deps import DatabaseUnavailable, engine_of
from ingest.public import live_summary
from schemas.api import PublicSummary

router = APIRouter(prefix="/v1/public", tags=["public"])

MAX_AGE = 60.0


@dataclass
class SummaryCache:
    value: dict[str, Any] | None = None
    expires: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def fresh(self) -> dict[str, Any] | None:
        return self.value if time.monotonic() < self.expires else None


def cache_of(request: Request) -> SummaryCache:
    if not hasattr(request.app.state, "public_summary"):
        request.app.state.public_summary = SummaryCache()
    cache: SummaryCache = request.app.state.public_summary
    return cache


@router.get(
    "/summary",
    response_model=PublicSummary,
    summary="The running campaign's published figures (no token)",
    description="The campaign whose window holds today (else the latest that has begun): "
    "its totals, days so far and top ten cities by net sales, as in its report. Cached for "
    "at most 60 seconds. Nothing per enterprise or per provider.",
)
async def public_summary(request: Request, response: Response) -> Any:
    cache = cache_of(request)
    summary = cache.fresh()
    if summary is None:
        async with cache.lock:
            summary = cache.fresh()
            if summary is None:
                try:
                    async with engine_of(request).connect() as conn:
                        summary = await live_summary(conn, datetime.now(UTC))
                except (OSError, InterfaceError, OperationalError) as exc:
                    raise DatabaseUnavailable(
                        "database_unavailable", "the database is unavailable"
                    ) from exc
                cache.value, cache.expires = summary, time.monotonic() + MAX_AGE
    response.headers["Cache-Control"] = f"public, max-age={int(cache.expires - time.monotonic())}"
    return summary
