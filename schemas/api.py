"""Bodies of the HTTP API, for validation and the OpenAPI document."""

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from schemas.text import MAX_BIGINT, PlainTextModel


class RecordError(BaseModel):
    index: int = Field(description="0-based position of the record (data row) in the batch")
    txn_id: str | None
    code: str = Field(examples=["unknown_merchant"])
    field: str | None
    message: str


class BatchAnswer(BaseModel):
    batch_id: str
    provider: str
    received: int
    inserted: int
    duplicates: int
    rejected: int = Field(description="every rejected record, the quarantined ones included")
    quarantined: int
    replayed: bool
    control_totals: dict[str, Any] | None = Field(
        description="declared vs read control totals of a provider file; null when none"
    )
    errors: list[RecordError] = Field(description="at most 1,000, by index")

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "batch_id": "cmb-2023-09-09-0001",
                    "provider": "cmb",
                    "received": 3,
                    "inserted": 1,
                    "duplicates": 1,
                    "rejected": 1,
                    "quarantined": 1,
                    "replayed": False,
                    "control_totals": None,
                    "errors": [
                        {
                            "index": 2,
                            "txn_id": "T3",
                            "code": "unknown_merchant",
                            "field": None,
                            "message": "merchant account is not registered for provider cmb; "
                            "record quarantined",
                        }
                    ],
                }
            ]
        }
    }


class Measures(BaseModel):
    txn_count: int
    payment_count: int
    refund_count: int
    gross_fen: int
    refund_fen: int
    net_fen: int
    payer_count: int = Field(
        description="distinct payers among the records with a payer_ref, estimated from "
        "HyperLogLog sketches: relative standard error 1.6 % (99.7 % of counts within ±4.9 %)"
    )


class Baseline(BaseModel):
    first_day: date
    last_day: date
    measures: Measures


class ProviderDay(BaseModel):
    provider: str
    day: date


class FiguresCoverage(BaseModel):
    """How complete the feeds behind a set of figures are (SPEC section 10), over
    the days of its window that have begun."""

    from_: date = Field(alias="from")
    to: date
    provider_days: int
    complete: int
    pending: int = Field(description="provider-days whose due time has not come")
    late: int = Field(description="provider-days whose first record arrived after its due time")
    missing: list[ProviderDay] = Field(description="due, and no record arrived")
    suspect: list[ProviderDay] = Field(
        description="fewer records than a third of the provider's usual day"
    )
    late_days: list[ProviderDay]
    providers: int = Field(
        description="providers registered or named by stored records or merchant accounts"
    )
    delivered: int = Field(description="providers with no missing or suspect day in the window")

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class CampaignSummary(BaseModel):
    campaign: str
    first_day: date
    last_day: date
    measures: Measures
    active_cities: int
    active_enterprises: int
    baseline: Baseline
    uplift_fen: int
    uplift_pct: float | None
    coverage: FiguresCoverage


class Registered(BaseModel):
    registered: int


class Campaign(BaseModel):
    code: str
    name: str
    slogan: str
    first_day: date
    last_day: date
    baseline_first_day: date
    baseline_last_day: date
    time_zone: str
    report_due: date | None = Field(
        description="the last day on which a province's submission is on time"
    )


class ReportRow(BaseModel):
    unit: str = Field(description='province prefix ("33"), city code, or "total"')
    name: str
    cities: int = Field(description="participating cities (a city row: 1)")
    enterprises: int = Field(description="enterprises registered for the campaign in the unit")
    activities: int
    sessions: int = Field(description="sessions held (场次) of those activities")
    policies: int = Field(
        description="a city row: its city's; a province row: its own and its cities'; "
        "total: every policy"
    )
    net_fen: int = Field(description="net sales in the unit's window (local extensions count)")
    baseline_net_fen: int
    uplift_fen: int = Field(
        description="net minus the baseline scaled to each city's own campaign days"
    )
    uplift_pct: float | None = Field(description="uplift over the sum of the scaled baselines")


class Report(BaseModel):
    campaign: str
    level: str = Field(examples=["province"])
    first_day: date
    last_day: date
    rows: list[ReportRow]
    total: ReportRow
    coverage: FiguresCoverage | None = Field(
        default=None, description="how complete the feeds of the window are, up to today"
    )


class TopCity(BaseModel):
    city: str
    name: str
    net_fen: int


class PublicMeasures(BaseModel):
    txn_count: int
    payment_count: int
    refund_count: int
    gross_fen: int
    refund_fen: int
    net_fen: int


