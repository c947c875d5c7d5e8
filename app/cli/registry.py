"""`payfeed registry import --kind K FILE` and `payfeed registry list --kind K`."""

import sys
from pathlib import Path

import typer
from sqlalchemy.ext.asyncio import AsyncConnection

from app.cli.common import fail, in_range, in_transaction
from app.cli.table import print_table
from app.paging import DEFAULT_PAGE, MAX_PAGE
from campaign.registry import REGISTRATIONS, parse_rows, register
from campaign.registry_listing import LISTINGS, list_registry, shown_columns
from store.principal import COMMAND_LINE
from store.scope import NATIONAL
from store.spreadsheets import csv_text

cli = typer.Typer(rich_markup_mode="markdown", help="The campaign registry.", no_args_is_help=True)


@cli.command("import")
def import_(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="a .csv or .json file"),
    kind: str = typer.Option(..., help=f"what the file holds: {', '.join(REGISTRATIONS)}"),
) -> None:
    """Import a CSV or JSON file, all or nothing, with the campaign rules enforced."""
    if kind not in REGISTRATIONS:
        fail(f"--kind is one of {', '.join(REGISTRATIONS)}")
    model, _ = REGISTRATIONS[kind]
    media = "application/json" if file.suffix.lower() == ".json" else "text/csv"

    rows = parse_rows(model, file.read_bytes(), media)

    async def work(conn: AsyncConnection) -> int:
        return await register(conn, kind, rows, COMMAND_LINE)

    typer.echo(f"registered {in_transaction(work)} {kind}")


@cli.command("list")
def list_(
    kind: str = typer.Option(..., help=f"what to list: {', '.join(LISTINGS)}"),
    campaign: str | None = typer.Option(None, help="only this campaign's rows"),
    province: str | None = typer.Option(None, help="only this province (2-digit prefix)"),
    city: str | None = typer.Option(None, help="only this city (a county code means its city)"),
    limit: int = typer.Option(DEFAULT_PAGE, help="at most this many rows"),
    csv_out: bool = typer.Option(False, "--csv", help="CSV on stdout instead of a table"),
) -> None:
    """List registered rows in key order, as a table with a header (or CSV)."""
    in_range(limit, "--limit", 1, MAX_PAGE)
    if kind not in LISTINGS:
        fail(f"--kind is one of {', '.join(LISTINGS)}")
    given = {"campaign": campaign, "province": province, "city": city}
    asked = {k: v for k, v in given.items() if v is not None}
    unsupported = [k for k in asked if k not in LISTINGS[kind].filter_names]
    if unsupported:
        fail(f"{kind} are not filtered by --{', --'.join(unsupported)}")
    rows, more = in_transaction(lambda conn: list_registry(conn, kind, NATIONAL, asked, limit))
    header = shown_columns(kind)
    if csv_out:
        sys.stdout.write(csv_text(header, rows))
    else:
        print_table(header, rows)
    typer.echo(f"{len(rows)} {kind}{' (more: raise --limit)' if more else ''}", err=True)
