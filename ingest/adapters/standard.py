"""The data standard itself: JSON (an array or `{"records": [...]}`), NDJSON, CSV
with a header of the field names, or Parquet."""

import io
from typing import Any

import polars as pl

from ingest.adapters.base import (
    Layout,
    RawBatch,
    ReadOptions,
    RowError,
    bounded_lines,
    decode,
    empty_frame,
    text_column,
)
from schemas.json_objects import RepeatedKey, load_marking_repeats
from schemas.records import STANDARD_FIELDS
from store.errors import BadRequest, TooLarge, UnsupportedMediaType

JSON = "application/json"
NDJSON = "application/x-ndjson"
CSV = "text/csv"
PARQUET = "application/vnd.apache.parquet"


LAYOUTS = {NDJSON: Layout(), CSV: Layout(header_lines=lambda first_lines: 1)}
"""Files backfill reads in chunks; JSON arrays and Parquet are read otherwise."""


def read(data: bytes, options: ReadOptions) -> RawBatch:
    kind = options.content_type or JSON
    if kind == JSON:
        return from_objects(_json_items(data, options))
    if kind == NDJSON:
        bounded_lines(data, options)
        return _from_ndjson(data, options)
    if kind == CSV:
        bounded_lines(data, options)
        return from_table(_read_csv(data, options))
    if kind == PARQUET:
        return from_table(_read_parquet(data))
    raise UnsupportedMediaType(
        "unsupported_media_type", f"the standard format does not read {kind}"
    )


def from_objects(items: list[Any], indexes: list[int] | None = None) -> RawBatch:
    """Decoded JSON values to standard columns; a value that is not an object is
    `malformed` and keeps its position."""
    positions = indexes if indexes is not None else range(len(items))
    objects = [item for item in items if type(item) is dict]
    kept = [i for i, item in zip(positions, items, strict=True) if type(item) is dict]
    malformed = [
        RowError(i, "malformed", _not_a_record(item))
        for i, item in zip(positions, items, strict=True)
        if type(item) is not dict
    ]
    columns = {name: text_column([item.get(name) for item in objects]) for name in STANDARD_FIELDS}
    frame = pl.DataFrame({"index": pl.Series(kept, dtype=pl.Int64), **columns})
    return RawBatch(frame if objects else empty_frame(), malformed)


def _not_a_record(item: Any) -> str:
    if isinstance(item, RepeatedKey):
        return f"key {item.key!r} appears twice in the record"
    return "a record must be a JSON object"


def _json_items(data: bytes, options: ReadOptions) -> list[Any]:
    if options.charset and options.charset.lower().replace("-", "") != "utf8":
        data = decode(data, options, "utf-8").encode()
    try:
        body = load_marking_repeats(data)
    except ValueError as exc:
        raise BadRequest("undecodable_body", f"body is not valid JSON: {exc}") from None
    if isinstance(body, RepeatedKey):
        raise BadRequest("undecodable_body", f"key {body.key!r} appears twice in the body")
    items = body.get("records") if isinstance(body, dict) else body
    if isinstance(items, list):
        if options.max_records is not None and len(items) > options.max_records:
            raise TooLarge(
                "too_many_records",
                f"batch has {len(items)} records; the limit is {options.max_records}",
            )
        return items
    raise BadRequest("undecodable_body", 'body must be an array of records or {"records": [...]}')


def _from_ndjson(data: bytes, options: ReadOptions) -> RawBatch:
    text = decode(data, options, "utf-8")
    items: list[Any] = []
    indexes: list[int] = []
    malformed: list[RowError] = []
    # Lines are parsed one by one so that a broken line costs only itself.
    for i, line in enumerate(line for line in text.splitlines() if line.strip()):
        try:
            items.append(load_marking_repeats(line))
            indexes.append(i)
        except ValueError as exc:
            malformed.append(RowError(i, "malformed", f"line is not valid JSON: {exc}"))
    batch = from_objects(items, indexes)
    batch.malformed = sorted(batch.malformed + malformed, key=lambda e: e.index)
    return batch


def _read_csv(data: bytes, options: ReadOptions) -> pl.DataFrame:
    text = decode(data, options, "utf-8-sig")
    try:
        return pl.read_csv(io.StringIO(text), infer_schema=False)
    except pl.exceptions.PolarsError as exc:
        raise BadRequest("undecodable_body", f"CSV could not be read: {exc}") from None


def _read_parquet(data: bytes) -> pl.DataFrame:
    try:
        return pl.read_parquet(io.BytesIO(data))
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise BadRequest("undecodable_body", f"Parquet could not be read: {exc}") from None


def from_table(table: pl.DataFrame) -> RawBatch:
    """A table whose columns are named as the standard's; missing optional columns
    are absent values, extra columns are ignored."""
    columns = [
        (
            pl.col(name).cast(pl.String)
            if name in table.columns
            else pl.lit(None, dtype=pl.String).alias(name)
        )
        for name in STANDARD_FIELDS
    ]
    frame = table.with_row_index("index").select(pl.col("index").cast(pl.Int64), *columns)
    return RawBatch(frame)