class PublicCoverage(BaseModel):
    """A `FiguresCoverage` as the public may see it: counts and days, never which
    provider."""

    from_: date = Field(alias="from")
    to: date = Field(description="the last day counted (数据截至)")
    provider_days: int
    complete: int
    pending: int = Field(description="provider-days whose due time has not come")
    missing: int = Field(description="provider-days due with no record")
    suspect: int = Field(description="provider-days with fewer records than a third of usual")
    late: int = Field(description="provider-days whose first record arrived after its due time")
    providers: int
    delivered: int = Field(description="providers with no missing or suspect day in the window")
    missing_days: list[date] = Field(description="the days on which a provider-day is missing")
    suspect_days: list[date] = Field(description="the days on which a provider-day is suspect")

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class PublicSummary(BaseModel):
    campaign: str
    first_day: date
    last_day: date
    days_so_far: int
    as_of: datetime
    measures: PublicMeasures
    top_cities: list[TopCity] = Field(description="at most ten, by net sales")
    publication: int | None = Field(
        default=None, description="the publication shown; absent while none exists"
    )
    published_at: datetime | None = None
    provisional: bool | None = Field(
        default=None,
        description="true while any provider-day of the window is missing; absent for a "
        "publication made before coverage was kept",
    )
    coverage: PublicCoverage | None = Field(
        default=None, description="how complete the feeds behind the figures are"
    )


class QuarantineSelection(PlainTextModel):
    """Which held records an action takes: every given filter applies; none at all
    means every held record."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"code": "unknown_merchant", "provider": "cmb"}]},
    )

    code: str | None = Field(default=None, examples=["unknown_merchant"])
    provider: str | None = None
    ids: list[Annotated[int, Field(ge=1, le=MAX_BIGINT)]] | None = Field(
        default=None, max_length=100_000
    )


class ReplayAnswer(BaseModel):
    replayed: int = Field(description="held records run again through the whole path")
    inserted: int
    duplicates: int = Field(description="already stored with the same content; released")
    still_quarantined: int = Field(description="held again (their code and message updated)")


class DiscardAnswer(BaseModel):
    discarded: int


class QuarantineAction(BaseModel):
    id: int
    action: str = Field(examples=["replay"])
    actor: str = Field(examples=["token:3"])
    filters: dict[str, Any]
    count: int
    at: datetime


class PublicationIn(PlainTextModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"note": "第一次发布", "final": False}]}
    )

    note: str = Field(default="", max_length=2000)
    final: bool = Field(default=False, description="the one reported after the campaign")


class CoveredDays(BaseModel):
    first_day: date
    last_day: date
    count: int


class PublicationHeader(BaseModel):
    campaign: str
    number: int
    published_at: datetime
    published_by: str
    note: str
    final: bool
    sha256: str
    days: CoveredDays


class SubmissionIn(PlainTextModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"note": "浙江省活动成效第一次报送"}]}
    )

    note: str = Field(default="", max_length=2000)


class AuditRow(BaseModel):
    id: int
    at: datetime
    actor_token_id: int | None = Field(description="null for the command line or the schedule")
    role: str = Field(examples=["admin", "cli"])
    region: str | None = Field(description="the actor's region; null is national")
    action: str = Field(examples=["registry.enterprises", "submission.create"])
    target: str
    count: int = Field(description="rows the change applied")


class ErrorDetail(BaseModel):
    code: str = Field(description="stable, for programs", examples=["unknown_parameter"])
    message: str = Field(description="for people: what was wrong and what is accepted")


class ErrorAnswer(BaseModel):
    """Every error payfeed answers: 4xx for the caller's mistakes, 5xx for its own."""

    error: ErrorDetail


class HeldRecord(BaseModel):
    id: int
    provider: str
    code: str = Field(examples=["unknown_merchant"])
    message: str
    txn_id: str | None
    record: dict[str, Any] = Field(description="the record as it was normalised")
    batch_id: str | None
    source: dict[str, Any] | None = Field(description="where it came from (HTTP, Kafka, file)")
    created_at: datetime = Field(description="when it arrived")


class QuarantinePage(BaseModel):
    total: int = Field(description="held records matching the filters, on every page")
    items: list[HeldRecord]
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null on the last"
    )


class CityRow(BaseModel):
    campaign: str
    city: str
    name: str | None
    last_day: date | None = Field(description="the city's local extension, if any")


class EnterpriseRow(BaseModel):
    uscc: str
    campaign: str
    name: str
    city: str
    kind: str
    category: str


class MerchantAccountRow(BaseModel):
    provider: str
    merchant_id: str
    uscc: str
    enterprise: str = Field(description="the enterprise's name")
    city: str = Field(description="the account's own city, else its enterprise's")
    category: str = Field(description="the account's own category, else its enterprise's")


class ActivityRow(BaseModel):
    campaign: str
    city: str
    title: str
    theme: str
    first_day: date
    last_day: date
    sessions: int


class PolicyRow(BaseModel):
    campaign: str
    unit: str = Field(description="a province prefix (2 digits) or a city code")
    title: str
    issued_on: date


