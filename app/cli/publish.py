"""`payfeed publish` and `payfeed publications list|verify`."""

import orjson
import typer

from app.cli.common import in_transaction, with_engine
from campaign.publications import list_publications, publish_consistently, verify_publications
from store.principal import COMMAND_LINE

cli = typer.Typer(
    rich_markup_mode="markdown",
    help="Publications: list them, or prove their checksums.",
    no_args_is_help=True,
)


def attach(root: typer.Typer) -> None:
    root.command()(publish)
    root.add_typer(cli, name="publications")


def publish(
    campaign: str = typer.Option("2023", help="campaign code"),
    note: str = typer.Option("", help="what this publication is for or revises"),
    final: bool = typer.Option(False, "--final", help="the one reported after the campaign"),
) -> None:
    """Publish the campaign report as the next numbered, immutable publication."""
    published = with_engine(
        lambda engine: publish_consistently(engine, campaign, COMMAND_LINE, note, final)
    )
    assert published is not None
    typer.echo(
        f"published {campaign} #{published['number']}"
        f"{' (final)' if published['final'] else ''}: net_fen="
        f"{published['measures']['net_fen']} records={published['records']} "
        f"sha256={published['sha256']}"
    )


@cli.command("list")
def list_command(campaign: str = typer.Option("2023", help="campaign code")) -> None:
    """One JSON line per publication, oldest first."""
    for row in in_transaction(lambda conn: list_publications(conn, campaign)):
        typer.echo(orjson.dumps(row).decode())


@cli.command()
def verify() -> None:
    """Recompute every publication's checksum; exit 1 listing the altered ones."""
    altered = in_transaction(verify_publications)
    for row in altered:
        typer.echo(orjson.dumps(row).decode())
    if altered:
        typer.echo(f"{len(altered)} publications were altered", err=True)
        raise typer.Exit(1)
    typer.echo("every publication matches its checksum")
