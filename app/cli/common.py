"""What every command shares: a database engine for one run, errors as messages."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from store.db import create_engine, database_url
from store.errors import PayfeedError
from store.settings import get_settings

T = TypeVar("T")


def with_engine(work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Run `work` with an engine on the configured database, disposed after; a
    `PayfeedError` becomes its message on stderr and exit status 2."""

    async def run() -> T:
        engine = create_engine(database_url(get_settings()))
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except PayfeedError as exc:
        typer.echo(f"error: {exc.code}: {exc.message}", err=True)
        raise typer.Exit(2) from None


def in_transaction(work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Run `work` in one transaction (see `with_engine`)."""

    async def transaction(engine: AsyncEngine) -> T:
        async with engine.begin() as conn:
            return await work(conn)

    return with_engine(transaction)
