"""`GET /v1/audit`: the audit trail (national admin)."""

from typing import Annotated, Any

from fastapi import APIRouter, Query

from app.deps import Conn, NationalAdmin
from schemas.api import AuditRow
from schemas.text import MAX_INTEGER, CampaignTime
from store.audit import audit_rows, local

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get(
    "",
    response_model=list[AuditRow],
    summary="Every change made through payfeed, newest first",
    description="Registrations, campaign settings, tokens, quarantine actions, rebuilds, "
    "publications, submissions and batches: who (token id, role, region), what, on what, "
    "how many rows. `actor` is a token id; `action` an exact action or a prefix ending in "
    "`.` (`registry.`); `from`/`to` bound `at` (ISO 8601; without an offset, Asia/Shanghai; "
    "on a day of the years 2000 to 2100). "
    "Rows are never changed.",
)
async def audit(
    conn: Conn,
    who: NationalAdmin,
    actor: Annotated[int | None, Query(ge=1, le=MAX_INTEGER)] = None,
    action: str | None = None,
    since: Annotated[CampaignTime | None, Query(alias="from")] = None,
    until: Annotated[CampaignTime | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> Any:
    return await audit_rows(
        conn, actor=actor, action=action, since=local(since), until=local(until), limit=limit
    )
