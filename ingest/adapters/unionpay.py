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
    bounded_lines,
    check_decodes,
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
MIN_LINE_BYTES = 396
"""The end of 终端号, the last field read: a line that lost its trailing spaces
(or its last separator, as the UnionPay SDK writes them) is read with the bytes
it lacks taken as spaces (FORMATS.md)."""

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
    body, member = unpack(data, _is_zm, options.max_unpacked)
    settled = settle_date(options, member)
    bounded_lines(body, options)
    check_decodes(body, options, "gb18030")  # refuses a body that is not text in its encoding
    kept, indexes, malformed = _sized_lines(body)
    lines = kept.decode("latin-1").split("\n") if indexes else []
    sized = pl.DataFrame(
        {"index": pl.Series(indexes, dtype=pl.Int64), "line": pl.Series(lines, dtype=pl.String)}
    ).select(
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


def _sized_lines(body: bytes) -> tuple[bytes, list[int], list[RowError]]:
    """The lines that are not blank, numbered: those of `MIN_LINE_BYTES` to
    `LINE_BYTES` bytes padded with spaces to `LINE_BYTES` and joined by newlines
    (with their numbers), the others as `malformed` errors. A line of the wrong
    length is never copied, so a body of one enormous line costs nothing more.

    A loop over lines: `bounded_lines` has capped their number to what a batch
    may hold, and it copies only lines that become records."""
    kept: list[bytes] = []
    indexes: list[int] = []
    malformed: list[RowError] = []
    index, start, size = 0, 0, len(body)
    while start < size:
        end = body.find(b"\n", start)
        end = size if end < 0 else end
        stop = end - 1 if end > start and body[end - 1] == 0x0D else end  # CRLF
        length = stop - start
        if length > LINE_BYTES:
            malformed.append(RowError(index, "malformed", _wrong_length(length)))
            index += 1
        elif body[start:stop].strip(b" "):
            if length < MIN_LINE_BYTES:
                malformed.append(RowError(index, "malformed", _wrong_length(length)))
            else:
                kept.append(body[start:stop].ljust(LINE_BYTES, b" "))
                indexes.append(index)
            index += 1
        start = end + 1
    return b"\n".join(kept), indexes, malformed


def _wrong_length(length: int) -> str:
    return f"line is {length} bytes; a ZM line is {MIN_LINE_BYTES} to {LINE_BYTES}"


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
