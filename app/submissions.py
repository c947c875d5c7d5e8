"""`/v1/reports/{campaign}/submissions`: provinces submit their reports (报送);
national tokens see every province's latest, a province token its own."""

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path

from app.deps import Admin, Conn, Viewer
from campaign.submissions import (
    list_submissions,
    read_submission,
    submit,
    submitting_province,
)
from schemas.api import Submission, SubmissionEntry, SubmissionIn
from schemas.text import MAX_INTEGER

router = APIRouter(prefix="/v1/reports/{campaign}/submissions", tags=["submissions"])

SubmissionNumber = Annotated[int, Path(ge=1, le=MAX_INTEGER)]
Province = Annotated[str, Path(pattern=r"^[0-9]{2}$", examples=["33"])]


@router.post(
    "",
    status_code=201,
    response_model=Submission,
    summary="Submit the province's report (provincial admin)",
    description="Stores an immutable snapshot of the province's report at city level (its "
    "cities and their total), numbered per province and campaign, with the SHA-256 of its "
    "canonical JSON; `late` when submitted after the campaign's `report_due` day. A later "
    "submission supersedes it without changing it.",
)
async def create_submission(
    campaign: str, conn: Conn, who: Admin, body: SubmissionIn | None = None
) -> dict[str, Any]:
    province = submitting_province(who)
    note = body.note if body is not None else ""
    return await submit(conn, campaign, province, who, note, datetime.now(UTC))


@router.get(
    "",
    response_model=list[SubmissionEntry],
    summary="Submissions: every province's latest (national), or the province's own",
    description="National tokens: per province taking part, its latest submission or "
    "`submitted: false`. A province token: every submission of its own. Each with its "
    "total and `compared_with_live`: the measures, per city and total, that differ from "
    "the live report now. City tokens read none (403).",
)
async def submission_list(campaign: str, conn: Conn, who: Viewer) -> list[dict[str, Any]]:
    return await list_submissions(conn, campaign, who.scope)


@router.get(
    "/{province}/{number}",
    response_model=Submission,
    summary="One submission as stored, with its checksum",
)
async def submission(
    campaign: str, province: Province, number: SubmissionNumber, conn: Conn, who: Viewer
) -> dict[str, Any]:
    return await read_submission(conn, campaign, province, number, who.scope)
