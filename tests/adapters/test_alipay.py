import gzip
import io
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from ingest.adapters import alipay
from ingest.adapters.base import RAW_SCHEMA, ReadOptions, RowError
from ingest.normalise import PayerHashes, Window, normalise
from store.errors import BadRequest

DETAIL = (Path(__file__).parent / "golden" / "alipay_detail.csv").read_bytes()
TEXT = DETAIL.decode("gbk")
REPAIRED = TEXT.replace("套餐A,加饮料", "套餐A加饮料")
"""The golden file with its malformed row (a comma inside 商品名称) mended."""
DETAIL_NAME = "20881234567890120156_20230910_业务明细.csv"
SUMMARY_NAME = "20881234567890120156_20230910_业务明细(汇总).csv"
SUMMARY = "#支付宝业务汇总查询\r\n门店编号,门店名称,交易订单总笔数,退款订单总笔数\r\n".encode("gbk")

FIELDS = ("index", "txn_id", "kind", "amount_fen", "occurred_at", "channel", "original_txn_id")
FIELDS += ("payer_ref",)


def records(*rows: tuple[Any, ...]) -> list[dict[str, Any]]:
    fixed = {"currency": "CNY", "merchant_id": "2088123456789012", "mcc": None}
    return [{**dict(zip(FIELDS, row, strict=True)), **fixed} for row in rows]


T1, T2, T3 = "2023090922001412340001", "2023090922001412340002", "2023091022001412340003"
T4, T5, T6 = "2023091022001412340004", "2023091022001412340005", "2023091022001412340006"
P1, P2, P3 = "138****1234", "zha***@163.com", "139****0000"

# Row 5 (业务类型 冻结) is an invalid_field error, row 6 is malformed.
RECORDS = records(
    (0, T1, "payment", "3500", "2023-09-09T11:58:03+08:00", "offline", None, P1),
    (1, f"{T1}/RF0001", "refund", "1000", "2023-09-09T12:30:02+08:00", "offline", T1, P1),
    (2, T2, "payment", "1", "2023-09-09T23:59:59+08:00", "online", None, P2),
    (3, T3, "payment", "123456", "2023-09-10T00:00:01+08:00", "online", None, None),
    (4, f"{T2}/refund", "refund", "1", "2023-09-10T00:10:00+08:00", "online", T2, P2),
    (7, T6, "payment", "10000", "2023-09-10T18:30:04+08:00", "offline", None, P3),
)
ERRORS = [
    RowError(5, "invalid_field", "unknown 业务类型 '冻结'", field="业务类型", txn_id=T4),
    RowError(6, "malformed", "row has 26 columns; the header has 25"),
]
DECLARED = {"payment_count": 5, "payment_fen": 144757, "refund_count": 2, "refund_fen": 1001}
REPAIRED_RECORDS = sorted(
    RECORDS
    + records(
        (6, T5, "payment", "8800", "2023-09-10T12:00:05+08:00", "offline", None, "186****5678")
    ),
    key=lambda r: r["index"],
)


def read(body: bytes, **options: Any) -> Any:
    return alipay.read(body, ReadOptions(**options))


def gbk_named_zip(members: dict[str, bytes]) -> bytes:
    """A zip as Chinese tools write it: names in GBK without the UTF-8 flag (zipfile
    itself would flag them UTF-8, so ASCII stand-ins of the same length are swapped
    for the GBK bytes afterwards)."""
    buffer = io.BytesIO()
    stand_ins = {}
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for i, (name, content) in enumerate(members.items()):
            raw = name.encode("gbk")
            stand_in = f"member{i}".ljust(len(raw), "_")
            stand_ins[stand_in.encode()] = raw
            archive.writestr(stand_in, content)
    data = buffer.getvalue()
    for stand_in, raw in stand_ins.items():
        data = data.replace(stand_in, raw)
    return data


def test_golden_file_gives_exact_records_errors_and_totals() -> None:
    batch = read(DETAIL, content_type="text/csv")

    assert batch.frame.schema == RAW_SCHEMA
    assert batch.frame.to_dicts() == RECORDS
    assert batch.malformed == ERRORS
    assert batch.received == 8
    # The malformed row's 88.00 is declared but could not be read.
    assert batch.control_totals == {
        "declared": DECLARED,
        "read": {"payment_count": 4, "payment_fen": 135957, "refund_count": 2, "refund_fen": 1001},
        "match": False,
    }


