"""`payfeed feeds coverage`: which provider has delivered which day."""

from datetime import UTC, datetime
from typing import Any

import typer
from sqlalchemy.ext.asyncio import AsyncConnection

from app.cli.common import in_transaction, parse_day
from campaign.coverage import check_range, default_range, feed_coverage

cli = typer.Typer(help="Provider feeds: what each delivered, day by day.", no_args_is_help=True)

COLUMNS = ("provider", "day", "state", "late", "records", "net_fen", "batches", "first_arrival")
ALARMING = {"missing": typer.colors.RED, "suspect": typer.colors.RED}


def _cell(entry: dict[str, Any], column: str) -> str:
    value = entry[column]
    if column == "late":
        return "late" if value else ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return "" if value is None else str(value)


@cli.command()
def coverage(
    first_day: str | None = typer.Option(None, "--from", help="first day, YYYY-MM-DD"),
    last_day: str | None = typer.Option(None, "--to", help="last day, YYYY-MM-DD"),
    provider: str | None = typer.Option(None, help="one provider only"),
) -> None:
    """A table of every provider-day of the range (default: the 30 days up to
    yesterday) with its state; missing and suspect days in red."""
    first, last = default_range(
        parse_day(first_day, "--from") if first_day else None,
        parse_day(last_day, "--to") if last_day else None,
        datetime.now(UTC),
    )

    async def work(conn: AsyncConnection) -> dict[str, Any]:
        check_range(first, last)
        return await feed_coverage(conn, first, last, datetime.now(UTC), provider)

    found = in_transaction(work)
    unregistered = [p["provider"] for p in found["providers"] if not p["registered"]]
    rows = [[_cell(entry, c) for c in COLUMNS] for entry in found["days"]]
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(COLUMNS)]
    typer.echo("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)))
    for entry, row in zip(found["days"], rows, strict=True):
        line = "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
        typer.secho(line, fg=ALARMING.get(entry["state"]))
    summary = found["summary"]
    typer.echo(", ".join(f"{k} {v}" for k, v in summary.items()))
    if unregistered:
        typer.echo(f"unregistered providers: {', '.join(unregistered)}")
