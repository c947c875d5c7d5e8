"""`GET /v1/campaigns/{code}/summary`."""

from typing import Any

from fastapi import APIRouter

from app.deps import Conn, Viewer
from ingest.campaigns import campaign_summary
from schemas.api import CampaignSummary

router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"])


@router.get(
    "/{code}/summary",
    response_model=CampaignSummary,
    summary="Campaign totals, baseline and uplift",
    description="`uplift_fen` = campaign net − baseline net × campaign days / baseline days "
    "(rounded half away from zero to the fen); `uplift_pct` is it as a percentage of the "
    "scaled baseline (null when that is zero).",
)
async def summary(code: str, conn: Conn, who: Viewer) -> Any:
    return await campaign_summary(conn, code)
