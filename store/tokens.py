"""API tokens: random, shown once, stored only as their SHA-256.

A token is 32 random bytes, so a plain hash is enough to make the stored value
useless to a reader of the table; lookups stay one indexed equality.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas.records import Role
from store.errors import BadRequest, NotFound
from store.tables import tokens

PREFIX = "pf_"


@dataclass(frozen=True)
class Principal:
    token_id: int
    role: Role
    provider: str | None

    @property
    def name(self) -> str:
        return f"token:{self.token_id}" + (f"({self.provider})" if self.provider else "")


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def create_token(conn: AsyncConnection, role: Role, provider: str | None) -> str:
    if (role == Role.PROVIDER) != bool(provider):
        raise BadRequest("bad_token_request", "a provider token needs --provider, and only it")
    token = PREFIX + secrets.token_urlsafe(32)
    await conn.execute(
        tokens.insert().values(token_hash=token_hash(token), role=role.value, provider=provider)
    )
    return token


async def authenticate(conn: AsyncConnection, token: str) -> Principal | None:
    row = (
        await conn.execute(
            select(tokens.c.id, tokens.c.role, tokens.c.provider).where(
                tokens.c.token_hash == token_hash(token), tokens.c.revoked_at.is_(None)
            )
        )
    ).first()
    return Principal(row.id, Role(row.role), row.provider) if row else None


async def list_tokens(conn: AsyncConnection) -> list[dict[str, object]]:
    rows = await conn.execute(
        select(
            tokens.c.id, tokens.c.role, tokens.c.provider, tokens.c.created_at, tokens.c.revoked_at
        ).order_by(tokens.c.id)
    )
    return [dict(row._mapping) for row in rows]


async def revoke_token(conn: AsyncConnection, token_id: int) -> None:
    done = await conn.execute(
        update(tokens)
        .where(tokens.c.id == token_id, tokens.c.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    if done.rowcount == 0:
        raise NotFound("unknown_token", f"no active token {token_id}")
