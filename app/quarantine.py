"""`/v1/quarantine`: what was held back and why; replay, discard, and their trail."""

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from app.deps import Admin, Conn, NationalAdmin, PipelineDep
from ingest.quarantine import discard_quarantine, list_actions, list_quarantine, replay_quarantine
from schemas.api import DiscardAnswer, QuarantineAction, QuarantineSelection, ReplayAnswer

router = APIRouter(prefix="/v1/quarantine", tags=["quarantine"])


@router.get(
    "",
    summary="Held records (unknown_merchant, conflict)",
    description="A regional admin sees the records whose merchant account resolves to a "
    "city of its region; records that resolve to no enterprise only national admins see.",
)
async def held(
    conn: Conn,
    who: Admin,
    code: str | None = None,
    provider: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> Any:
    return await list_quarantine(conn, code=code, provider=provider, limit=limit, scope=who.scope)


@router.post(
    "/replay",
    response_model=ReplayAnswer,
    summary="Run held records again with the registry as it is now",
    description="A record that goes in (or was stored meanwhile with the same content) "
    "leaves the quarantine; one held again keeps its id. Replaying twice inserts once. "
    "No body replays every held record (of the caller's region: a regional admin acts on "
    "the records that resolve to its cities; ids outside them are 403, nothing replayed).",
)
async def replay(
    conn: Conn, who: Admin, pipeline: PipelineDep, selection: QuarantineSelection | None = None
) -> Any:
    chosen = selection or QuarantineSelection()
    return await replay_quarantine(
        conn,
        pipeline,
        actor=who,
        now=datetime.now(UTC),
        **chosen.model_dump(),
    )


@router.post(
    "/discard",
    response_model=DiscardAnswer,
    summary="Delete held records for good",
    description="No body discards every held record (of the caller's region, as for replay).",
)
async def discard(conn: Conn, who: Admin, selection: QuarantineSelection | None = None) -> Any:
    chosen = selection or QuarantineSelection()
    return await discard_quarantine(conn, actor=who, **chosen.model_dump())


@router.get(
    "/actions",
    response_model=list[QuarantineAction],
    summary="Replays and discards, latest first: who, when, which selection, how many",
)
async def actions(
    conn: Conn, who: NationalAdmin, limit: Annotated[int, Query(ge=1, le=10_000)] = 100
) -> Any:
    return await list_actions(conn, limit=limit)
