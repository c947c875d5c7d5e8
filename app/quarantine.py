"""`/v1/quarantine`: what was held back and why; replay, discard, and their trail."""

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import orjson
from fastapi import APIRouter, Query

from app.deps import Admin, Conn, NationalAdmin, PipelineDep
from app.files import csv_response
from app.paging import DEFAULT_PAGE, MAX_PAGE, decode_cursor, encode_cursor
from ingest.quarantine import discard_quarantine, list_actions, list_quarantine, replay_quarantine
from schemas.api import (
    DiscardAnswer,
    QuarantineAction,
    QuarantinePage,
    QuarantineSelection,
    ReplayAnswer,
)
from schemas.records import LOCAL_TIME_ZONE
from schemas.text import CampaignDay

router = APIRouter(prefix="/v1/quarantine", tags=["quarantine"])

SHANGHAI = ZoneInfo(LOCAL_TIME_ZONE)


@router.get(
    "",
    response_model=QuarantinePage,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
    summary="Held records (unknown_merchant, conflict)",
    description="In arrival order, `limit` at a time: pass `next_cursor` as `cursor` for "
    "the next page (null on the last); `total` counts every held record matching the "
    "filters. `from`/`to` are inclusive Asia/Shanghai days of arrival (years 2000 to "
    "2100). `format=csv` gives the same page as CSV (the record as JSON in its `record` "
    "column, the next cursor in "
    "`X-Next-Cursor`). A regional admin sees the records whose merchant account resolves "
    "to a city of its region; records that resolve to no enterprise only national admins see.",
)
async def held(
    conn: Conn,
    who: Admin,
    code: Annotated[str | None, Query(examples=["unknown_merchant"])] = None,
    provider: str | None = None,
    first_day: Annotated[CampaignDay | None, Query(alias="from", examples=["2023-09-09"])] = None,
    last_day: Annotated[CampaignDay | None, Query(alias="to", examples=["2023-10-08"])] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    cursor: str | None = None,
    format: Annotated[str, Query(pattern="^(json|csv)$")] = "json",
) -> Any:
    after = decode_cursor(cursor, [int])
    found = await list_quarantine(
        conn,
        code=code,
        provider=provider,
        arrived_from=None if first_day is None else start_of(first_day),
        arrived_before=None if last_day is None else start_of(last_day + timedelta(days=1)),
        after_id=None if after is None else after[0],
        limit=limit,
        scope=who.scope,
    )
    items = found["items"]
    next_cursor = encode_cursor([items[-1]["id"]]) if found["more"] else None
    if format == "csv":
        rows = [{**item, "record": orjson.dumps(item["record"]).decode()} for item in items]
        more = {"X-Next-Cursor": next_cursor} if next_cursor else None
        return csv_response(HELD_COLUMNS, rows, "quarantine.csv", more)
    return {"total": found["total"], "items": items, "next_cursor": next_cursor}


HELD_COLUMNS = ["id", "created_at", "provider", "code", "txn_id", "batch_id", "message", "record"]


def start_of(day: date) -> datetime:
    """The first instant of an Asia/Shanghai day."""
    return datetime.combine(day, time(), SHANGHAI)


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
