"""What routes need, as `Annotated` aliases: a transaction, the caller, settings.

The connection dependency owns the transaction: it commits after the route
returns and before the answer is sent (read-your-writes), and rolls back on any
error, so a route never commits and a failed request leaves nothing behind.
"""

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from schemas.records import Role
from store.errors import Forbidden, PayfeedError, Unauthorized
from store.settings import Settings
from store.tokens import Principal, authenticate


class DatabaseUnavailable(PayfeedError):
    status = 503


def engine_of(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.engine
    return engine


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def connection(request: Request) -> AsyncIterator[AsyncConnection]:
    try:
        async with engine_of(request).begin() as conn:
            yield conn
    except (OSError, InterfaceError, OperationalError) as exc:
        raise DatabaseUnavailable("database_unavailable", "the database is unavailable") from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise DatabaseUnavailable(
                "database_unavailable", "the database is unavailable"
            ) from exc
        raise


Conn = Annotated[AsyncConnection, Depends(connection, scope="function")]
SettingsDep = Annotated[Settings, Depends(settings_of)]


async def principal(request: Request, conn: Conn) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("unauthorized", "missing bearer token")
    found = await authenticate(conn, token.strip())
    if found is None:
        raise Unauthorized("unauthorized", "unknown or revoked token")
    return found


def require(*roles: Role) -> Callable[..., Coroutine[Any, Any, Principal]]:
    async def check(who: Annotated[Principal, Depends(principal)]) -> Principal:
        if who.role not in roles:
            allowed = " or ".join(r.value for r in roles)
            raise Forbidden("forbidden", f"this needs the {allowed} role")
        return who

    return check


Provider = Annotated[Principal, Depends(require(Role.PROVIDER))]
Viewer = Annotated[Principal, Depends(require(Role.VIEWER, Role.ADMIN))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
AnyCaller = Annotated[Principal, Depends(principal)]
