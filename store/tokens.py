"""API tokens: random, shown once, stored only as their SHA-256.

A token is 32 random bytes, so a plain hash is enough to make the stored value
useless to a reader of the table; lookups stay one indexed equality. Viewer and
admin tokens carry a region (`store.scope`); any token may expire.
"""

import hashlib
import re
import secrets
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas.records import LOCAL_TIME_ZONE, Role
from schemas.text import MAX_INTEGER, PROVIDER_PATTERN
from store.audit import record_change
from store.db import raw_connection
from store.errors import BadRequest, NotFound
from store.principal import COMMAND_LINE, Principal
from store.scope import Scope, parse_region
from store.tables import tokens

PREFIX = "pf_"
LAST_USED_EVERY = timedelta(minutes=1)
"""`last_used_at` is written at most this often per token, and never waited for."""


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def parse_expiry(text: str, now: datetime) -> datetime:
    """`30d`/`90d` (days from now) or a date `YYYY-MM-DD`: the token stops working
    when that day begins in Asia/Shanghai."""
    days = re.fullmatch(r"([1-9][0-9]{0,4})d", text.strip())
    if days:
        return now + timedelta(days=int(days.group(1)))
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise BadRequest(
            "bad_expiry", f"expiry {text!r} is neither <days>d (e.g. 90d) nor YYYY-MM-DD"
        ) from None
    expires = datetime.combine(day, time(), ZoneInfo(LOCAL_TIME_ZONE))
    if expires <= now:
        raise BadRequest("bad_expiry", f"expiry {text} is not in the future")
    return expires


async def create_token(
    conn: AsyncConnection,
    role: Role,
    provider: str | None = None,
    *,
    region: str | None = None,
    expires_at: datetime | None = None,
    actor: Principal = COMMAND_LINE,
) -> str:
    """A new token, recorded in the audit trail as created by `actor`."""
    if (role == Role.PROVIDER) != bool(provider):
        raise BadRequest("bad_token_request", "a provider token needs --provider, and only it")
    region = parse_region(region)
    if role == Role.PROVIDER and region is not None:
        raise BadRequest("bad_token_request", "provider tokens are national: no --region")
    if provider is not None and not re.fullmatch(PROVIDER_PATTERN, provider):
        raise BadRequest("bad_provider", f"a provider code matches {PROVIDER_PATTERN}")
    token = PREFIX + secrets.token_urlsafe(32)
    token_id = (
        await conn.execute(
            tokens.insert()
            .values(
                token_hash=token_hash(token),
                role=role.value,
                provider=provider,
                region=region,
                expires_at=expires_at,
            )
            .returning(tokens.c.id)
        )
    ).scalar_one()
    target = f"token:{token_id} {role.value} {Scope(region).key}" + (
        f" {provider}" if provider else ""
    )
    await record_change(conn, actor, "token.create", target, 1)
    return token


AUTHENTICATE = """
WITH live AS (
    SELECT id, role, provider, region FROM tokens
    WHERE token_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
), noted AS (
    UPDATE tokens SET last_used_at = now()
    WHERE id = (
        SELECT t.id FROM tokens t JOIN live USING (id)
        WHERE t.last_used_at IS NULL OR t.last_used_at < now() - $2::interval
        FOR UPDATE OF t SKIP LOCKED
    )
)
SELECT id, role, provider, region FROM live
"""
"""One round trip: every authenticated request makes it, so the lookup and the
noting of its use are one statement, sent straight to the driver (it is a whole
transaction of its own, and the driver spends a third of SQLAlchemy's time on it)."""


async def authenticate(conn: AsyncConnection, token: str) -> Principal | None:
    """The caller of a live token (not revoked, not expired), else None. Notes
    when the token was used, at most once a minute and skipping a row another
    request holds, so that no request ever waits for another's transaction."""
    pg = await raw_connection(conn)
    row = await pg.fetchrow(AUTHENTICATE, token_hash(token), LAST_USED_EVERY)
    if row is None:
        return None
    return Principal(row["id"], Role(row["role"]), row["provider"], row["region"])


async def list_tokens(conn: AsyncConnection) -> list[dict[str, Any]]:
    rows = await conn.execute(
        select(
            tokens.c.id,
            tokens.c.role,
            tokens.c.region,
            tokens.c.provider,
            tokens.c.created_at,
            tokens.c.expires_at,
            tokens.c.last_used_at,
            tokens.c.revoked_at,
        ).order_by(tokens.c.id)
    )
    return [dict(row._mapping) for row in rows]


async def revoke_token(
    conn: AsyncConnection, token_id: int, actor: Principal = COMMAND_LINE
) -> None:
    if not 1 <= token_id <= MAX_INTEGER:
        raise NotFound("unknown_token", f"no active token {token_id}")
    done = await conn.execute(
        update(tokens)
        .where(and_(tokens.c.id == token_id, tokens.c.revoked_at.is_(None)))
        .values(revoked_at=datetime.now(UTC))
    )
    if done.rowcount == 0:
        raise NotFound("unknown_token", f"no active token {token_id}")
    await record_change(conn, actor, "token.revoke", f"token:{token_id}", 1)
