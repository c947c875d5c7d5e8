"""`/healthz` (alive), `/readyz` (database reachable and migrated), `/metrics`."""

import logging
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from app.deps import engine_of
from campaign.campaigns import campaign_row
from campaign.coverage import STATES, feed_coverage
from campaign.public import running_campaign
from campaign.publications import campaign_last_day
from ingest.metrics import DB_POOL_CONNECTIONS, FEED_DAYS, QUARANTINE_RECORDS
from ingest.quarantine import quarantine_sizes
from schemas.api import Alive, Readiness
from schemas.records import local_today
from store.errors import NotFound
from store.migrate import is_migrated

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)


@router.get("/healthz", response_model=Alive, summary="The process is alive")
async def healthz() -> Any:
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Not ready: which check failed"}},
    summary="The database is reachable and migrated (and the consumer consuming, if any)",
    description="With a consumer, `consumer` says how many times it set messages aside "
    "(quarantined and dead-lettered: a poll that could not be stored, a batch that could not "
    "be decoded) and the last such error.",
)
async def readyz(request: Request) -> Any:
    checks: dict[str, bool] = {}
    try:
        async with engine_of(request).connect() as conn:
            checks["database"] = True
            checks["migrated"] = await is_migrated(conn)
    except Exception:
        checks["database"] = False
        checks["migrated"] = False
    consumer = getattr(request.app.state, "consumer", None)
    body: dict[str, Any] = {"checks": checks}
    if consumer is not None:
        checks["consumer"] = bool(consumer.running)
        body["consumer"] = {
            "failures": consumer.failures,
            "last_failure": consumer.last_failure,
        }
    ready = all(checks.values())
    return JSONResponse({"ready": ready, **body}, 200 if ready else 503)


async def observe_state(request: Request) -> None:
    """Gauges read at scrape time: this process's connection pool, the quarantine's
    size and the feeds' provider-days by state (skipped while the database is
    unreachable)."""
    engine = getattr(request.app.state, "engine", None)
    if engine is None:
        return
    pool = engine.pool
    for state, read in (
        ("checked_out", pool.checkedout),
        ("idle", pool.checkedin),
        ("overflow", pool.overflow),
        ("size", pool.size),
    ):
        DB_POOL_CONNECTIONS.labels(state).set(max(0, read()))
    try:
        async with engine.connect() as conn:
            sizes = await quarantine_sizes(conn)
            states = await feed_day_states(conn, datetime.now(UTC))
    except (OSError, SQLAlchemyError):
        log.warning("quarantine size not read: the database is unavailable")
        return
    QUARANTINE_RECORDS.clear()
    for (provider, code), count in sizes.items():
        QUARANTINE_RECORDS.labels(provider, code).set(count)
    FEED_DAYS.clear()
    for (provider, state), count in states.items():
        FEED_DAYS.labels(provider, state).set(count)


async def feed_day_states(conn: AsyncConnection, now: datetime) -> dict[tuple[str, str], int]:
    """Provider-days per provider and state over the running campaign's window up
    to today (every state of every provider, zeros included); none without a
    running campaign."""
    try:
        code = await running_campaign(conn, local_today(now))
    except NotFound:
        return {}
    first = (await campaign_row(conn, code)).first_day
    last = min(await campaign_last_day(conn, code), local_today(now))
    coverage = await feed_coverage(conn, first, last, now)
    counts = {(p["provider"], state): 0 for p in coverage["providers"] for state in STATES}
    for day in coverage["days"]:
        counts[day["provider"], day["state"]] += 1
    return counts


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    await observe_state(request)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