def test_mended_file_matches_its_control_totals() -> None:
    batch = read(REPAIRED.encode("gbk"))

    assert batch.frame.to_dicts() == REPAIRED_RECORDS
    assert batch.malformed == [ERRORS[0]]
    assert batch.control_totals == {"declared": DECLARED, "read": DECLARED, "match": True}


def test_declared_totals_that_differ_from_the_rows_do_not_match() -> None:
    body = REPAIRED.replace(
        "#交易合计：5笔，商家实收共1447.57元", "#交易合计：5笔，商家实收共1447.75元"
    )

    totals = read(body.encode("gbk")).control_totals

    assert totals["declared"] == {**DECLARED, "payment_fen": 144775}
    assert totals["read"] == DECLARED
    assert totals["match"] is False


def test_truncated_file_declares_no_totals() -> None:
    body = TEXT[: TEXT.index("#交易合计")]

    batch = read(body.encode("gbk"))

    assert batch.frame.to_dicts() == RECORDS
    assert batch.control_totals is None


def test_zip_with_gbk_names_reads_the_detail_file_not_the_summary() -> None:
    body = gbk_named_zip({SUMMARY_NAME: SUMMARY, DETAIL_NAME: DETAIL})

    batch = read(body, content_type="application/zip")

    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert [info.flag_bits & 0x800 for info in archive.infolist()] == [0, 0]
    assert batch.frame.to_dicts() == RECORDS
    assert batch.malformed == ERRORS


def test_zip_with_utf8_names_reads_the_detail_file() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(DETAIL_NAME, DETAIL)
        archive.writestr(SUMMARY_NAME, SUMMARY)

    assert read(buffer.getvalue()).frame.to_dicts() == RECORDS


def test_gzip_body_reads_as_the_plain_file() -> None:
    batch = read(gzip.compress(DETAIL), content_type="application/gzip")

    assert batch.frame.to_dicts() == RECORDS
    assert batch.control_totals is not None


def test_charset_parameter_overrides_gbk() -> None:
    batch = read(("\ufeff" + TEXT).encode("utf-8"), charset="utf-8")

    assert batch.frame.to_dicts() == RECORDS
    assert batch.malformed == ERRORS


@pytest.mark.parametrize(
    ("account", "merchant_id"),
    [("2088123456789012", "2088123456789012"), ("shop@example.com", "shop@example.com")],
)
def test_account_of_another_length_is_taken_whole(account: str, merchant_id: str) -> None:
    body = TEXT.replace("[20881234567890120156]", f"[{account}]")

    frame = read(body.encode("gbk")).frame

    assert set(frame["merchant_id"]) == {merchant_id}


def test_records_pass_the_normaliser() -> None:
    batch = read(DETAIL)
    window = Window(date(2023, 8, 1), date(2023, 11, 7))

    result = normalise(
        batch.frame, now=datetime(2023, 10, 1, tzinfo=UTC), window=window, payers=PayerHashes(b"k")
    )

    assert result.rejected.height == 0
    assert result.records["index"].to_list() == [0, 1, 2, 3, 4, 7]
    assert result.records["day"].to_list()[2:4] == [date(2023, 9, 9), date(2023, 9, 10)]


def test_bad_amount_and_time_are_left_for_the_normaliser() -> None:
    body = REPAIRED.replace(",35.00,35.00,", ",35.001,35.00,").replace(
        "2023-09-09 11:58:03", "2023/09/09 11:58:03"
    )

    row = read(body.encode("gbk")).frame.row(0, named=True)

    assert (row["amount_fen"], row["occurred_at"]) == ("35.001", "2023/09/09 11:58:03")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (TEXT.replace("#账号：[20881234567890120156]\r\n", "").encode("gbk"), "missing_account"),
        (TEXT.replace(",完成时间,", ",结束时间,").encode("gbk"), "missing_columns"),
        (
            "#支付宝业务明细查询\r\n#账号：[20881234567890120156]\r\n".encode("gbk"),
            "missing_columns",
        ),
        (DETAIL + b"\xff\xff\r\n", "undecodable_body"),
        (b"PK\x03\x04 not really a zip", "undecodable_body"),
        (gzip.compress(DETAIL)[:100], "undecodable_body"),
        (gbk_named_zip({SUMMARY_NAME: SUMMARY}), "missing_detail_file"),
    ],
    ids=[
        "no account",
        "no 完成时间",
        "no header",
        "not gbk",
        "bad zip",
        "cut gzip",
        "summary only",
    ],
)
def test_unreadable_body_is_a_bad_request(body: bytes, code: str) -> None:
    with pytest.raises(BadRequest) as raised:
        read(body)
    assert raised.value.code == code
