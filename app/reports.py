"""`GET /v1/reports/{campaign}`: the campaign report as JSON, CSV or XLSX."""

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncConnection

from app.answers import Rendered, answer
from app.deps import Conn, Viewer
from app.openapi import errors
from campaign.coverage import coverage_clock
from campaign.report_files import report_csv, report_xlsx
from campaign.reports import campaign_report
from schemas.api import Report
from store.spreadsheets import CSV_MEDIA_TYPE, XLSX_MEDIA_TYPE

router = APIRouter(prefix="/v1/reports", tags=["reports"])

JSON = "application/json"


FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
        }
    }
}


def rendered_report_file(figures: dict[str, Any], format: str, stem: str) -> Rendered:
    """A report (live or published) as a CSV or XLSX download."""
    body, media = (
        (report_csv(figures), CSV_MEDIA_TYPE)
        if format == "csv"
        else (report_xlsx(figures), XLSX_MEDIA_TYPE)
    )
    return Rendered(body, media, {"Content-Disposition": f'attachment; filename="{stem}.{format}"'})


def report_file(figures: dict[str, Any], format: str, stem: str) -> Response:
    rendered = rendered_report_file(figures, format, stem)
    return Response(rendered.body, media_type=rendered.media_type, headers=rendered.headers)


@router.get(
    "/{campaign}",
    response_model=Report,
    summary="The campaign report per province or city",
    description="Per unit: participating cities and enterprises, activities and sessions "
    "held, policies issued, net sales in the unit's window (each city with its local "
    "extension), baseline, uplift and uplift %, then the `total` row. Amounts are integer "
    "fen in JSON and CSV, yuan with two decimals in XLSX. "
    "Carries an `ETag` (answered `304` to a matching `If-None-Match`) and `X-Data-As-Of`. "
    "A regional token's report has its region's units and a total of its region; `unit` "
    "narrows the report to one province or city (403 `out_of_scope` outside the token's "
    "region).",
    responses={**FILE_RESPONSES, **errors(404)},
)
async def report(
    request: Request,
    campaign: str,
    conn: Conn,
    who: Viewer,
    level: Annotated[str, Query(pattern="^(province|city)$")] = "province",
    format: Annotated[str, Query(pattern="^(json|csv|xlsx)$")] = "json",
    unit: Annotated[str | None, Query(examples=["33", "330100"])] = None,
) -> Any:
    async def render(snapshot: AsyncConnection) -> Rendered:
        now = datetime.now(UTC)
        figures = await campaign_report(snapshot, campaign, level, who.scope, unit, now=now)
        if format == "json":
            rendered = Rendered(Report.model_validate(figures).model_dump_json().encode(), JSON)
        else:
            rendered = rendered_report_file(figures, format, f"report-{campaign}-{level}")
        return rendered.on_the_clock(await coverage_clock(snapshot, now))

    return await answer(request, conn, who, render)
