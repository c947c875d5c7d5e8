"""UnionPay online platform merchant reconciliation file (ZM): one transaction per
fixed-width GBK line, field widths counted in bytes (FORMATS.md `unionpay`).

The line is cut by byte offsets, never by characters: the body is checked to be
text in its encoding, then read as Latin-1 (one character per byte), so that
whole-file polars string slices are byte slices. Every field payfeed reads is
ASCII; a line whose read fields hold anything else is shifted and `malformed`.
"""

import re
from datetime import date

import polars as pl

from ingest.adapters.base import (
    LOCAL_OFFSET,
    Layout,
    RawBatch,
    ReadOptions,
    RowError,
    decode,
    standard_columns,
    unpack,
)
from store.errors import BadRequest

# fmt: off
WIDTHS = (
    3, 11, 11, 6, 10, 19, 12, 4, 2, 21, 2, 32, 2, 6, 10, 13, 13, 4, 15, 2, 2,
    6, 2, 4, 32, 1, 21, 15, 1, 15, 32, 13, 13, 8, 32, 13, 13, 12, 2, 1, 32, 98,
)
# fmt: on
LINE_BYTES = sum(WIDTHS) + len(WIDTHS)
"""608: every field is followed by one separator byte, the last one included."""

OFFSETS = tuple(sum(width + 1 for width in WIDTHS[:i]) for i in range(len(WIDTHS)))

FIELDS = {
    "sent_at": 5,  # 交易传输时间, MMDDhhmmss
    "account": 6,  # 账号
    "amount": 7,  # 交易金额, zero-padded fen
    "mcc": 8,  # 商户类别
    "query_id": 10,  # 查询流水号
    "txn_type": 20,  # 交易类型
    "original": 27,  # 原交易查询流水号
    "merchant": 28,  # 商户代码
    "sub_merchant": 30,  # 二级商户代码
    "terminal": 34,  # 终端号
}
"""The fields payfeed reads, by their 1-based number in the layout."""

KINDS = {"01": "payment", "03": "payment", "04": "refund", "31": "refund", "33": "refund"}
NOT_RECORDS = ("02", "32", "71")
"""Pre-authorisation, its cancellation and balance enquiry move no money."""

SETTLE_FILE = re.compile(r"INN([0-9]{2})([0-9]{2})([0-9]{2}).*ZM_")


def read(data: bytes, options: ReadOptions) -> RawBatch:
    body, member = unpack(data, _is_zm)
    settled = settle_date(options, member)
    decode(body, options, "gb18030")  # refuses a body that is not text in its encoding
    lines = pl.Series("line", body.decode("latin-1").split("\n")).str.strip_suffix("\r")
    rows = (
        pl.DataFrame([lines])
        .filter(pl.col("line").str.strip_chars(" ") != "")
        .with_row_index("index")
        .with_columns(pl.col("index").cast(pl.Int64))
    )
    sized = rows.filter(pl.col("line").str.len_chars() == LINE_BYTES).select(
        "index",
        *(
            pl.col("line")
            .str.slice(OFFSETS[number - 1], WIDTHS[number - 1])
            .str.strip_chars(" ")  # Latin-1 has other whitespace, which GBK bytes can be
            .alias(name)
            for name, number in FIELDS.items()
        ),
    )
    shifted = pl.concat_str(list(FIELDS)).str.contains(r"[^\x00-\x7F]")
    fields = sized.filter(~shifted & ~pl.col("txn_type").is_in(NOT_RECORDS))
    kind = pl.col("txn_type").replace_strict(KINDS, default=None)
    known = fields.filter(kind.is_not_null())
    frame = known.select(
        "index",
        pl.col("query_id").alias("txn_id"),
        kind.alias("kind"),
        pl.col("amount").str.replace(r"^0+([0-9])", "${1}").alias("amount_fen"),
        pl.lit("CNY").alias("currency"),
        _occurred_at(settled).alias("occurred_at"),
        pl.when(pl.col("sub_merchant") != "")
        .then(pl.col("sub_merchant"))
        .otherwise(pl.col("merchant"))
        .alias("merchant_id"),
        pl.when(pl.col("terminal") != "")
        .then(pl.lit("offline"))
        .otherwise(pl.lit("online"))
        .alias("channel"),
        _present("mcc").alias("mcc"),
        pl.when(kind == "refund").then(_present("original")).alias("original_txn_id"),
        _present("account").alias("payer_ref"),
    ).pipe(standard_columns)
    malformed = [
        RowError(i, "malformed", f"line is {n} bytes; a ZM line is {LINE_BYTES}")
        for i, n in rows.filter(pl.col("line").str.len_chars() != LINE_BYTES)
        .select("index", pl.col("line").str.len_chars())
        .iter_rows()
    ]
    malformed += [
        RowError(i, "malformed", "a field read as digits or codes holds other text: line shifted")
        for (i,) in sized.filter(shifted).select("index").iter_rows()
    ]
    malformed += [
        RowError(i, "invalid_field", f"unknown 交易类型 {t!r}", field="交易类型", txn_id=q or None)
        for i, t, q in fields.filter(kind.is_null())
        .select("index", "txn_type", "query_id")
        .iter_rows()
    ]
    return RawBatch(frame, sorted(malformed, key=lambda e: e.index))


def settle_date(options: ReadOptions, member: str | None) -> date:
    """The settlement date that gives 交易传输时间 its year: the `settle_date` parameter,
    else the name of the file (`INN<yymmdd>…ZM_…`) given as `filename` (backfill) or,
    with a file name given, of the ZM member of its zip. Over HTTP no file name is
    given, so `settle_date` is required there."""
    given = options.params.get("settle_date")
    if given is not None:
        if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", given):
            try:
                return date.fromisoformat(given)
            except ValueError:
                pass
        raise BadRequest("invalid_settle_date", f"settle_date must be YYYY-MM-DD, got {given!r}")
    filename = options.params.get("filename")
    names = [filename, member] if filename else []
    for name in names:
        found = SETTLE_FILE.match(re.split(r"[\\/]", name)[-1]) if name else None
        if found:
            yy, mm, dd = (int(part) for part in found.groups())
            try:
                return date(2000 + yy, mm, dd)
            except ValueError:
                continue
    raise BadRequest(
        "missing_settle_date",
        "the unionpay format needs settle_date=YYYY-MM-DD (or a file named INN<yymmdd>…ZM_…)",
    )


def _occurred_at(settled: date) -> pl.Expr:
    """MMDDhhmmss in the settlement year, or the year before when its month is later
    than the settlement month (a December purchase settled in January)."""
    month = pl.col("sent_at").str.slice(0, 2).cast(pl.Int32, strict=False)
    year = (
        pl.when(month > settled.month)
        .then(pl.lit(str(settled.year - 1)))
        .otherwise(pl.lit(str(settled.year)))
    )
    rest = pl.col("sent_at").str.replace(
        r"^([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})$",
        "-${1}-${2}T${3}:${4}:${5}" + LOCAL_OFFSET,
    )
    return year + rest


def _present(name: str) -> pl.Expr:
    return pl.when(pl.col(name) != "").then(pl.col(name))


def _is_zm(name: str) -> bool:
    return "ZM_" in name.upper()


LAYOUT = Layout(is_member=_is_zm)
"""One record per line, no header, no trailer."""
