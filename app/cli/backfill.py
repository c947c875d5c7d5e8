"""`payfeed backfill --provider P --format F PATH...`."""

import asyncio
from pathlib import Path

import typer
from prometheus_client import REGISTRY, write_to_textfile
from rich.progress import TaskID, TextColumn
from sqlalchemy.ext.asyncio import AsyncEngine

from app.cli.common import with_engine
from app.cli.progress import bar
from ingest.adapters import FORMATS
from ingest.backfill import CHUNK_ROWS, FileSummary, backfill_file, expand
from ingest.payers import BACKFILL_COMPACT_BYTES, compact_all
from ingest.pipeline import Pipeline
from store.settings import get_settings


def attach(cli: typer.Typer) -> None:
    cli.command()(backfill)


def backfill(
    paths: list[str] = typer.Argument(..., help="files or globs: plain, .gz or .zip"),
    provider: str = typer.Option(..., help="the provider whose files these are"),
    format: str = typer.Option("standard", help=", ".join(FORMATS)),
    chunk_rows: int = typer.Option(CHUNK_ROWS, help="rows per transaction"),
    metrics_file: Path | None = typer.Option(
        None,
        help="write the run's Prometheus metrics to this file when it ends (for "
        "node_exporter's textfile collector, e.g. a .prom file in its directory)",
    ),
) -> None:
    """Load files through the same normalisation, deduplication and rollups as HTTP.

    Reruns insert nothing: a file read to its end is skipped by its digest, and an
    interrupted one resumes after its last committed rows. Exits 1 if any file
    could not be read.
    """
    if format not in FORMATS:
        raise typer.BadParameter(f"format is one of {', '.join(FORMATS)}")
    try:
        summaries = with_engine(
            lambda engine: _run(engine, expand(paths), provider, format, chunk_rows)
        )
    finally:
        # A command has no /metrics to be scraped: its series (records by outcome,
        # source backfill) are left where a collector picks them up, written aside
        # and renamed into place, so that it never reads half a file.
        if metrics_file is not None:
            write_to_textfile(str(metrics_file), REGISTRY)
    failed = [s for s in summaries if s.error]
    raise typer.Exit(1 if failed else 0)


async def _run(
    engine: AsyncEngine, paths: list[Path], provider: str, fmt: str, chunk_rows: int
) -> list[FileSummary]:
    pipeline = Pipeline(get_settings().resolved_secret())
    summaries = []
    with bar(TextColumn("{task.fields[rows]:,} rows  {task.fields[rate]:,.0f} rows/s")) as shown:
        for path in paths:
            task = shown.add_task(path.name, total=None, rows=0, rate=0.0)
            started = asyncio.get_running_loop().time()

            def progress(
                rows: int, position: int, total: int, task: TaskID = task, started: float = started
            ) -> None:
                elapsed = max(asyncio.get_running_loop().time() - started, 1e-9)
                shown.update(
                    task,
                    completed=position,
                    total=total or None,
                    rows=rows,
                    rate=rows / elapsed,
                )

            summary = await backfill_file(
                engine,
                pipeline,
                path,
                provider=provider,
                fmt=fmt,
                chunk_rows=chunk_rows,
                progress=progress,
            )
            shown.remove_task(task)
            summaries.append(summary)
            typer.echo(describe(summary))
    await compact_all(engine, BACKFILL_COMPACT_BYTES)  # payer counts current at the end
    return summaries


def describe(summary: FileSummary) -> str:
    if summary.error:
        return f"{summary.path}: FAILED after {summary.rows_done} rows: {summary.error}"
    c = summary.counts
    line = (
        f"{summary.path}: {'already loaded: ' if summary.skipped else ''}"
        f"read {c['received']}, inserted {c['inserted']}, duplicates {c['duplicates']}, "
        f"rejected {c['rejected']}, quarantined {c['quarantined']}"
    )
    if summary.errors_by_code:
        line += (
            " (" + ", ".join(f"{k} {v}" for k, v in sorted(summary.errors_by_code.items())) + ")"
        )
    totals = summary.control_totals
    if totals is not None:
        verdict = "match" if totals["match"] else "MISMATCH"
        line += f"; control totals {verdict}: declared {totals['declared']}, read {totals['read']}"
    return line
