"""What routes need, as `Annotated` aliases: a transaction, the caller, settings,
the process's ingest pipeline.

The caller (`Principal`) carries its region as a `Scope` (`who.scope`): routes
hand it to the queries and registrations of `campaign/`, which filter and check
by it, so that scoping is applied in one place rather than per route.

The connection dependency owns the transaction: it commits after the route
returns and before the answer is sent (read-your-writes), and rolls back on any
error, so a route never commits and a failed request leaves nothing behind. A GET
writes nothing that needs one (`connection`).
"""

from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ingest.pipeline import Pipeline
from schemas.records import Role
from store.errors import Forbidden, PayfeedError, Unauthorized
from store.principal import Principal
from store.settings import Settings
from store.tokens import authenticate


class DatabaseUnavailable(PayfeedError):
    status = 503


def engine_of(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.engine
    return engine


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def pipeline_of(request: Request) -> Pipeline:
    pipeline: Pipeline = request.app.state.pipeline
    return pipeline


def read_engine_of(request: Request) -> AsyncEngine:
    """The replica's engine when `PAYFEED_READ_DATABASE_URL` is set, else the primary's."""
    engine: AsyncEngine | None = request.app.state.read_engine
    return engine or engine_of(request)


@contextmanager
def unavailable_as_503() -> Iterator[None]:
    try:
        yield
    except (OSError, InterfaceError, OperationalError) as exc:
        raise DatabaseUnavailable("database_unavailable", "the database is unavailable") from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise DatabaseUnavailable(
                "database_unavailable", "the database is unavailable"
            ) from exc
        raise


@asynccontextmanager
async def transaction(request: Request) -> AsyncIterator[AsyncConnection]:
    """A connection in a transaction, committed when the block ends without error;
    for a route that must read its body before it takes a connection."""
    with unavailable_as_503():
        async with engine_of(request).begin() as conn:
            yield conn


async def connection(request: Request) -> AsyncIterator[AsyncConnection]:
    """The request's connection to the primary: a transaction for a request that
    may write; for a GET, which writes nothing but its token's last use (one
    statement), no transaction at all, which spares every read a BEGIN and a
    COMMIT (a cached dashboard answer is the token and the data version, two
    statements). Each statement sees what was committed when it began, as it would
    in a READ COMMITTED transaction; reads that must share one snapshot take
    `read_transaction`."""
    if request.method not in ("GET", "HEAD"):
        async with transaction(request) as conn:
            yield conn
        return
    with unavailable_as_503():
        async with outside_transaction(engine_of(request)) as conn:
            yield conn


@asynccontextmanager
async def outside_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A pooled connection on which every statement commits on its own."""
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn


@asynccontextmanager
async def read_transaction(request: Request) -> AsyncIterator[AsyncConnection]:
    """A REPEATABLE READ transaction on the read engine: one snapshot for
    everything an answer reads (the data version and the figures read with it in
    `app.answers`, every page of a streamed listing)."""
    with unavailable_as_503():
        async with read_engine_of(request).connect() as conn:
            await conn.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                yield conn


async def read_connection(request: Request) -> AsyncIterator[AsyncConnection]:
    async with read_transaction(request) as conn:
        yield conn


Conn = Annotated[AsyncConnection, Depends(connection, scope="function")]
ReadConn = Annotated[AsyncConnection, Depends(read_connection, scope="function")]
"""Dashboard and public reads: the replica when there is one. Authentication,
writes and a provider's own reads stay on `Conn` (the primary)."""
SettingsDep = Annotated[Settings, Depends(settings_of)]
PipelineDep = Annotated[Pipeline, Depends(pipeline_of)]


bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="A token from `payfeed tokens create` (`payfeed serve --demo` prints one "
    "per role).",
)
"""The `Authorization: Bearer <token>` header, declared as a security scheme so
that the API docs know it (Swagger UI's Authorize button); None when absent or
of another scheme, which is a 401 of ours, not FastAPI's 403."""
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


async def _caller(
    credentials: HTTPAuthorizationCredentials | None, conn: AsyncConnection
) -> Principal:
    if credentials is None or not credentials.credentials.strip():
        raise Unauthorized("unauthorized", "missing bearer token")
    found = await authenticate(conn, credentials.credentials.strip())
    if found is None:
        raise Unauthorized("unauthorized", "unknown, expired or revoked token")
    return found


async def principal(credentials: Credentials, conn: Conn) -> Principal:
    """The caller, looked up on the request's own connection (one per request)."""
    return await _caller(credentials, conn)


async def principal_before_body(request: Request, credentials: Credentials) -> Principal:
    """The caller, looked up on a connection that goes back to the pool at once:
    for a route that reads a long body before it takes its connection."""
    async with transaction(request) as conn:
        return await _caller(credentials, conn)


def require(
    *roles: Role, before_body: bool = False
) -> Callable[..., Coroutine[Any, Any, Principal]]:
    lookup = principal_before_body if before_body else principal

    async def check(who: Annotated[Principal, Depends(lookup)]) -> Principal:
        if who.role not in roles:
            allowed = " or ".join(r.value for r in roles)
            raise Forbidden("forbidden", f"this needs the {allowed} role")
        return who

    return check


async def national_admin(who: Annotated[Principal, Depends(require(Role.ADMIN))]) -> Principal:
    if not who.scope.national:
        raise Forbidden(
            "forbidden", f"this needs a national admin token, not one of {who.scope.describe()}"
        )
    return who


Provider = Annotated[Principal, Depends(require(Role.PROVIDER))]
UploadingProvider = Annotated[Principal, Depends(require(Role.PROVIDER, before_body=True))]
"""A provider whose route holds no connection while its body arrives."""
Viewer = Annotated[Principal, Depends(require(Role.VIEWER, Role.ADMIN))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
"""An admin of any region: what it changes is checked against `who.scope`."""
NationalAdmin = Annotated[Principal, Depends(national_admin)]
AnyCaller = Annotated[Principal, Depends(principal)]
