import gzip
import io
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from ingest.adapters import unionpay
from ingest.adapters.base import RAW_SCHEMA, ReadOptions, RowError
from ingest.normalise import PayerHashes, Window, normalise
from store.errors import BadRequest

GOLDEN = Path(__file__).parent / "golden"
SEPTEMBER = (GOLDEN / "INN23091088ZM_777290058110048").read_bytes()
JANUARY = (GOLDEN / "INN24010288ZM_777290058110048").read_bytes()
SETTLED_SEP_10 = ReadOptions(content_type="text/plain", params={"settle_date": "2023-09-10"})


FIELDS = ("index", "txn_id", "kind", "amount_fen", "occurred_at", "merchant_id", "channel")
FIELDS += ("mcc", "original_txn_id", "payer_ref")


def records(*rows: tuple[Any, ...]) -> list[dict[str, Any]]:
    return [{**dict(zip(FIELDS, row, strict=True)), "currency": "CNY"} for row in rows]


Q = "1023090911580300000{:02d}".format
MER, SUB = "777290058110048", "777290058110099"
C1, C2, C3 = "622588******1234", "622848******5678", "621700******0001"

# Lines 2 (02 pre-authorisation), 7 (32 its cancellation) and 8 (71 balance enquiry)
# are not records; line 9 is malformed, line 10 has an unknown 交易类型.
SEPTEMBER_RECORDS = records(
    (0, Q(1), "payment", "3500", "2023-09-09T11:58:03+08:00", MER, "offline", "5812", None, C1),
    (1, Q(2), "refund", "1000", "2023-09-09T12:30:02+08:00", MER, "offline", "5812", Q(1), C1),
    (3, Q(4), "payment", "48800", "2023-09-09T14:00:00+08:00", MER, "offline", "7011", None, C2),
    (4, Q(5), "refund", "48800", "2023-09-09T14:10:00+08:00", MER, "offline", "7011", Q(4), C2),
    (5, Q(6), "payment", "12345", "2023-09-09T23:59:59+08:00", SUB, "online", "5411", None, C3),
    (6, Q(7), "refund", "12345", "2023-09-10T00:00:01+08:00", SUB, "online", "5411", Q(6), C3),
    (11, Q(12), "payment", "1", "2023-09-10T09:30:00+08:00", MER, "online", None, None, None),
)
SEPTEMBER_ERRORS = [
    RowError(9, "malformed", "line is 611 bytes; a ZM line is 396 to 608"),
    RowError(10, "invalid_field", "unknown 交易类型 '99'", field="交易类型", txn_id=Q(11)),
]
DEC, JAN1, JAN2 = "102312312359590000001", "102401010000100000002", "102401020930000000003"
JANUARY_RECORDS = records(
    (0, DEC, "payment", "19900", "2023-12-31T23:59:59+08:00", MER, "offline", "5311", None, C1),
    (1, JAN1, "payment", "50", "2024-01-01T00:00:10+08:00", MER, "offline", "5311", None, C1),
    (2, JAN2, "refund", "19900", "2024-01-02T09:30:00+08:00", MER, "offline", "5311", DEC, C1),
)


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_layout_places_the_read_fields_where_formats_md_says() -> None:
    table = {5: (35, 10), 6: (46, 19), 7: (66, 12), 8: (79, 4), 10: (87, 21), 20: (215, 2)}
    table |= {27: (271, 21), 28: (293, 15), 30: (311, 15), 31: (327, 32), 34: (388, 8)}
    assert {n: (unionpay.OFFSETS[n - 1], unionpay.WIDTHS[n - 1]) for n in table} == table
    assert unionpay.LINE_BYTES == 608


def test_golden_file_gives_exact_records_and_errors() -> None:
    batch = unionpay.read(SEPTEMBER, SETTLED_SEP_10)

    assert batch.frame.schema == RAW_SCHEMA
    assert batch.frame.to_dicts() == SEPTEMBER_RECORDS
    assert batch.malformed == SEPTEMBER_ERRORS
    assert batch.control_totals is None
    assert batch.received == 9


def test_golden_sub_merchant_name_is_gbk_and_shifts_nothing() -> None:
    line = SEPTEMBER.split(b"\r\n")[5]

    assert len(line) == 608
    assert line[327:359].decode("gbk").rstrip() == "一号店餐饮"
    assert line[388:396] == b" " * 8  # 终端号 right after it: blank, so online


def test_december_purchase_settled_in_january_is_of_the_year_before() -> None:
    batch = unionpay.read(
        JANUARY, ReadOptions(params={"filename": "INN24010288ZM_777290058110048"})
    )

    assert batch.frame.to_dicts() == JANUARY_RECORDS
    assert batch.malformed == []


def test_settle_date_parameter_wins_over_the_file_name() -> None:
    options = ReadOptions(params={"settle_date": "2024-01-02", "filename": "INN23091088ZM_1"})

    assert unionpay.read(JANUARY, options).frame.to_dicts() == JANUARY_RECORDS


