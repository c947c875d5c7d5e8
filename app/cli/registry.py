"""`payfeed registry import --kind K FILE`."""

from pathlib import Path

import typer
from sqlalchemy.ext.asyncio import AsyncConnection

from app.cli.common import in_transaction
from campaign.registry import REGISTRATIONS, parse_rows, register
from store.principal import COMMAND_LINE

cli = typer.Typer(help="The campaign registry.", no_args_is_help=True)


@cli.command("import")
def import_(
    file: Path = typer.Argument(..., exists=True, dir_okay=False),
    kind: str = typer.Option(..., help=", ".join(REGISTRATIONS)),
) -> None:
    """Import a CSV or JSON file, all or nothing, with the campaign rules enforced."""
    if kind not in REGISTRATIONS:
        raise typer.BadParameter(f"kind is one of {', '.join(REGISTRATIONS)}")
    model, _ = REGISTRATIONS[kind]
    media = "application/json" if file.suffix.lower() == ".json" else "text/csv"

    rows = parse_rows(model, file.read_bytes(), media)

    async def work(conn: AsyncConnection) -> int:
        return await register(conn, kind, rows, COMMAND_LINE)

    typer.echo(f"registered {in_transaction(work)} {kind}")
