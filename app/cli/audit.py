"""`payfeed audit [--actor --action --from --to --limit]`."""

from datetime import datetime

import orjson
import typer

from app.cli.common import in_transaction
from store.audit import audit_rows, local


def attach(root: typer.Typer) -> None:
    root.command()(audit)


def audit(
    actor: int | None = typer.Option(None, help="a token id"),
    action: str | None = typer.Option(None, help="an action, or a prefix ending in '.'"),
    since: datetime | None = typer.Option(None, "--from", help="from this time (local)"),
    until: datetime | None = typer.Option(None, "--to", help="up to this time (local)"),
    limit: int = typer.Option(1000, help="at most this many rows"),
) -> None:
    """The audit trail, newest first, one JSON line per change."""
    rows = in_transaction(
        lambda conn: audit_rows(
            conn, actor=actor, action=action, since=local(since), until=local(until), limit=limit
        )
    )
    for row in rows:
        typer.echo(orjson.dumps(row).decode())
