"""Bulk backfill of provider files, in bounded memory, through the batch path.

A file is read in chunks of whole lines (each chunk repeats the format's header
lines, the trailer stays with the last chunk), so the same adapter that reads an
HTTP body reads each chunk. Each chunk is normalised while the previous one is
written, and committed in its own transaction together with the file's progress
(`backfill_files`): a rerun after a crash resumes after the last committed row,
and a file read to its end is recognised by its digest and skipped. Deduplication
makes any overlap harmless.
"""

import asyncio
import contextlib
import gzip
import hashlib
import itertools
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
import orjson
import polars as pl
import pyarrow.parquet as pq
from numpy.typing import NDArray
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from ingest.adapters import Layout, RawBatch, ReadOptions, format_named, standard
from ingest.adapters.base import control_totals
from ingest.normalise import Normalised, Window
from ingest.pipeline import Pipeline, Source
from store.errors import BadRequest, PayfeedError
from store.tables import backfill_files

CHUNK_ROWS = 30_000
READ_BYTES = 8 * 1024 * 1024
NEWLINE = ord("\n")
HEADER_SEARCH_LINES = 64
"""The header (comments and column names) is found within the first lines."""
SAMPLE_ERRORS = 20
COUNTS = ("received", "inserted", "duplicates", "rejected", "quarantined")


@dataclass
class Chunk:
    body: bytes
    rows: int
    """Data rows in the chunk (blank, header and trailer lines not counted)."""
    offset: int
    """Data rows of the file before this chunk: added to every row index."""
    position: int
    """Bytes of the file read so far, for progress."""


@dataclass
class FileSummary:
    path: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    errors_by_code: dict[str, int] = field(default_factory=dict)
    sample_errors: list[dict[str, Any]] = field(default_factory=list)
    declared_totals: dict[str, Any] | None = None
    read_totals: dict[str, Any] | None = None
    rows_done: int = 0
    skipped: bool = False
    error: str | None = None

    @property
    def control_totals(self) -> dict[str, Any] | None:
        return control_totals(self.declared_totals, self.read_totals)

    def stored(self) -> dict[str, Any]:
        return {
            "counts": self.counts,
            "errors_by_code": self.errors_by_code,
            "sample_errors": self.sample_errors,
            "declared_totals": self.declared_totals,
            "read_totals": self.read_totals,
        }

    def restore(self, stored: dict[str, Any], rows_done: int) -> None:
        self.counts.update(stored.get("counts", {}))
        self.errors_by_code.update(stored.get("errors_by_code", {}))
        self.sample_errors = stored.get("sample_errors", [])
        self.declared_totals = stored.get("declared_totals")
        self.read_totals = stored.get("read_totals")
        self.rows_done = rows_done


def expand(patterns: list[str]) -> list[Path]:
    """Files and globs, in the order given; a pattern that matches nothing is kept
    as a path so that it is reported as unreadable."""
    paths: list[Path] = []
    for pattern in patterns:
        matched = sorted(Path().glob(pattern)) if any(c in pattern for c in "*?[") else []
        paths.extend(matched or [Path(pattern)])
    return paths


def file_digest(path: Path) -> bytes:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(READ_BYTES):
            digest.update(block)
    return digest.digest()


def _open(
    path: Path, layout: Layout, stack: ExitStack
) -> tuple[IO[bytes], str, int, Callable[[int], int]]:
    """The rows' byte stream of a plain, `.gz` or `.zip` file, the name the rows
    go by (a zip member's), and for progress its size and how far into it a
    position in the stream is. A `.gz` file's inflated size is not known before
    the end, so its progress is the compressed bytes read of the file on disk."""
    name = path.name.lower()
    if name.endswith(".zip"):
        archive = stack.enter_context(zipfile.ZipFile(path))
        members = [i for i in archive.infolist() if not i.is_dir() and layout.is_member(i.filename)]
        if len(members) != 1:
            raise BadRequest("missing_detail_file", f"{path}: no single file of this format inside")
        return (
            stack.enter_context(archive.open(members[0])),
            members[0].filename,
            members[0].file_size,
            _same,
        )
    if name.endswith(".gz"):
        raw = stack.enter_context(path.open("rb"))
        inflated = cast(IO[bytes], stack.enter_context(gzip.GzipFile(fileobj=raw)))
        return inflated, path.name[:-3], path.stat().st_size, lambda _: raw.tell()
    return stack.enter_context(path.open("rb")), path.name, path.stat().st_size, _same


def _same(position: int) -> int:
    return position


