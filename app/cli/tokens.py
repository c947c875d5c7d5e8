"""`payfeed tokens create|list|revoke`."""

from datetime import UTC, datetime

import typer
from sqlalchemy.ext.asyncio import AsyncConnection

from app.cli.common import in_transaction
from schemas.records import Role
from store.scope import Scope, parse_region
from store.tokens import create_token, list_tokens, parse_expiry, revoke_token

cli = typer.Typer(
    rich_markup_mode="markdown",
    help="API tokens (stored hashed; shown once).",
    no_args_is_help=True,
)


@cli.command()
def create(
    role: Role = typer.Option(..., help="provider, viewer or admin"),
    provider: str | None = typer.Option(None, help="the provider a provider token pushes for"),
    region: str | None = typer.Option(
        None,
        help="viewer/admin: a province prefix (33) or a city code (330100); none is national",
    ),
    expires: str | None = typer.Option(
        None, help="30d, 90d (days from now) or YYYY-MM-DD (stops when that day begins)"
    ),
) -> None:
    """Create a token and print it once, alone on the last line."""

    async def work(conn: AsyncConnection) -> tuple[str, datetime | None, Scope]:
        expires_at = parse_expiry(expires, datetime.now(UTC)) if expires else None
        token = await create_token(conn, role, provider, region=region, expires_at=expires_at)
        return token, expires_at, Scope(parse_region(region))

    token, expires_at, scope = in_transaction(work)
    whose = f" for {provider}" if provider else f" of {scope.describe()}"
    until = f", expires {expires_at:%Y-%m-%d %H:%M %Z}" if expires_at else ""
    typer.echo(f"created a {role.value} token{whose}{until}:")
    typer.echo(token)


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value else "-"


@cli.command("list")
def list_() -> None:
    """List tokens (never their values): id, role, region, provider, created,
    expires, last used, revoked (times in UTC)."""
    typer.echo("id\trole\tregion\tprovider\tcreated\texpires\tlast_used\trevoked")
    for row in in_transaction(list_tokens):
        typer.echo(
            "\t".join(
                [
                    str(row["id"]),
                    row["role"],
                    Scope(row["region"]).key if row["role"] != Role.PROVIDER else "-",
                    row["provider"] or "-",
                    _when(row["created_at"]),
                    _when(row["expires_at"]),
                    _when(row["last_used_at"]),
                    _when(row["revoked_at"]),
                ]
            )
        )


@cli.command()
def revoke(token_id: int = typer.Argument(..., help="the token's id, from `tokens list`")) -> None:
    """Revoke a token by its id (from `tokens list`)."""
    in_transaction(lambda conn: revoke_token(conn, token_id))
    typer.echo(f"token {token_id} revoked")
