"""`/healthz` (alive), `/readyz` (database reachable and migrated), `/metrics`."""

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError

from app.deps import engine_of
from ingest.metrics import DB_POOL_CONNECTIONS, QUARANTINE_RECORDS
from ingest.quarantine import quarantine_sizes
from schemas.api import Alive, Readiness
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
    """Gauges read at scrape time: this process's connection pool, and the
    quarantine's size (skipped while the database is unreachable)."""
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
    except (OSError, SQLAlchemyError):
        log.warning("quarantine size not read: the database is unavailable")
        return
    QUARANTINE_RECORDS.clear()
    for (provider, code), count in sizes.items():
        QUARANTINE_RECORDS.labels(provider, code).set(count)


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    await observe_state(request)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
