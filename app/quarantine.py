"""`GET /v1/quarantine`: what was held back, and why."""

from typing import Annotated, Any

from fastapi import APIRouter, Query

from app.deps import Admin, Conn
from ingest.quarantine import list_quarantine

router = APIRouter(prefix="/v1/quarantine", tags=["quarantine"])


@router.get("", summary="Held records (unknown_merchant, conflict)")
async def held(
    conn: Conn,
    who: Admin,
    code: str | None = None,
    provider: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> Any:
    return await list_quarantine(conn, code=code, provider=provider, limit=limit)
