"""How normalisation reads `occurred_at`: every RFC 3339 spelling to the same
UTC instant (microseconds, fractions truncated), anything else `invalid_field`."""

from datetime import UTC, date, datetime

import polars as pl
import pytest

from ingest.adapters.base import RAW_SCHEMA
from ingest.normalise import PayerHashes, Window, normalise

WINDOW = Window(date(2023, 1, 1), date(2024, 12, 31))
NOW = datetime(2024, 6, 1, tzinfo=UTC)


def read_time(text: str) -> datetime | str:
    record = {
        "index": 0,
        "txn_id": "T1",
        "kind": "payment",
        "amount_fen": "100",
        "currency": "CNY",
        "occurred_at": text,
        "merchant_id": "M1",
        "channel": "online",
    }
    frame = pl.DataFrame([record], schema=RAW_SCHEMA)
    result = normalise(frame, now=NOW, window=WINDOW, payers=PayerHashes(b"s"))
    if result.rejected.height:
        return str(result.rejected["field"][0])
    return result.records["occurred_at"][0]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        ("2023-09-10T20:15:00+08:00", datetime(2023, 9, 10, 12, 15, tzinfo=UTC)),
        ("2023-09-10t20:15:00+08:00", datetime(2023, 9, 10, 12, 15, tzinfo=UTC)),
        ("2023-09-10 20:15:00+08:00", datetime(2023, 9, 10, 12, 15, tzinfo=UTC)),
        ("2023-09-10T12:15:00Z", datetime(2023, 9, 10, 12, 15, tzinfo=UTC)),
        ("2023-09-10T12:15:00z", datetime(2023, 9, 10, 12, 15, tzinfo=UTC)),
        ("2023-09-10T07:45:00-04:30", datetime(2023, 9, 10, 12, 15, tzinfo=UTC)),
        ("2023-09-10T12:15:00-00:00", datetime(2023, 9, 10, 12, 15, tzinfo=UTC)),
        ("2023-09-10T12:15:00.5Z", datetime(2023, 9, 10, 12, 15, 0, 500000, tzinfo=UTC)),
        ("2023-09-10T12:15:00.123456789Z", datetime(2023, 9, 10, 12, 15, 0, 123456, tzinfo=UTC)),
        ("2023-09-10T23:59:59.999999+23:59", datetime(2023, 9, 10, 0, 0, 59, 999999, tzinfo=UTC)),
    ],
)
def test_rfc3339_spellings_read_as_one_instant(text: str, instant: datetime) -> None:
    assert read_time(text) == instant


@pytest.mark.parametrize(
    "text",
    [
        "2023-09-10T20:15:00",  # no offset
        "2023-09-10T24:00:00Z",
        "2023-02-29T12:00:00Z",
        "2023-09-10T12:15:00+24:00",
        "2023-09-10T12:15:00+08:60",
        "2023-09-10T12:15:00.Z",
        "2023-09-10T12:15:00.1234567890Z",
        "2023-09-10T12:15+08:00",
        "2023-09-10T12:15:00+0800",
        "2023/09/10 12:15:00Z",
        "1694348100",
    ],
)
def test_other_times_are_invalid(text: str) -> None:
    assert read_time(text) == "occurred_at"
