import gzip
import io
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from ingest.adapters import wechatpay
from ingest.adapters.base import RAW_SCHEMA, ReadOptions, RowError
from ingest.normalise import PayerHashes, Window, normalise
from store.errors import BadRequest

BILL = (Path(__file__).parent / "golden" / "wechatpay_bill.csv").read_bytes()
TEXT = BILL.decode("utf-8-sig")
REPAIRED = TEXT.replace("`晚餐,加饭,", "`晚餐加饭,")
"""The golden bill with its malformed row (a comma inside 商品名称) mended."""

FIELDS = ("index", "txn_id", "kind", "amount_fen", "currency", "occurred_at", "merchant_id")
FIELDS += ("channel", "original_txn_id", "payer_ref")


def records(*rows: tuple[Any, ...]) -> list[dict[str, Any]]:
    return [{**dict(zip(FIELDS, row, strict=True)), "mcc": None} for row in rows]


O1, O2 = "4200001922202309091234567890", "4200001923202309092345678901"
O5, O6, O7 = (
    "4200001925202309100000000002",
    "4200001926202309100000000003",
    "4200001927202309100000000004",
)
R1, R2 = "50300001922202309091234567890", "50300001923202309100900000001"
U1, U2, U3 = (
    "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
    "oUpF8uGhIJK_Lm3nb2Q8zNjWeS7p",
    "oUpF8uQrSTU_Vw4xc3R7zNjWeS8q",
)
SP, SUB = "1900000109", "1900000321"

# Row 3 is REVOKED (not a record), row 6 malformed, row 7 has an unknown 交易状态.
RECORDS = records(
    (0, O1, "payment", "8800", "CNY", "2023-09-09T20:15:00+08:00", SUB, "offline", None, U1),
    (1, R1, "refund", "2000", "CNY", "2023-09-09T21:00:00+08:00", SUB, "offline", O1, U1),
    (2, O2, "payment", "5000", "CNY", "2023-09-09T23:59:59+08:00", SP, "online", None, U2),
    (4, O5, "payment", "6660", "CNY", "2023-09-10T00:00:01+08:00", SP, "offline", None, U3),
    (5, O6, "payment", "1000", "USD", "2023-09-10T08:00:00+08:00", SUB, "online", None, None),
    (8, R2, "refund", "5000", "CNY", "2023-09-10T09:00:00+08:00", SP, "online", O2, U2),
)
ERRORS = [
    RowError(6, "malformed", "row has 28 columns; the header has 27"),
    RowError(
        7,
        "invalid_field",
        "unknown 交易状态 'CLOSED'",
        field="交易状态",
        txn_id="4200001928202309100000000005",
    ),
]
DECLARED = {"row_count": 9, "order_fen": 26160, "refund_fen": 7000}
REPAIRED_RECORDS = sorted(
    RECORDS
    + records(
        (6, O7, "payment", "3000", "CNY", "2023-09-10T12:00:00+08:00", SUB, "offline", None, U1)
    ),
    key=lambda r: r["index"],
)


def read(body: bytes, **options: Any) -> Any:
    return wechatpay.read(body, ReadOptions(**options))


def test_golden_bill_gives_exact_records_errors_and_totals() -> None:
    batch = read(BILL, content_type="text/csv")

    assert batch.frame.schema == RAW_SCHEMA
    assert batch.frame.to_dicts() == RECORDS
    assert batch.malformed == ERRORS
    assert batch.received == 8
    # Every data row is counted, REVOKED and malformed included; the malformed
    # row's 30.00 is declared but could not be read.
    assert batch.control_totals == {
        "declared": DECLARED,
        "read": {"row_count": 9, "order_fen": 23160, "refund_fen": 7000},
        "match": False,
    }


def test_mended_bill_matches_its_control_totals() -> None:
    batch = read(REPAIRED.encode())

    assert batch.frame.to_dicts() == REPAIRED_RECORDS
    assert batch.malformed == [ERRORS[1]]
    assert batch.control_totals == {"declared": DECLARED, "read": DECLARED, "match": True}


def test_summary_that_differs_from_the_rows_does_not_match() -> None:
    body = REPAIRED.replace("`9,`244.60", "`10,`244.60")

    totals = read(body.encode()).control_totals

    assert totals == {
        "declared": {**DECLARED, "row_count": 10},
        "read": DECLARED,
        "match": False,
    }


@pytest.mark.parametrize("cut_at", ["总交易单数", "`9,`244.60"])
def test_truncated_bill_declares_no_totals(cut_at: str) -> None:
    batch = read(TEXT[: TEXT.index(cut_at)].encode())

    assert batch.frame.to_dicts() == RECORDS
    assert batch.control_totals is None


def test_gzip_body_reads_as_the_plain_bill() -> None:
    batch = read(gzip.compress(BILL), content_type="application/gzip")

    assert batch.frame.to_dicts() == RECORDS
    assert batch.control_totals is not None


def test_zip_body_reads_its_bill() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("1900000109All2023-09-10.csv", BILL)

    assert read(buffer.getvalue()).frame.to_dicts() == RECORDS


def test_bill_without_bom_and_with_crlf_reads_alike() -> None:
    batch = read(TEXT.replace("\n", "\r\n").encode())

    assert batch.frame.to_dicts() == RECORDS
    assert batch.malformed == ERRORS


def test_merchants_own_bill_names_the_column_sub_merchant() -> None:
    batch = read(TEXT.replace(",特约商户号,", ",子商户号,").encode())

    assert batch.frame.to_dicts() == RECORDS


def test_charset_parameter_overrides_utf8() -> None:
    batch = read(TEXT.encode("gb18030"), charset="gb18030")

    assert batch.frame.to_dicts() == RECORDS


def test_records_pass_the_normaliser_but_the_foreign_currency() -> None:
    batch = read(BILL)
    window = Window(date(2023, 8, 1), date(2023, 11, 7))

    result = normalise(
        batch.frame, now=datetime(2023, 10, 1, tzinfo=UTC), window=window, payers=PayerHashes(b"k")
    )

    assert result.records["index"].to_list() == [0, 1, 2, 4, 8]
    assert result.rejected.select("index", "code").to_dicts() == [
        {"index": 5, "code": "unsupported_currency"}
    ]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (TEXT.replace(",申请退款金额,", ",退款申请金额,").encode(), "missing_columns"),
        (b"\xef\xbb\xbf\r\n", "missing_columns"),
        (BILL + b"\xff\n", "undecodable_body"),
        (gzip.compress(BILL)[:-20], "undecodable_body"),
    ],
    ids=["no 申请退款金额", "empty", "not utf-8", "cut gzip"],
)
def test_unreadable_body_is_a_bad_request(body: bytes, code: str) -> None:
    with pytest.raises(BadRequest) as raised:
        read(body)
    assert raised.value.code == code
