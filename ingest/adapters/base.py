"""The one interface every provider format implements.

One interface for every format (`Adapter.read`): bytes in, a `RawBatch` out —
string columns named as in `schemas.records.STANDARD_FIELDS` plus `index` (the
0-based data row), the rows that could not even be read as a record
(`malformed`), and the control totals the file declares. Nothing outside an
adapter knows a format's quirks.
"""

import codecs
import gzip
import io
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

import polars as pl

from schemas.records import STANDARD_FIELDS
from store.errors import BadRequest, TooLarge

MAX_UNPACKED_BYTES = 1 << 30
"""What one unpacked file may weigh by default (`PAYFEED_MAX_UNPACKED_BYTES`): a
guard against a compression bomb, far above any batch the record limit lets
through."""
MAX_BILL_LINE_BYTES = 1 << 13
"""The longest line a CSV bill may have (its widest real rows are under 1 KiB)."""
LINE_SLACK = 1000
"""Lines a file may hold beside its records: headers, comments, summaries, blanks."""

RAW_SCHEMA: dict[str, Any] = {"index": pl.Int64, **{name: pl.String for name in STANDARD_FIELDS}}


@dataclass(frozen=True)
class RowError:
    index: int
    code: str
    message: str
    field: str | None = None
    txn_id: str | None = None


def control_totals(
    declared: dict[str, Any] | None, read: dict[str, Any] | None
) -> dict[str, Any] | None:
    """`{"declared", "read", "match"}`, or None when the input declares nothing."""
    if declared is None:
        return None
    read = read or {}
    return {"declared": declared, "read": read, "match": declared == read}


@dataclass
class RawBatch:
    frame: pl.DataFrame
    malformed: list[RowError] = field(default_factory=list)
    declared_totals: dict[str, Any] | None = None
    """What the file says it holds (its trailer or summary row), when it says."""
    read_totals: dict[str, Any] | None = None
    """The same figures as read from the rows; summed over the chunks of a file."""

    @property
    def control_totals(self) -> dict[str, Any] | None:
        return control_totals(self.declared_totals, self.read_totals)

    @property
    def received(self) -> int:
        return self.frame.height + len(self.malformed)


@dataclass(frozen=True)
class ReadOptions:
    """What the caller knows beside the bytes: the content type's charset override
    and format-specific parameters (a file name, a settlement date)."""

    charset: str | None = None
    content_type: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    max_unpacked: int = MAX_UNPACKED_BYTES
    """What a gzip or zip body may unpack to (413 beyond)."""
    max_records: int | None = None
    """When given, a body with more lines or items than this (plus `LINE_SLACK`
    for headers and comments) is refused with 413 before it is parsed."""


@dataclass(frozen=True)
class Layout:
    """How a file of a format splits into chunks that its adapter reads one by one,
    so that backfill holds a bounded part of a big file: the leading lines every
    chunk repeats (a header, comments), how the trailer's first line begins (the
    trailer stays with the last chunk), and which member of a zip holds the rows."""

    header_lines: Callable[[list[bytes]], int] = lambda first_lines: 0
    trailer_prefixes: tuple[bytes, ...] = ()
    is_member: Callable[[str], bool] = lambda name: True


Adapter = Callable[[bytes, ReadOptions], RawBatch]
"""Bytes of one batch or file to standard columns; raises `PayfeedError` for a body
that cannot be read at all (400), never for one bad row."""


def empty_frame() -> pl.DataFrame:
    return pl.DataFrame(schema=RAW_SCHEMA)


