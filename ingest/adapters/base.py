"""The one interface every provider format implements.

One interface for every format (`Adapter.read`): bytes in, a `RawBatch` out —
string columns named as in `schemas.records.STANDARD_FIELDS` plus `index` (the
0-based data row), the rows that could not even be read as a record
(`malformed`), and the control totals the file declares. Nothing outside an
adapter knows a format's quirks.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from schemas.records import STANDARD_FIELDS

RAW_SCHEMA: dict[str, Any] = {"index": pl.Int64, **{name: pl.String for name in STANDARD_FIELDS}}


@dataclass(frozen=True)
class RowError:
    index: int
    code: str
    message: str
    field: str | None = None
    txn_id: str | None = None


@dataclass
class RawBatch:
    frame: pl.DataFrame
    malformed: list[RowError] = field(default_factory=list)
    control_totals: dict[str, Any] | None = None

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


Adapter = Callable[[bytes, ReadOptions], RawBatch]
"""Bytes of one batch or file to standard columns; raises `PayfeedError` for a body
that cannot be read at all (400), never for one bad row."""


def empty_frame() -> pl.DataFrame:
    return pl.DataFrame(schema=RAW_SCHEMA)


def text_column(values: list[Any]) -> pl.Series:
    """A column of JSON values as text: strings as they are, integers spelled out,
    anything else (floats, booleans, objects) as a marker no field rule accepts, so
    that it is reported as `invalid_field` for that field rather than coerced."""
    try:
        return pl.Series(values, dtype=pl.String, strict=True)
    except (TypeError, pl.exceptions.PolarsError):
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
    from ingest.errors import BadRequest

    encoding = options.charset or default
    try:
        return data.decode(encoding)
    except LookupError:
        raise BadRequest("bad_charset", f"unknown charset {encoding!r}") from None
    except UnicodeDecodeError as exc:
        raise BadRequest(
            "undecodable_body", f"body is not valid {encoding} at byte {exc.start}"
        ) from None
