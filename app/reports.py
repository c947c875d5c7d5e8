"""`GET /v1/reports/{campaign}`: the campaign report as JSON, CSV or XLSX."""

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from app.deps import Conn, Viewer
from campaign.report_files import CSV_MEDIA_TYPE, XLSX_MEDIA_TYPE, report_csv, report_xlsx
from campaign.reports import campaign_report
from schemas.api import Report

router = APIRouter(prefix="/v1/reports", tags=["reports"])


FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
        }
    }
}


def report_file(figures: dict[str, Any], format: str, stem: str) -> Response:
    """A report (live or published) as a CSV or XLSX download."""
    body, media = (
        (report_csv(figures), CSV_MEDIA_TYPE)
        if format == "csv"
        else (report_xlsx(figures), XLSX_MEDIA_TYPE)
    )
    return Response(
        body,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{stem}.{format}"'},
    )


@router.get(
    "/{campaign}",
    response_model=Report,
    summary="The campaign report per province or city",
    description="Per unit: participating cities and enterprises, activities and sessions "
    "held, policies issued, net sales in the unit's window (each city with its local "
    "extension), baseline, uplift and uplift %, then the `total` row. Amounts are integer "
    "fen in JSON and CSV, yuan with two decimals in XLSX.",
    responses=FILE_RESPONSES,
)
async def report(
    campaign: str,
    conn: Conn,
    who: Viewer,
    level: Annotated[str, Query(pattern="^(province|city)$")] = "province",
    format: Annotated[str, Query(pattern="^(json|csv|xlsx)$")] = "json",
) -> Any:
    figures = await campaign_report(conn, campaign, level)
    if format == "json":
        return figures
    return report_file(figures, format, f"report-{campaign}-{level}")
