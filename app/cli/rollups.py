"""`payfeed rollups verify|rebuild`."""

import orjson
import typer
from sqlalchemy.ext.asyncio import AsyncConnection

from app.cli.common import in_transaction, parse_day
from app.cli.progress import progress_bar
from ingest.rollups import rebuild_rollups, verify_rollups
from schemas.text import FIRST_DAY, LAST_DAY
from store.audit import record_change
from store.principal import COMMAND_LINE

cli = typer.Typer(
    rich_markup_mode="markdown",
    help="Rollups: prove them against the records, or rebuild them.",
    no_args_is_help=True,
)

EARLIEST = FIRST_DAY
LATEST = LAST_DAY


@cli.command()
def verify(
    first_day: str = typer.Option(str(EARLIEST), "--from", help="first day, YYYY-MM-DD"),
    last_day: str = typer.Option(str(LATEST), "--to", help="last day, YYYY-MM-DD"),
) -> None:
    """Recount the stored records; exit 1 and print a diff on any mismatch."""
    first, last = parse_day(first_day, "--from"), parse_day(last_day, "--to")
    with progress_bar("recounting the records") as advance:
        differences = in_transaction(lambda conn: verify_rollups(conn, first, last, advance))
    for difference in differences:
        typer.echo(orjson.dumps(difference, default=str).decode())
    if differences:
        typer.echo(f"{len(differences)} rollup rows differ from the records", err=True)
        raise typer.Exit(1)
    typer.echo(f"rollups equal a recount of the records from {first} to {last}")


@cli.command()
def rebuild(
    first_day: str = typer.Option(str(EARLIEST), "--from", help="first day, YYYY-MM-DD"),
    last_day: str = typer.Option(str(LATEST), "--to", help="last day, YYYY-MM-DD"),
) -> None:
    """Recompute rollups and payer sketches from the stored records and swap them in
    atomically; ingestion may go on (batches wait only while the rebuild runs)."""
    first, last = parse_day(first_day, "--from"), parse_day(last_day, "--to")

    with progress_bar("rebuilding the rollups") as advance:

        async def work(conn: AsyncConnection) -> dict[str, int]:
            written = await rebuild_rollups(conn, first, last, advance)
            await record_change(
                conn, COMMAND_LINE, "rollups.rebuild", f"{first}..{last}", sum(written.values())
            )
            return written

        written = in_transaction(work)
    for table, rows in written.items():
        typer.echo(f"{table}: {rows} rows")
    typer.echo(f"rollups rebuilt from the records from {first} to {last}")
