"""`GET /v1/public/summary`: no token, cached in the process for at most 60 s.

The cache keeps a burst of public readers from recomputing the summary; each API
process holds its own, so a figure is at most `MAX_AGE` seconds old anywhere.
The answer is cached as the bytes sent, so a cached read costs no more than a
health check.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from app.deps import DatabaseUnavailable, read_engine_of
from campaign.public import public_summary as current_summary
from schemas.api import PublicSummary

router = APIRouter(prefix="/v1/public", tags=["public"])

MAX_AGE = 60.0


@dataclass
class PublicCache:
    value: bytes | None = None
    expires: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def fresh(self) -> bytes | None:
        return self.value if time.monotonic() < self.expires else None


async def cached(
    request: Request, name: str, render: Callable[[AsyncConnection], Awaitable[bytes]]
) -> tuple[bytes, int]:
    """`render`'s bytes, at most `MAX_AGE` seconds old, and the seconds they stay
    fresh; one reader renders while the others wait for it."""
    caches: dict[str, PublicCache] = request.app.state.__dict__.setdefault("public_caches", {})
    cache = caches.setdefault(name, PublicCache())
    body = cache.fresh()
    if body is None:
        async with cache.lock:
            body = cache.fresh()
            if body is None:
                try:
                    async with read_engine_of(request).connect() as conn:
                        body = await render(conn)
                except (OSError, InterfaceError, OperationalError) as exc:
                    raise DatabaseUnavailable(
                        "database_unavailable", "the database is unavailable"
                    ) from exc
                cache.value, cache.expires = body, time.monotonic() + MAX_AGE
    return body, max(0, int(cache.expires - time.monotonic()))


async def _summary_json(conn: AsyncConnection) -> bytes:
    summary = PublicSummary.model_validate(await current_summary(conn, datetime.now(UTC)))
    return summary.model_dump_json(exclude_unset=True).encode()


@router.get(
    "/summary",
    response_model=PublicSummary,
    response_model_exclude_unset=True,
    summary="The running campaign's published figures (no token)",
    description="The campaign whose window holds today (else the latest that has begun): "
    "its totals, days so far and top ten cities by net sales, as in its report. Cached for "
    "at most 60 seconds. Nothing per enterprise or per provider. Once the campaign has a "
    "publication, its latest publication's figures with `publication` and `published_at`. "
    "`provisional` is true while any provider-day of the window is missing; `coverage` "
    "says how complete the feeds are in counts and days, naming no provider.",
)
async def public_summary(request: Request) -> Response:
    body, max_age = await cached(request, "summary", _summary_json)
    return Response(
        body,
        media_type="application/json",
        headers={"Cache-Control": f"public, max-age={max_age}"},
    )