def line_chunks(
    stream: IO[bytes], layout: Layout, chunk_rows: int, skip_rows: int
) -> Iterator[Chunk]:
    """Chunks of `chunk_rows` data rows (the last may hold fewer), each led by the
    file's header lines; the first `skip_rows` data rows (committed by an earlier
    run) are passed over. Blank lines go with the rows around them, uncounted;
    the trailer stays with the last chunk.

    Lines are found in whole 8 MB blocks (numpy over the bytes), not one by one:
    a Python step per line cost as much as reading the rows."""
    blocks = _blocks(stream)
    first = next(blocks, b"")
    while first.count(b"\n") < HEADER_SEARCH_LINES and (more := next(blocks, None)):
        first += more
    first_lines = first.split(b"\n", HEADER_SEARCH_LINES)[:HEADER_SEARCH_LINES]
    header_lines = first_lines[: layout.header_lines(first_lines)]
    header_end = min(len(first), sum(len(line) + 1 for line in header_lines))
    header = first[:header_end]
    parts: list[bytes] = []
    rows, offset, position, trailer = 0, 0, header_end, False
    for block in itertools.chain([first[header_end:]], blocks):
        ends, data, trailer = _data_lines(block, layout, trailer)
        rows_at = np.flatnonzero(data)
        start = 0
        if skip_rows:
            skipped = min(skip_rows, len(rows_at))
            if skipped:
                start = int(ends[rows_at[skipped - 1]])
            skip_rows -= skipped
            offset += skipped
            rows_at = rows_at[skipped:]
        while len(rows_at) >= chunk_rows - rows:
            cut = int(ends[rows_at[chunk_rows - rows - 1]])
            parts.append(block[start:cut])
            rows_at = rows_at[chunk_rows - rows :]
            yield Chunk(b"".join([header, *parts]), chunk_rows, offset, position + cut)
            offset += chunk_rows
            parts, rows, start = [], 0, cut
        parts.append(block[start:])
        rows += len(rows_at)
        position += len(block)
    if rows or trailer:
        yield Chunk(b"".join([header, *parts]), rows, offset, position)


def _blocks(stream: IO[bytes]) -> Iterator[bytes]:
    """The stream in blocks of whole lines (the last may lack its line end)."""
    carry = b""
    while block := stream.read(READ_BYTES):
        block = carry + block
        cut = block.rfind(b"\n") + 1
        carry = block[cut:]
        if cut:
            yield block[:cut]
    if carry:
        yield carry


WHITESPACE = np.zeros(256, bool)
WHITESPACE[list(b"\t\n\v\f\r ")] = True
"""The bytes `bytes.isspace` takes for blank."""


def _data_lines(
    block: bytes, layout: Layout, in_trailer: bool
) -> tuple[NDArray[np.int64], NDArray[np.bool_], bool]:
    """Where each line of `block` ends, which lines are data rows (not blank, not
    the trailer), and whether the trailer has begun (`in_trailer`: before it)."""
    octets = np.frombuffer(block, np.uint8)
    ends = np.flatnonzero(octets == NEWLINE) + 1
    if len(octets) and octets[-1] != NEWLINE:
        ends = np.append(ends, len(octets))
    starts = np.concatenate(([0], ends[:-1])).astype(np.int64)
    data = np.full(len(ends), not in_trailer)
    if in_trailer or not len(ends):
        return ends, data, in_trailer
    # Only a line that starts with whitespace can be blank: those few are checked.
    for line in np.flatnonzero(WHITESPACE[octets[starts]]):
        data[line] = not block[starts[line] : ends[line]].isspace()
    trailer_at = [
        first
        for prefix in layout.trailer_prefixes
        if (first := _first_line_starting_with(octets, starts, prefix)) is not None
    ]
    if trailer_at:
        data[min(trailer_at) :] = False
    return ends, data, bool(trailer_at)


def _first_line_starting_with(
    octets: NDArray[np.uint8], starts: NDArray[np.int64], prefix: bytes
) -> int | None:
    """The number of the first line that begins with `prefix`: the lines still in
    the running compared a byte at a time (a line end stops a match, as the
    prefix holds none)."""
    lines = np.arange(len(starts))
    for shift, byte in enumerate(prefix):
        at = starts[lines] + shift
        inside = at < len(octets)
        lines, at = lines[inside], at[inside]
        lines = lines[octets[at] == byte]
    return int(lines[0]) if len(lines) else None


def parquet_chunks(path: Path, chunk_rows: int, skip_rows: int) -> Iterator[RawBatch]:
    offset = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
        table = pl.from_arrow(batch)
        assert isinstance(table, pl.DataFrame)
        if offset + table.height <= skip_rows:
            offset += table.height
            continue
        raw = standard.from_table(table)
        yield _shifted(raw, offset)
        offset += table.height


def _shifted(raw: RawBatch, offset: int) -> RawBatch:
    """Row indexes of a chunk as positions in the whole file."""
    if offset:
        raw.frame = raw.frame.with_columns(pl.col("index") + offset)
        for error in raw.malformed:
            object.__setattr__(error, "index", error.index + offset)
    return raw


