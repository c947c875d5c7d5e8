"""`payfeed quarantine list|replay|discard [--code C] [--provider P]`."""

from datetime import UTC, datetime

import typer

from app.cli.common import in_range, in_transaction
from ingest.pipeline import Pipeline
from ingest.quarantine import discard_quarantine, list_quarantine, replay_quarantine
from store.principal import COMMAND_LINE
from store.settings import get_settings

cli = typer.Typer(
    rich_markup_mode="markdown", help="Held records: list, replay, discard.", no_args_is_help=True
)

Code = typer.Option(None, "--code", help="unknown_merchant or conflict")
ProviderOpt = typer.Option(None, "--provider", help="the provider the records came from")


@cli.command("list")
def list_(
    code: str | None = Code,
    provider: str | None = ProviderOpt,
    limit: int = typer.Option(100, help="at most this many rows"),
) -> None:
    """List held records, oldest first."""
    in_range(limit, "--limit", 1, 10_000)
    found = in_transaction(
        lambda conn: list_quarantine(conn, code=code, provider=provider, limit=limit)
    )
    for item in found["items"]:
        typer.echo(
            f"{item['id']}\t{item['provider']}\t{item['code']}\t{item['txn_id'] or '-'}\t"
            f"{item['created_at']:%Y-%m-%d %H:%M:%S}\t{item['message']}"
        )
    typer.echo(f"{found['total']} held", err=True)


@cli.command()
def replay(code: str | None = Code, provider: str | None = ProviderOpt) -> None:
    """Run held records again with the registry as it is now."""
    pipeline = Pipeline(get_settings().resolved_secret())
    answer = in_transaction(
        lambda conn: replay_quarantine(
            conn,
            pipeline,
            actor=COMMAND_LINE,
            now=datetime.now(UTC),
            code=code,
            provider=provider,
        )
    )
    typer.echo(
        f"replayed {answer['replayed']}: inserted {answer['inserted']}, duplicates "
        f"{answer['duplicates']}, still quarantined {answer['still_quarantined']}"
    )


@cli.command()
def discard(
    code: str | None = Code,
    provider: str | None = ProviderOpt,
    yes: bool = typer.Option(False, "--yes", help="discard every held record without asking"),
) -> None:
    """Delete held records for good."""
    if code is None and provider is None and not yes:
        typer.confirm("discard every held record?", abort=True)
    answer = in_transaction(
        lambda conn: discard_quarantine(conn, actor=COMMAND_LINE, code=code, provider=provider)
    )
    typer.echo(f"discarded {answer['discarded']}")
