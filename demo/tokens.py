"""Tokens for trying the demo: one per role, and two regional ones (a provincial
viewer of 浙江 and a city admin of 杭州), kept under `PAYFEED_HOME` so that a
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

TOKENS: dict[str, tuple[Role, str | None]] = {
    "viewer": (Role.VIEWER, None),
    "admin": (Role.ADMIN, None),
    "provider": (Role.PROVIDER, None),
    "viewer:33": (Role.VIEWER, "33"),
    "admin:330100": (Role.ADMIN, "330100"),
}
"""The demo's tokens by name: role and region."""

ACTIVITY = (
    '{"city": "330100", "theme": "汽车消费节", "title": "西湖汽车节", '
    '"first_day": "2023-09-16", "last_day": "2023-09-17", "sessions": 3}'
)


async def demo_tokens(engine: AsyncEngine, settings: Settings) -> dict[str, str]:
    path = settings.home / "demo-tokens.json"
    kept: dict[str, str] = orjson.loads(path.read_bytes()) if path.exists() else {}
    tokens: dict[str, str] = {}
    async with engine.begin() as conn:
        for name, (role, region) in TOKENS.items():
            token = kept.get(name)
            if token is None or await authenticate(conn, token) is None:
                provider = DEMO_PROVIDER if role == Role.PROVIDER else None
                token = await create_token(conn, role, provider, region=region)
            tokens[name] = token
    if tokens != kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_bytes(orjson.dumps(tokens))
    return tokens


def regional_examples(base: str, tokens: dict[str, str]) -> list[str]:
    """One line per regional token: who it is and a request to try with it."""
    viewer, admin = tokens["viewer:33"], tokens["admin:330100"]
    return [
        f"  浙江省 viewer   curl -s '{base}/v1/reports/2023?level=city' "
        f'-H "Authorization: Bearer {viewer}"',
        f"  杭州市 admin    curl -s -X POST {base}/v1/registry/activities "
        f"-H \"Authorization: Bearer {admin}\" -H 'Content-Type: application/json' "
        f"-d '{ACTIVITY}'",
    ]