async def backfill_file(
    engine: AsyncEngine,
    pipeline: Pipeline,
    path: Path,
    *,
    provider: str,
    fmt: str,
    chunk_rows: int = CHUNK_ROWS,
    progress: Callable[[int, int, int], None] = lambda rows, position, total: None,
) -> FileSummary:
    """Load one file; never raises for a bad file (its summary says what failed)."""
    summary = FileSummary(str(path))
    try:
        digest = await asyncio.to_thread(file_digest, path)
        key = {"digest": digest, "provider": provider, "format": fmt}
        async with engine.begin() as conn:
            row = (
                await conn.execute(
                    select(backfill_files).where(
                        *(backfill_files.c[k] == v for k, v in key.items())
                    )
                )
            ).first()
            window = await pipeline.window(conn)
        if row is not None:
            summary.restore(row.summary, row.rows_done)
            if row.completed_at is not None:
                summary.skipped = True
                return summary
        await _load(
            engine, pipeline, path, key, summary, provider, fmt, window, chunk_rows, progress
        )
    except (PayfeedError, OSError, zipfile.BadZipFile, EOFError) as exc:
        summary.error = exc.message if isinstance(exc, PayfeedError) else str(exc)
    return summary


async def _load(
    engine: AsyncEngine,
    pipeline: Pipeline,
    path: Path,
    key: dict[str, Any],
    summary: FileSummary,
    provider: str,
    fmt: str,
    window: Window,
    chunk_rows: int,
    progress: Callable[[int, int, int], None],
) -> None:
    """Normalise chunk n+1 in a thread while chunk n is written: the CPU work of
    parsing overlaps the database's."""
    raws = raw_chunks(path, fmt, chunk_rows, summary.rows_done)

    def prepare() -> tuple[RawBatch, Normalised, int, int, int, float] | None:
        started = time.monotonic()
        item = next(raws, None)
        if item is None:
            return None
        raw, rows, position, total = item
        normalised = pipeline.prepare(raw, window)
        return raw, normalised, rows, position, total, time.monotonic() - started

    upcoming = asyncio.create_task(asyncio.to_thread(prepare))
    try:
        while (prepared := await upcoming) is not None:
            upcoming = asyncio.create_task(asyncio.to_thread(prepare))
            raw, normalised, rows, position, total, reading = prepared
            started = time.monotonic()
            async with engine.begin() as conn:
                result = await pipeline.write(
                    conn, provider, raw, normalised, source={"file": str(path)}
                )
                _add(summary, result, raw, rows)
                await _save(conn, key, path, summary, completed=False)
            pipeline.report(
                Source.BACKFILL,
                provider,
                result,
                reading + time.monotonic() - started,
                file=str(path),
                rows_done=summary.rows_done,
            )
            progress(summary.rows_done, position, total)
    finally:
        # A failed write leaves the next chunk being read: let it end, unused.
        with contextlib.suppress(Exception):
            await upcoming
    async with engine.begin() as conn:
        await _save(conn, key, path, summary, completed=True)


def raw_chunks(
    path: Path, fmt: str, chunk_rows: int, skip_rows: int
) -> Iterator[tuple[RawBatch, int, int, int]]:
    """`(raw batch, data rows, bytes read, total bytes)` per chunk of a file."""
    chosen = format_named(fmt)
    if fmt == "standard" and path.name.lower().endswith(".parquet"):
        total = path.stat().st_size
        for raw in parquet_chunks(path, chunk_rows, skip_rows):
            yield raw, raw.received, total, total
        return
    media = _standard_media(path) if fmt == "standard" else None
    layout = standard.LAYOUTS[media] if media else chosen.layout
    with ExitStack() as stack:
        stream, name, total, read_so_far = _open(path, layout, stack)
        options = ReadOptions(content_type=media, params={"filename": name})
        for chunk in line_chunks(stream, layout, chunk_rows, skip_rows):
            raw = _shifted(chosen.read(chunk.body, options), chunk.offset)
            yield raw, chunk.rows, read_so_far(chunk.position), total


def _standard_media(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz").removesuffix(".zip")
    if name.endswith(".csv"):
        return standard.CSV
    if name.endswith((".ndjson", ".jsonl", ".json")):
        return standard.NDJSON
    raise BadRequest("unknown_file_type", f"{path}: standard files are .csv, .ndjson or .parquet")


def _add(summary: FileSummary, result: Any, raw: RawBatch, rows: int) -> None:
    for name in COUNTS:
        summary.counts[name] += getattr(result, name)
    for error in result.errors:
        code = str(error.code)
        summary.errors_by_code[code] = summary.errors_by_code.get(code, 0) + 1
        if len(summary.sample_errors) < SAMPLE_ERRORS:
            summary.sample_errors.append(
                {
                    "index": error.index,
                    "txn_id": error.txn_id,
                    "code": error.code,
                    "field": error.field,
                    "message": error.message,
                }
            )
    if raw.declared_totals is not None:
        summary.declared_totals = raw.declared_totals
    if raw.read_totals is not None:
        before = summary.read_totals or {}
        summary.read_totals = {k: before.get(k, 0) + v for k, v in raw.read_totals.items()}
    summary.rows_done += rows


async def _save(
    conn: Any, key: dict[str, Any], path: Path, summary: FileSummary, *, completed: bool
) -> None:
    values = {
        "name": path.name,
        "rows_done": summary.rows_done,
        "summary": orjson.loads(orjson.dumps(summary.stored())),
        "completed_at": datetime.now(UTC) if completed else None,
    }
    statement = insert(backfill_files).values(**key, **values)
    await conn.execute(statement.on_conflict_do_update(index_elements=list(key), set_=values))