class ProviderRow(BaseModel):
    """A registered provider, with the fields of its registration (a listing saved
    as CSV imports back as it is)."""

    provider: str
    name: str
    kind: str = Field(examples=["bank"], description="bank, card_network or third_party")
    delivery: str = Field(examples=["daily"], description="stream or daily")
    due: str = Field(
        examples=["10:00"],
        description="local time on the day after a business day by which its data is complete",
    )


class Alive(BaseModel):
    status: str = Field(examples=["ok"])


class ConsumerState(BaseModel):
    failures: int = Field(description="times messages were set aside (quarantined, dead-lettered)")
    last_failure: str | None


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, bool] = Field(examples=[{"database": True, "migrated": True}])
    consumer: ConsumerState | None = Field(default=None, description="with a consumer only")


class RollupsAnswer(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    dims: list[str] = Field(examples=[["day", "city"]])
    first_day: date = Field(alias="from")
    last_day: date = Field(alias="to")
    rows: list[dict[str, Any]] = Field(description="the dims' values and the measures, per row")
    totals: Measures = Field(description="over every row (every page)")
    next_cursor: str | None = Field(
        default=None, description="with `limit`: pass as `cursor` for the next page"
    )


class DailyNet(BaseModel):
    day: date
    net_fen: int


class Publication(BaseModel):
    """A publication as stored: its header, the figures at the snapshot, and the
    checksum over them."""

    model_config = ConfigDict(extra="allow")

    campaign: str
    number: int
    published_at: str = Field(description="RFC 3339, as stored (the checksum covers it)")
    published_by: str
    note: str
    final: bool
    first_day: date
    last_day: date
    days: CoveredDays
    records: int
    measures: PublicMeasures
    reports: dict[str, Report] = Field(description="by level: `province` and `city`")
    daily: list[DailyNet]
    baseline_daily_net_fen: int
    sha256: str


class PublicationChange(BaseModel):
    level: str = Field(examples=["province"])
    unit: str
    name: str
    measure: str = Field(examples=["net_fen"])
    old: int | float | None
    new: int | float | None
    change: int | float | None


class PublicationDiff(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    campaign: str
    old: int = Field(alias="from", description="the publication compared against")
    new: int = Field(alias="to")
    changes: list[PublicationChange]
    late_arrivals: list[ProviderDay] = Field(
        default=[],
        description="provider-days missing or suspect when `from` was published that "
        "arrived late by `to`: what the revision is owed to",
    )


class Submission(BaseModel):
    """A province's submission as stored, with the checksum over it."""

    model_config = ConfigDict(extra="allow")

    campaign: str
    province: str = Field(examples=["33"])
    number: int
    submitted_at: str = Field(description="RFC 3339, as stored (the checksum covers it)")
    submitted_by: str
    note: str
    late: bool = Field(description="submitted after the campaign's `report_due` day")
    report: Report = Field(description="the province's report at city level")
    sha256: str


class SubmissionEntry(BaseModel):
    """A province in the list of submissions: `submitted: false`, or its latest
    (or each) submission's header fields, `sha256`, `total` (a report row) and
    `compared_with_live` (the measures, per city and total, that differ now)."""

    model_config = ConfigDict(extra="allow")

    province: str = Field(examples=["33"])
    name: str
    submitted: bool


class ProviderOut(BaseModel):
    provider: str
    name: str | None
    kind: str | None
    delivery: str | None
    due: str = Field(examples=["10:00"])
    registered: bool


class FeedDay(BaseModel):
    provider: str
    day: date
    state: str = Field(examples=["complete"], description="pending, missing, suspect or complete")
    late: bool
    records: int
    net_fen: int
    batches: int = Field(description="batches, file chunks or Kafka polls that stored records")
    first_arrival: datetime | None
    last_arrival: datetime | None


class CoverageCounts(BaseModel):
    provider_days: int
    complete: int
    pending: int
    missing: int
    suspect: int
    late: int


class Coverage(BaseModel):
    from_: date = Field(alias="from")
    to: date
    providers: list[ProviderOut]
    days: list[FeedDay]
    summary: CoverageCounts

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class ReconciledFile(BaseModel):
    provider: str
    source: str = Field(examples=["batch:wx-0909", "file:bills/0909.csv.gz"])
    first_day: date | None
    last_day: date | None
    declared: dict[str, Any]
    read: dict[str, Any]
    received: int = Field(description="records the file held (not counting non-consumption rows)")
    stored: dict[str, int] = Field(
        description="of those, stored (inserted, or duplicates of stored records): records, "
        "payment_count, payment_fen, refund_count, refund_fen"
    )
    declared_match: bool
    stored_match: bool
    match: bool
    first_arrival: datetime
    last_arrival: datetime


class Reconciliation(BaseModel):
    provider: str | None
    from_: date = Field(alias="from")
    to: date
    files: list[ReconciledFile]

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)
