"""`GET /v1/feeds/coverage` and `GET /v1/feeds/reconciliation`: which provider has
delivered which day, and how the files that declared control totals add up."""

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from app.deps import ReadConn, Viewer
from campaign.coverage import check_range, default_range, feed_coverage, reconciliation
from schemas.api import Coverage, Reconciliation
from schemas.text import PROVIDER_PATTERN, CampaignDay

router = APIRouter(prefix="/v1/feeds", tags=["feeds"])


@router.get(
    "/coverage",
    response_model=Coverage,
    summary="Feed completeness per provider and day",
    description="Every provider (registered, or named by stored records or merchant "
    "accounts: `registered: false`) and day of the range with its state: `pending` before "
    "its due time (the provider's `due` on the next day, default 10:00 local); after it "
    "`missing` when no record of the day arrived although the provider stored records in "
    "the 7 days before; `suspect` when its records are fewer than a third of the median of "
    "its days with data among the 28 before it; else `complete`. `late`: the day's first record "
    "arrived after its due time. Days are ordered by provider then day; `from`/`to` are "
    "days of the years 2000 to 2100. A regional token "
    "sees the records and net sales of its region's cities; states and arrivals are the "
    "provider's feed as a whole (a file is missing or not for every region at once).",
)
async def coverage(
    conn: ReadConn,
    who: Viewer,
    first_day: Annotated[CampaignDay | None, Query(alias="from", examples=["2023-09-09"])] = None,
    last_day: Annotated[CampaignDay | None, Query(alias="to", examples=["2023-10-08"])] = None,
    provider: Annotated[str | None, Query(pattern=PROVIDER_PATTERN, examples=["cmb"])] = None,
) -> Any:
    now = datetime.now(UTC)
    first, last = default_range(first_day, last_day, now)
    check_range(first, last)
    return await feed_coverage(conn, first, last, now, provider, who.scope)


@router.get(
    "/reconciliation",
    response_model=Reconciliation,
    summary="Files and batches with control totals: declared, read and stored",
    description="Every file (backfill) or batch (HTTP) whose format declares control totals "
    "(Alipay, WeChat Pay) and that carried records of the range: what it declared, what "
    "was read from its rows, how many records it held and how many of them are stored "
    "(inserted, or already stored by an earlier delivery). Mismatches first. A provider's "
    "file spans every region: national tokens only (403 `out_of_scope` otherwise).",
)
async def reconcile(
    conn: ReadConn,
    who: Viewer,
    first_day: Annotated[CampaignDay | None, Query(alias="from", examples=["2023-09-09"])] = None,
    last_day: Annotated[CampaignDay | None, Query(alias="to", examples=["2023-10-08"])] = None,
    provider: Annotated[str | None, Query(pattern=PROVIDER_PATTERN, examples=["cmb"])] = None,
) -> Any:
    if not who.scope.national:
        raise who.scope.refusal("a provider's file (it spans every region)")
    first, last = default_range(first_day, last_day, datetime.now(UTC))
    files = await reconciliation(conn, provider, first, last)
    return {"provider": provider, "from": first, "to": last, "files": files}
