"""`payfeed audit [--actor --action --from --to --limit]`."""

import orjson
import typer

from app.cli.common import in_transaction, parse_time
from store.audit import audit_rows, local


def attach(root: typer.Typer) -> None:
    root.command()(audit)


def audit(
    actor: int | None = typer.Option(None, help="a token id"),
    action: str | None = typer.Option(None, help="an action, or a prefix ending in '.'"),
    since: str | None = typer.Option(
        None, "--from", help="from this time (ISO 8601; local without an offset)"
    ),
    until: str | None = typer.Option(
        None, "--to", help="up to this time (ISO 8601; local without an offset)"
    ),
    limit: int = typer.Option(1000, help="at most this many rows"),
) -> None:
    """The audit trail, newest first, one JSON line per change."""
    first = local(parse_time(since, "--from")) if since else None
    last = local(parse_time(until, "--to")) if until else None
    rows = in_transaction(
        lambda conn: audit_rows(
            conn, actor=actor, action=action, since=first, until=last, limit=limit
        )
    )
    for row in rows:
        typer.echo(orjson.dumps(row).decode())
