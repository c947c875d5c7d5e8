"""`payfeed tokens create|list|revoke`."""

import typer

from app.cli.common import in_transaction
from schemas.records import Role
from store.tokens import create_token, list_tokens, revoke_token

cli = typer.Typer(help="API tokens (stored hashed; shown once).", no_args_is_help=True)


@cli.command()
def create(
    role: Role = typer.Option(..., help="provider, viewer or admin"),
    provider: str | None = typer.Option(None, help="the provider a provider token pushes for"),
) -> None:
    """Create a token and print it once, alone on the last line."""
    token = in_transaction(lambda conn: create_token(conn, role, provider))
    typer.echo(f"created a {role.value} token{f' for {provider}' if provider else ''}:")
    typer.echo(token)


@cli.command("list")
def list_() -> None:
    """List tokens (never their values)."""
    for row in in_transaction(list_tokens):
        revoked = f" revoked {row['revoked_at']:%Y-%m-%d %H:%M}" if row["revoked_at"] else ""
        typer.echo(f"{row['id']}\t{row['role']}\t{row['provider'] or '-'}{revoked}")


@cli.command()
def revoke(token_id: int) -> None:
    """Revoke a token by its id (from `tokens list`)."""
    in_transaction(lambda conn: revoke_token(conn, token_id))
    typer.echo(f"token {token_id} revoked")
