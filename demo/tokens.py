"""Tokens for trying the demo: one per role, kept under `PAYFEED_HOME` so that a
restarted `serve --demo` shows the same ones instead of minting more.

The file holds the tokens themselves (the database keeps only their hashes), so
it is written readable by its owner only; a token revoked meanwhile is replaced.
"""

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.records import Role
from store.settings import Settings
from store.tokens import authenticate, create_token

DEMO_PROVIDER = "cmb"
"""The provider the demo's provider token pushes for: one of the demo's four."""

ROLES = (Role.VIEWER, Role.ADMIN, Role.PROVIDER)


async def demo_tokens(engine: AsyncEngine, settings: Settings) -> dict[Role, str]:
    path = settings.home / "demo-tokens.json"
    kept: dict[str, str] = orjson.loads(path.read_bytes()) if path.exists() else {}
    tokens: dict[Role, str] = {}
    async with engine.begin() as conn:
        for role in ROLES:
            token = kept.get(role.value)
            if token is None or await authenticate(conn, token) is None:
                provider = DEMO_PROVIDER if role == Role.PROVIDER else None
                token = await create_token(conn, role, provider)
            tokens[role] = token
    if {r.value: t for r, t in tokens.items()} != kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_bytes(orjson.dumps({r.value: t for r, t in tokens.items()}))
    return tokens