def standard_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame`'s `RAW_SCHEMA` columns, in order and typed so."""
    return frame.select(pl.col(name).cast(dtype) for name, dtype in RAW_SCHEMA.items())


def bounded_lines(body: bytes, options: ReadOptions, max_line: int | None = None) -> None:
    """Refuse, before any parse copies it, a text body with more lines than a batch
    may have records, or (with `max_line`) a line longer than `max_line` bytes:
    the parse's memory then stays a small multiple of what a batch can hold, not
    of what a hostile body weighs."""
    if options.max_records is None:
        return
    lines = body.count(b"\n")
    if lines > options.max_records + LINE_SLACK:
        raise TooLarge(
            "too_many_records",
            f"body has {lines} lines; a batch holds at most {options.max_records} records",
        )
    if max_line is None:
        return
    start = 0
    for number in range(lines + 1):  # at most the lines just counted
        end = body.find(b"\n", start)
        end = len(body) if end < 0 else end
        if end - start > max_line:
            raise BadRequest("line_too_long", f"line {number + 1} is longer than {max_line} bytes")
        start = end + 1


def check_decodes(data: bytes, options: ReadOptions, default: str) -> None:
    """`decode`'s refusal of a body that is not text in its encoding, decoding a
    chunk at a time so that no copy of the whole is made."""
    encoding = options.charset or default
    try:
        decoder = codecs.getincrementaldecoder(encoding)()
    except LookupError:
        raise BadRequest("bad_charset", f"unknown charset {encoding!r}") from None
    view = memoryview(data)
    for start in range(0, len(data), UNPACK_CHUNK):
        try:
            decoder.decode(view[start : start + UNPACK_CHUNK], final=False)
        except UnicodeDecodeError as exc:
            raise BadRequest(
                "undecodable_body", f"body is not valid {encoding} at byte {start + exc.start}"
            ) from None
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise BadRequest("undecodable_body", f"body is not valid {encoding} at its end") from None


def utf8(data: bytes, options: ReadOptions, default: str) -> bytes:
    """The body as UTF-8 without a byte order mark, for polars' readers. A UTF-8
    body is checked by polars (a fraction of what decoding it in Python costs);
    any other charset is decoded and encoded again. A body that does not decode
    is the caller's 400 (`decode` says where it fails)."""
    if _is_utf8(options.charset or default):
        body = data.removeprefix(codecs.BOM_UTF8)
        try:
            pl.Series([body], dtype=pl.Binary).cast(pl.String)
            return body
        except pl.exceptions.ComputeError:
            pass
    return decode(data, options, default).removeprefix("\ufeff").encode()


def _is_utf8(encoding: str) -> bool:
    try:
        return codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")
    except LookupError:
        return False


def csv_rows(text: bytes, lines: pl.Series, header_at: int, picks: dict[str, int]) -> pl.DataFrame:
    """The lines of an unquoted CSV text after its header (line `header_at` of
    `lines`, the text's lines as `polars.read_lines` gives them, stripped), one
    row each: `line` ("" when blank), `fields` (how many values it holds) and the
    raw value of each picked column (by position; "" where the line is short).

    Polars' CSV reader splits out the picked values (a third of the time of
    splitting every line into a list); the lines are read whole as well only to
    count their values, which the reader cannot tell apart from empty ones."""
    width = max(picks.values()) + 1
    values = pl.read_csv(
        text,
        has_header=False,
        skip_lines=header_at + 1,
        quote_char=None,
        schema=dict.fromkeys((f"column_{i}" for i in range(width)), pl.String),
        columns=sorted(set(picks.values())),
        empty_string_is_null=False,
        truncate_ragged_lines=True,
        missing_columns="insert",
        extra_columns="ignore",
        raise_if_empty=False,
    )
    after = lines.slice(header_at + 1)
    assert values.height == after.len(), "the CSV reader and the line reader disagree"
    return pl.DataFrame(
        [
            after.alias("line"),
            (after.str.count_matches(",", literal=True) + 1).alias("fields"),
            *(values[f"column_{i}"].alias(name) for name, i in picks.items()),
        ]
    )


def misaligned_rows(rows: pl.DataFrame, width: int) -> list[RowError]:
    """`malformed` errors for CSV rows (`index`, `fields`) whose column count is not
    the header's: a comma inside a value shifts every column after it."""
    return [
        RowError(i, "malformed", f"row has {n} columns; the header has {width}")
        for i, n in rows.select("index", "fields").iter_rows()
    ]


def text_column(values: list[Any]) -> pl.Series:
    """A column of JSON values as text: strings as they are, integers spelled out,
    anything else (floats, booleans, objects) as a marker no field rule accepts, so
    that it is reported as `invalid_field` for that field rather than coerced."""
    try:
        return pl.Series(values, dtype=pl.String, strict=True)
    except (TypeError, pl.exceptions.PolarsError):
        pass
    # Integers (amounts sent as JSON numbers) in one go; polars would take True for 1.
    if not any(isinstance(value, bool) for value in values):
        try:
            return pl.Series(values, dtype=pl.Int64, strict=True).cast(pl.String)
        except (TypeError, OverflowError, pl.exceptions.PolarsError):
            pass
    return pl.Series([_as_text(v) for v in values], dtype=pl.String)


WRONG_TYPE = "\ufffd"


def _as_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return WRONG_TYPE + type(value).__name__


def decode(data: bytes, options: ReadOptions, default: str) -> str:
    """Bytes to text in the format's encoding or the caller's `charset`; a body
    that does not decode is the caller's 400, not a row error."""
    encoding = options.charset or default
    try:
        return data.decode(encoding)
    except LookupError:
        raise BadRequest("bad_charset", f"unknown charset {encoding!r}") from None
    except UnicodeDecodeError as exc:
        raise BadRequest(
            "undecodable_body", f"body is not valid {encoding} at byte {exc.start}"
        ) from None


LOCAL_OFFSET = "+08:00"
"""Asia/Shanghai has kept UTC+8 without daylight saving time since 1991."""

YUAN = r"^[+-]?[0-9]{1,13}(?:\.[0-9]{1,2})?$"
LOCAL_TIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}$"


def fen_from_yuan(text: pl.Expr) -> pl.Expr:
    """Signed integer fen of a yuan amount with at most two decimals, through an
    exact decimal (never a float); null when the text is no such amount."""
    amount = text.str.strip_chars()
    exact = amount.cast(pl.Decimal(16, 2), strict=False) * 100
    return pl.when(amount.str.contains(YUAN)).then(exact.cast(pl.Int64))


def amount_text(text: pl.Expr, fen: pl.Expr | None = None) -> pl.Expr:
    """The absolute amount in fen as decimal text (the standard's `amount_fen`); text
    that is no yuan amount passes unchanged, so that the normaliser rejects it as
    `invalid_field`. `fen`: `fen_from_yuan(text)` when the caller has it already."""
    fen = fen_from_yuan(text) if fen is None else fen
    return pl.when(fen.is_not_null()).then(fen.abs().cast(pl.String)).otherwise(text)


def local_time(text: pl.Expr) -> pl.Expr:
    """`YYYY-MM-DD hh:mm:ss` local time as RFC 3339 with the Asia/Shanghai offset;
    other text passes unchanged for the normaliser to reject."""
    return (
        pl.when(text.str.contains(LOCAL_TIME))
        .then(text.str.replace(" ", "T", literal=True) + LOCAL_OFFSET)
        .otherwise(text)
    )


GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
UNPACK_CHUNK = 1 << 20


def is_packed(data: bytes) -> bool:
    """A gzip or a zip: what it unpacks to cannot be told from its size."""
    return data.startswith(GZIP_MAGIC) or data.startswith(ZIP_MAGICS)


def unpack(
    data: bytes, wanted: Callable[[str], bool], limit: int = MAX_UNPACKED_BYTES
) -> tuple[bytes, str | None]:
    """The file in a body as a provider's download gives it, recognised by its magic
    bytes: a gzip is inflated; a zip yields its one member whose base name `wanted`
    accepts (names written by Chinese tools in GBK without the UTF-8 flag are
    decoded as such); anything else is the file itself. Returns the bytes and the
    zip member's name (None when not zipped).

    Inflation is a stream counted as it grows: past `limit` bytes it stops with a
    413, having held at most `limit` bytes plus one chunk, whatever the body
    claims about its size."""
    if data.startswith(GZIP_MAGIC):
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as inflated:
                return _inflate(inflated, limit), None
        except (OSError, EOFError, zlib.error) as exc:
            raise BadRequest("undecodable_body", f"body is not a readable gzip: {exc}") from None
    if not data.startswith(ZIP_MAGICS):
        return data, None
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = [
                (info, name)
                for info in archive.infolist()
                if not info.is_dir() and _is_content(name := _member_name(info))
            ]
            chosen = [(info, name) for info, name in members if wanted(name.rsplit("/", 1)[-1])]
            if len(chosen) != 1:
                names = ", ".join(name for _, name in members) or "nothing"
                raise BadRequest(
                    "missing_detail_file",
                    f"the zip must hold exactly one file this format reads; it holds {names}",
                )
            info, name = chosen[0]
            with archive.open(info) as member:
                return _inflate(member, limit), name
    except (
        zipfile.BadZipFile,
        NotImplementedError,
        RuntimeError,
        OSError,
        EOFError,
        zlib.error,
    ) as exc:
        raise BadRequest("undecodable_body", f"body is not a readable zip: {exc}") from None


def _inflate(stream: io.BufferedIOBase | IO[bytes], limit: int) -> bytes:
    """`stream` read to its end into one buffer (`BytesIO.getvalue` hands its
    buffer over rather than copying it), refused as soon as it passes `limit`."""
    out = io.BytesIO()
    while chunk := stream.read(UNPACK_CHUNK):
        if out.tell() + len(chunk) > limit:
            raise TooLarge("body_too_large", f"the unpacked file is larger than {limit} bytes")
        out.write(chunk)
    return out.getvalue()


def _member_name(info: zipfile.ZipInfo) -> str:
    if info.flag_bits & 0x800:
        return info.filename
    raw = info.filename.encode("cp437")  # how zipfile decoded it: undo, then try the usual
    for encoding in ("utf-8", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return info.filename


def _is_content(name: str) -> bool:
    """Not the resource-fork shadows macOS adds to the zips it makes."""
    return not name.startswith("__MACOSX/") and not name.rsplit("/", 1)[-1].startswith("._")
