"""`/healthz` (alive), `/readyz` (database reachable and migrated), `/metrics`."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import ORJSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.deps import engine_of
from ingest.migrate import is_migrated

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> Any:
    return {"status": "ok"}


@router.get("/readyz", summary="The database is reachable and migrated")
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
    if consumer is not None:
        checks["consumer"] = bool(consumer.running)
    ready = all(checks.values())
    return ORJSONResponse({"ready": ready, "checks": checks}, 200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics")
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
