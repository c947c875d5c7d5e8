"""Alipay merchant business detail bill (业务明细, GBK CSV) (FORMATS.md `alipay`).

`#` lines are comments: the account (whose partner id is every row's merchant)
before the table, the declared totals after it. Values may carry a tab before
their comma, so every value is stripped.
"""

import re
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
    "trade_no": "支付宝交易号",
    "biz_type": "业务类型",
    "finished_at": "完成时间",
    "store": "门店编号",
    "terminal": "终端号",
    "counterparty": "对方账户",
    "order_yuan": "订单金额（元）",
    "received_yuan": "商家实收（元）",
    "refund_no": "退款批次号/请求号",
}
KINDS = {"交易": "payment", "退款": "refund"}

ACCOUNT = re.compile(r"#\s*账号[：:]\s*\[?\s*([^\]\s]+)")
AMOUNT = r"\s*([+-]?[0-9]+(?:\.[0-9]+)?)\s*元"
PAYMENTS = re.compile(r"#\s*交易合计[：:]\s*([0-9]+)\s*笔\s*[，,]\s*商家实收共" + AMOUNT)
REFUNDS = re.compile(r"#\s*退款合计[：:]\s*([0-9]+)\s*笔\s*[，,]\s*商家实收退款共" + AMOUNT)


def read(data: bytes, options: ReadOptions) -> RawBatch:
    body, _ = unpack(data, _is_detail, options.max_unpacked)
    bounded_lines(body, options, MAX_BILL_LINE_BYTES)
    text = utf8(body, options, "gb18030")
    lines = pl.read_lines(text)["line"].str.strip_chars()
    comment = lines.str.starts_with("#")
    comments: list[str] = lines.filter(comment).to_list()
    filled = ((lines != "") & ~comment).arg_true()
    if filled.is_empty():
        raise BadRequest("missing_columns", "no header row: this is not an Alipay detail bill")
    header_at = int(filled[0])
    header = [_header_name(name) for name in lines[header_at].split(",")]
    missing = [name for name in COLUMNS.values() if name not in header]
    if missing:
        raise BadRequest("missing_columns", f"the header lacks {', '.join(missing)}")
    merchant_id = _merchant_id(comments)

    picks = {key: header.index(name) for key, name in COLUMNS.items()}
    rows = (
        csv_rows(text, lines, header_at, picks)
        .filter((pl.col("line") != "") & ~pl.col("line").str.starts_with("#"))
        .with_row_index("index")
    )
    fits = pl.col("fields") == len(header)
    cells = rows.filter(fits).select(
        pl.col("index").cast(pl.Int64), *(pl.col(key).str.strip_chars() for key in picks)
    )
    kind = pl.col("biz_type").replace_strict(KINDS, default=None)
    refund = kind == "refund"
    refund_no = pl.when(pl.col("refund_no") != "").then("refund_no").otherwise(pl.lit("refund"))
    frame = (
        cells.filter(kind.is_not_null())
        .select(
            "index",
            pl.when(refund)
            .then(pl.col("trade_no") + "/" + refund_no)
            .otherwise("trade_no")
            .alias("txn_id"),
            kind.alias("kind"),
            amount_text(pl.col("order_yuan")).alias("amount_fen"),
            pl.lit("CNY").alias("currency"),
            local_time(pl.col("finished_at")).alias("occurred_at"),
            pl.lit(merchant_id).alias("merchant_id"),
            pl.when((pl.col("store") != "") | (pl.col("terminal") != ""))
            .then(pl.lit("offline"))
            .otherwise(pl.lit("online"))
            .alias("channel"),
            pl.lit(None).alias("mcc"),
            pl.when(refund).then("trade_no").alias("original_txn_id"),
            pl.when(pl.col("counterparty") != "").then("counterparty").alias("payer_ref"),
        )
        .pipe(standard_columns)
    )
    malformed = misaligned_rows(rows.filter(~fits), len(header))
    malformed += [
        RowError(i, "invalid_field", f"unknown 业务类型 {t!r}", field="业务类型", txn_id=no or None)
        for i, t, no in cells.filter(kind.is_null())
        .select("index", "biz_type", "trade_no")
        .iter_rows()
    ]
    return RawBatch(
        frame,
        sorted(malformed, key=lambda e: e.index),
        declared_totals=_declared_totals(comments),
        read_totals=_read_totals(cells.with_columns(kind.alias("kind"))),
    )


def _header_name(name: str) -> str:
    """Header names as the bill spells them, whichever width its brackets are."""
    return name.strip().replace("(", "（").replace(")", "）")


def _merchant_id(comments: list[str]) -> str:
    """The partner id (`2088` + 12 digits) of the 20-character account
    (`<partner id>0156`); an account of another length is taken whole."""
    for line in comments:
        found = ACCOUNT.match(line)
        if found:
            account = found.group(1)
            return account[:16] if len(account) == 20 else account
    raise BadRequest("missing_account", "no #账号 line: the bill does not say whose it is")


def _declared_totals(comments: list[str]) -> dict[str, Any] | None:
    """Payment and refund rows and their 商家实收 as the `#交易合计` and `#退款合计`
    lines declare them; refund sums as positive fen. None unless both lines are
    there (a truncated file declares nothing it can be held to)."""
    payments = next(filter(None, (PAYMENTS.match(line) for line in comments)), None)
    refunds = next(filter(None, (REFUNDS.match(line) for line in comments)), None)
    if payments is None or refunds is None:
        return None
    declared_fen = pl.select(
        fen_from_yuan(pl.lit(payments.group(2))).alias("payment"),
        fen_from_yuan(pl.lit(refunds.group(2))).abs().alias("refund"),
    ).row(0)
    if None in declared_fen:
        return None
    declared = {
        "payment_count": int(payments.group(1)),
        "payment_fen": declared_fen[0],
        "refund_count": int(refunds.group(1)),
        "refund_fen": declared_fen[1],
    }
    return declared


def _read_totals(cells: pl.DataFrame) -> dict[str, Any]:
    """The declared figures, counted from the rows."""
    fen = fen_from_yuan(pl.col("received_yuan"))
    payment, refund = pl.col("kind") == "payment", pl.col("kind") == "refund"
    counted = cells.select(
        payment.sum().alias("payment_count"),
        fen.filter(payment).sum().alias("payment_fen"),
        refund.sum().alias("refund_count"),
        fen.filter(refund).sum().abs().alias("refund_fen"),
    )
    return {key: int(value) for key, value in counted.row(0, named=True).items()}


def _is_detail(name: str) -> bool:
    return name.lower().endswith(".csv") and "汇总" not in name


def _header_lines(first_lines: list[bytes]) -> int:
    """The comment lines and the column header before the first row."""
    for number, line in enumerate(first_lines):
        if line.strip() and not line.startswith(b"#"):
            return number + 1
    return len(first_lines)


LAYOUT = Layout(
    header_lines=_header_lines,
    trailer_prefixes=(b"#",),
    is_member=_is_detail,
)
"""Comments and the header lead; the `#…合计` comments after the rows close the file."""
