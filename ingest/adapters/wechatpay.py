"""WeChat Pay trade bill (交易账单, all transactions, UTF-8 CSV) (FORMATS.md `wechatpay`).

Values lead with a backtick (not part of the value, sometimes missing); columns
are found by header name; the data rows end at the summary header (`总交易单数,…`),
whose next row declares the control totals. A refund is its own row repeating
the order's numbers.
"""

from typing import Any

import polars as pl

from ingest.adapters.base import (
    MAX_BILL_LINE_BYTES,
    Layout,
    RawBatch,
    ReadOptions,
    RowError,
    amount_text,
    bounded_lines,
    csv_rows,
    fen_from_yuan,
    local_time,
    misaligned_rows,
    standard_columns,
    unpack,
    utf8,
)
from store.errors import BadRequest

COLUMNS = {
    "traded_at": "交易时间",
    "merchant": "商户号",
    "order_no": "微信订单号",
    "payer": "用户标识",
    "trade_type": "交易类型",
    "status": "交易状态",
    "currency": "货币种类",
    "refund_no": "微信退款单号",
    "order_yuan": "订单金额",
    "refund_yuan": "申请退款金额",
}
SUB_MERCHANT = ("特约商户号", "子商户号")
"""Service providers' bills name the sub-merchant column 特约商户号, merchants' own 子商户号."""

KINDS = {"SUCCESS": "payment", "REFUND": "refund"}
NOT_RECORDS = ("REVOKED",)
"""A cancelled order: no money moved."""
OFFLINE_TYPES = ("MICROPAY", "FACE")
"""A payment code scanned, or a face recognised, at the counter."""

SUMMARY = "总交易单数"
DECLARED = {"row_count": SUMMARY, "order_fen": "订单总金额", "refund_fen": "申请退款总金额"}


def read(data: bytes, options: ReadOptions) -> RawBatch:
    body, _ = unpack(data, lambda name: name.lower().endswith(".csv"), options.max_unpacked)
    bounded_lines(body, options, MAX_BILL_LINE_BYTES)
    text = utf8(body, options, "utf-8")
    lines = pl.read_lines(text)["line"].str.strip_chars()
    filled = (lines != "").arg_true()
    if filled.is_empty():
        raise BadRequest("missing_columns", "no header row: this is not a WeChat Pay trade bill")
    header_at = int(filled[0])
    header = _cells(lines[header_at].split(","))
    sub_merchant = next((name for name in SUB_MERCHANT if name in header), None)
    missing = [name for name in COLUMNS.values() if name not in header]
    if missing:
        raise BadRequest("missing_columns", f"the header lacks {', '.join(missing)}")

    columns = {**COLUMNS, "sub_merchant": sub_merchant}
    picks = {key: header.index(name) for key, name in columns.items() if name}
    table = (
        csv_rows(text, lines, header_at, {"first": 0, **picks})
        .filter(pl.col("line") != "")
        .with_columns((_value(pl.col("first")) == SUMMARY).cum_sum().alias("part"))
    )
    rows = table.filter(pl.col("part") == 0).with_row_index("index")
    fits = pl.col("fields") == len(header)
    status = pl.col("status").str.to_uppercase()
    cells = (
        rows.filter(fits)
        .select(
            pl.col("index").cast(pl.Int64),
            *(_value(pl.col(key)).alias(key) for key in picks),
            *([] if sub_merchant else [pl.lit("", dtype=pl.String).alias("sub_merchant")]),
        )
        .with_columns(
            status.replace_strict(KINDS, default=None).alias("kind"),
            status.is_in(NOT_RECORDS).alias("not_record"),
            fen_from_yuan(pl.col("order_yuan")).alias("order_fen"),
            fen_from_yuan(pl.col("refund_yuan")).alias("refund_fen"),
        )
    )
    refund = pl.col("kind") == "refund"
    records = cells.filter(~pl.col("not_record"))
    frame = (
        records.filter(pl.col("kind").is_not_null())
        .select(
            "index",
            pl.when(refund).then("refund_no").otherwise("order_no").alias("txn_id"),
            "kind",
            pl.when(refund)
            .then(amount_text(pl.col("refund_yuan"), pl.col("refund_fen")))
            .otherwise(amount_text(pl.col("order_yuan"), pl.col("order_fen")))
            .alias("amount_fen"),
            pl.when(pl.col("currency") != "").then("currency").alias("currency"),
            local_time(pl.col("traded_at")).alias("occurred_at"),
            pl.when(~pl.col("sub_merchant").is_in(["", "0"]))
            .then("sub_merchant")
            .otherwise("merchant")
            .alias("merchant_id"),
            pl.when(pl.col("trade_type").str.to_uppercase().is_in(OFFLINE_TYPES))
            .then(pl.lit("offline"))
            .otherwise(pl.lit("online"))
            .alias("channel"),
            pl.lit(None).alias("mcc"),
            pl.when(refund).then("order_no").alias("original_txn_id"),
            pl.when(pl.col("payer") != "").then("payer").alias("payer_ref"),
        )
        .pipe(standard_columns)
    )
    malformed = misaligned_rows(rows.filter(~fits), len(header))
    malformed += [
        RowError(i, "invalid_field", f"unknown 交易状态 {s!r}", field="交易状态", txn_id=no or None)
        for i, s, no in records.filter(pl.col("kind").is_null())
        .select("index", "status", "order_no")
        .iter_rows()
    ]
    summary = [_cells(line.split(",")) for line in table.filter(pl.col("part") > 0)["line"]]
    return RawBatch(
        frame,
        sorted(malformed, key=lambda e: e.index),
        declared_totals=_declared_totals(summary),
        read_totals=_read_totals(rows.height, cells),
    )


def _value(cell: pl.Expr) -> pl.Expr:
    return cell.str.strip_chars().str.strip_prefix("`").str.strip_chars()


def _cells(values: list[str]) -> list[str]:
    return [value.strip().removeprefix("`").strip() for value in values]


def _declared_totals(summary: list[list[str]]) -> dict[str, Any] | None:
    """总交易单数 (every data row, REVOKED included), 订单总金额 and 申请退款总金额 as
    the summary row declares them; None when the summary header or its row is
    missing or unreadable (a truncated file)."""
    if len(summary) < 2 or len(summary[0]) != len(summary[1]):
        return None
    named = dict(zip(summary[0], summary[1], strict=True))
    if any(name not in named for name in DECLARED.values()):
        return None
    count = named[SUMMARY]
    amounts = pl.select(
        fen_from_yuan(pl.lit(named[DECLARED["order_fen"]])).alias("order_fen"),
        fen_from_yuan(pl.lit(named[DECLARED["refund_fen"]])).alias("refund_fen"),
    ).row(0, named=True)
    if not (count.isascii() and count.isdigit()) or None in amounts.values():
        return None
    return {"row_count": int(count), **amounts}


def _read_totals(row_count: int, cells: pl.DataFrame) -> dict[str, Any]:
    """The declared figures, counted from the rows."""
    sums = cells.select(pl.col("order_fen").sum(), pl.col("refund_fen").sum())
    return {
        "row_count": row_count,
        **{key: int(value) for key, value in sums.row(0, named=True).items()},
    }


LAYOUT = Layout(
    header_lines=lambda first_lines: 1,
    trailer_prefixes=(SUMMARY.encode(), b"`" + SUMMARY.encode()),
    is_member=lambda name: name.lower().endswith(".csv"),
)
"""The header leads; the summary header and its row close the file."""
