"""Bodies of the HTTP API, for validation and the OpenAPI document."""

from datetime import date
from typing import Any

from pydantic import BaseModel, Field


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


class Baseline(BaseModel):
    first_day: date
    last_day: date
    measures: Measures


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


class Registered(BaseModel):
    registered: int