def test_file_name_may_be_a_path() -> None:
    options = ReadOptions(params={"filename": "/data/unionpay/INN24010288ZM_777290058110048"})

    assert unionpay.read(JANUARY, options).frame.to_dicts() == JANUARY_RECORDS


def test_zip_download_reads_its_zm_member_not_zme() -> None:
    body = zip_of(
        {
            "INN24010288ZME_777290058110048": b"ZME lines are another layout\r\n",
            "INN24010288ZM_777290058110048": JANUARY,
        }
    )
    batch = unionpay.read(body, ReadOptions(params={"settle_date": "2024-01-02"}))

    assert batch.frame.to_dicts() == JANUARY_RECORDS
    assert batch.malformed == []


def test_zip_member_name_gives_the_settle_date_when_a_file_name_is_given() -> None:
    body = zip_of({"INN24010288ZM_777290058110048": JANUARY})
    options = ReadOptions(params={"filename": "777290058110048_20240102.zip"})

    assert unionpay.read(body, options).frame.to_dicts() == JANUARY_RECORDS


def test_zip_over_http_still_needs_settle_date() -> None:
    body = zip_of({"INN24010288ZM_777290058110048": JANUARY})

    with pytest.raises(BadRequest) as raised:
        unionpay.read(body, ReadOptions(content_type="application/zip"))
    assert raised.value.code == "missing_settle_date"


def test_gzip_body_reads_as_the_plain_file() -> None:
    batch = unionpay.read(gzip.compress(SEPTEMBER), SETTLED_SEP_10)

    assert batch.frame.to_dicts() == SEPTEMBER_RECORDS
    assert batch.malformed == SEPTEMBER_ERRORS


def test_lf_lines_read_as_crlf_lines() -> None:
    batch = unionpay.read(SEPTEMBER.replace(b"\r\n", b"\n"), SETTLED_SEP_10)

    assert batch.frame.to_dicts() == SEPTEMBER_RECORDS
    assert batch.malformed == SEPTEMBER_ERRORS


@pytest.mark.parametrize("params", [{}, {"filename": "reconciliation.txt"}])
def test_no_settle_date_is_a_bad_request(params: dict[str, str]) -> None:
    with pytest.raises(BadRequest) as raised:
        unionpay.read(SEPTEMBER, ReadOptions(params=params))
    assert raised.value.code == "missing_settle_date"


@pytest.mark.parametrize("given", ["2023-13-01", "20230910", "2023-9-10", "yesterday"])
def test_bad_settle_date_is_a_bad_request(given: str) -> None:
    with pytest.raises(BadRequest) as raised:
        unionpay.read(SEPTEMBER, ReadOptions(params={"settle_date": given}))
    assert raised.value.code == "invalid_settle_date"


def test_line_of_right_length_with_text_in_a_read_field_is_malformed() -> None:
    line = SEPTEMBER.split(b"\r\n")[0]
    shifted = line[:87] + "流水".encode("gbk") + line[91:]
    body = b"\r\n".join([shifted, line])

    batch = unionpay.read(body, SETTLED_SEP_10)

    assert len(shifted) == 608
    assert batch.frame["index"].to_list() == [1]
    assert batch.malformed == [
        RowError(0, "malformed", "a field read as digits or codes holds other text: line shifted")
    ]


def test_bad_values_are_left_for_the_normaliser() -> None:
    line = SEPTEMBER.split(b"\r\n")[0]
    bad = line[:35] + b"1345999999" + line[45:66] + b"00000000012A" + line[78:]

    row = unionpay.read(bad, SETTLED_SEP_10).frame.row(0, named=True)

    assert (row["occurred_at"], row["amount_fen"]) == ("2022-13-45T99:99:99+08:00", "12A")


def test_body_not_in_gbk_is_a_bad_request() -> None:
    with pytest.raises(BadRequest) as raised:
        unionpay.read(SEPTEMBER + b"\xff\xff\r\n", SETTLED_SEP_10)
    assert raised.value.code == "undecodable_body"


def test_corrupt_gzip_is_a_bad_request() -> None:
    with pytest.raises(BadRequest) as raised:
        unionpay.read(gzip.compress(SEPTEMBER)[:200], SETTLED_SEP_10)
    assert raised.value.code == "undecodable_body"


def test_empty_file_is_an_empty_batch() -> None:
    batch = unionpay.read(b"\r\n", SETTLED_SEP_10)

    assert batch.frame.schema == RAW_SCHEMA
    assert batch.frame.height == 0
    assert batch.malformed == []


def test_records_pass_the_normaliser() -> None:
    batch = unionpay.read(SEPTEMBER, SETTLED_SEP_10)
    window = Window(date(2023, 8, 1), date(2023, 11, 7))

    result = normalise(
        batch.frame, now=datetime(2023, 10, 1, tzinfo=UTC), window=window, payers=PayerHashes(b"k")
    )

    assert result.rejected.height == 0
    assert result.records["index"].to_list() == [0, 1, 3, 4, 5, 6, 11]
    assert result.records["day"].to_list()[4:6] == [date(2023, 9, 9), date(2023, 9, 10)]
