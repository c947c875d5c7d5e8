"""`/v1/campaigns/{code}/publications`: publish (admin), list, read and diff (viewer)."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from app.deps import Conn, NationalAdmin, Viewer, engine_of
from app.openapi import errors
from app.reports import FILE_RESPONSES, report_file
from campaign.publications import (
    diff_publications,
    list_publications,
    publish_consistently,
    read_publication,
)
from schemas.api import Publication, PublicationDiff, PublicationHeader, PublicationIn
from schemas.text import MAX_INTEGER

PublicationNumber = Annotated[int, Path(ge=1, le=MAX_INTEGER)]

router = APIRouter(prefix="/v1/campaigns/{code}/publications", tags=["publications"])


@router.post(
    "",
    status_code=201,
    response_model=Publication,
    responses=errors(404, 409),
    summary="Publish the campaign report as the next numbered, immutable publication",
    description="Reads every figure at one snapshot. 409 `final_exists` when `final` is "
    "asked for and the campaign already has its final publication.",
)
async def create_publication(
    code: str, body: PublicationIn, request: Request, who: NationalAdmin
) -> dict[str, Any]:
    published = await publish_consistently(engine_of(request), code, who, body.note, body.final)
    assert published is not None
    return published


@router.get(
    "",
    response_model=list[PublicationHeader],
    responses=errors(404),
    summary="The campaign's publications",
)
async def publication_list(code: str, conn: Conn, who: Viewer) -> Any:
    return await list_publications(conn, code)


@router.get(
    "/{number}",
    summary="One publication: JSON, or its report as CSV or XLSX",
    response_model=Publication,
    responses={**FILE_RESPONSES, **errors(404)},
)
async def publication(
    code: str,
    number: PublicationNumber,
    conn: Conn,
    who: Viewer,
    format: Annotated[str, Query(pattern="^(json|csv|xlsx)$")] = "json",
    level: Annotated[str, Query(pattern="^(province|city)$")] = "province",
) -> Any:
    found = await read_publication(conn, code, number)
    if format == "json":
        return found
    return report_file(found["reports"][level], format, f"publication-{code}-{number}-{level}")


@router.get(
    "/{number}/diff/{other}",
    summary="What publication `other` changed against `number`",
    description="Per unit and measure where they differ: old, new and change; "
    "`late_arrivals`: the provider-days the revision is owed to.",
    response_model=PublicationDiff,
    responses=errors(404),
)
async def publication_diff(
    code: str, number: PublicationNumber, other: PublicationNumber, conn: Conn, who: Viewer
) -> dict[str, Any]:
    return await diff_publications(conn, code, number, other)
