"""The `payfeed` command: one small module per command group."""

import typer

from app.cli import (
    audit,
    backfill,
    consume,
    feeds,
    publish,
    quarantine,
    registry,
    report,
    rollups,
    serve,
    tokens,
)

cli = typer.Typer(
    rich_markup_mode="markdown",
    help="payfeed: payment feeds of the 百城万企促消费 campaign.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
serve.attach(cli)
consume.attach(cli)
backfill.attach(cli)
cli.add_typer(tokens.cli, name="tokens")
cli.add_typer(registry.cli, name="registry")
cli.add_typer(rollups.cli, name="rollups")
cli.add_typer(quarantine.cli, name="quarantine")
cli.add_typer(feeds.cli, name="feeds")
report.attach(cli)
publish.attach(cli)
audit.attach(cli)


def main() -> None:
    cli()
