"""`PUT /v1/campaigns/{code}` and `GET /v1/campaigns/{code}/summary`."""

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from sqlalchemy.ext.asyncio import AsyncConnection

from app.answers import Rendered, answer
from app.deps import Conn, NationalAdmin, Viewer
from app.files import csv_response
from app.openapi import errors
from app.registry import media_type
from campaign.campaigns import campaign_summary, list_campaigns, put_campaign
from campaign.coverage import coverage_clock
from campaign.registry import parse_rows
from schemas.api import Campaign, CampaignSummary
from schemas.registry import CampaignIn
from store.errors import RuleViolation

router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"])

JSON = "application/json"

CampaignCode = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,32}$", examples=["2023"])]


@router.get(
    "",
    response_model=list[Campaign],
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
    summary="Every campaign, the latest first",
)
async def campaign_list(
    conn: Conn, who: Viewer, format: Annotated[str, Query(pattern="^(json|csv)$")] = "json"
) -> Any:
    found = await list_campaigns(conn)
    if format == "csv":
        return csv_response(list(Campaign.model_fields), found, "campaigns.csv")
    return found


@router.put(
    "/{code}",
    response_model=Campaign,
    responses=errors(415, 422),
    summary="Create or replace a campaign",
    description="JSON (one object) or CSV (a header and one row) with the fields of "
    "`CampaignIn`. The baseline defaults to the same number of days immediately before "
    "`first_day`. A city's local extension is its `last_day` in `POST /v1/registry/cities`.",
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {
                    "schema": CampaignIn.model_json_schema(),
                    "example": {
                        "name": "百城万企促消费",
                        "first_day": "2023-09-09",
                        "last_day": "2023-10-08",
                    },
                },
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": "name,first_day,last_day\n百城万企促消费,2023-09-09,2023-10-08\n",
                },
            }
        }
    },
)
async def put(code: CampaignCode, request: Request, conn: Conn, who: NationalAdmin) -> Any:
    rows = parse_rows(CampaignIn, await request.body(), media_type(request))
    if len(rows) != 1:
        raise RuleViolation("invalid_registration", f"expected one campaign, got {len(rows)}")
    return await put_campaign(conn, code, rows[0], who)


@router.get(
    "/{code}/summary",
    response_model=CampaignSummary,
    responses=errors(404),
    summary="Campaign totals, baseline and uplift",
    description="`uplift_fen` = campaign net − baseline net × campaign days / baseline days "
    "(rounded half away from zero to the fen); `uplift_pct` is it as a percentage of the "
    "scaled baseline (null when that is zero). Carries an `ETag` (answered `304` to a "
    "matching `If-None-Match`) and `X-Data-As-Of`. A regional token's summary covers its "
    "region's cities. `coverage`: how complete the providers' feeds of the campaign "
    "window are, up to today (see `GET /v1/feeds/coverage`).",
)
async def summary(request: Request, code: str, conn: Conn, who: Viewer) -> Any:
    async def render(snapshot: AsyncConnection) -> Rendered:
        now = datetime.now(UTC)
        found = await campaign_summary(snapshot, code, who.scope, now=now)
        body = CampaignSummary.model_validate(found).model_dump_json().encode()
        return Rendered(body, JSON).on_the_clock(await coverage_clock(snapshot, now))

    return await answer(request, conn, who, render)
