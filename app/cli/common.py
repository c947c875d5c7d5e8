"""What every command shares: a database engine for one run, errors as messages."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import NoReturn, TypeVar

import typer
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.exc import DataError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from schemas.text import FIRST_DAY, LAST_DAY, CampaignDay, CampaignTime
from store.db import create_engine, database_url
from store.errors import PayfeedError
from store.settings import get_settings

T = TypeVar("T")


def fail(message: str) -> NoReturn:
    """A bad argument: one line on stderr, exit status 2 (as a usage error)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def parse_day(value: str, option: str) -> date:
    """`YYYY-MM-DD` within the days payfeed counts (years 2000 to 2100)."""
    try:
        return TypeAdapter(CampaignDay).validate_python(value)
    except ValidationError:
        fail(f"{option} must be a day from {FIRST_DAY} to {LAST_DAY} as YYYY-MM-DD, got {value!r}")


def parse_time(value: str, option: str) -> datetime:
    """ISO 8601 (without an offset, local) on a day payfeed counts."""
    try:
        return TypeAdapter(CampaignTime).validate_python(value)
    except ValidationError:
        fail(f"{option} must be an ISO 8601 time from {FIRST_DAY} to {LAST_DAY}, got {value!r}")


def in_range(value: int, option: str, low: int, high: int) -> int:
    if not low <= value <= high:
        fail(f"{option} must be from {low} to {high}, got {value}")
    return value


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
        fail(f"{exc.code}: {exc.message}")
    except DataError as exc:  # a value the database cannot hold: still the caller's
        fail(f"invalid_argument: {str(exc.orig).splitlines()[0]}")


def in_transaction(work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Run `work` in one transaction (see `with_engine`)."""

    async def transaction(engine: AsyncEngine) -> T:
        async with engine.begin() as conn:
            return await work(conn)

    return with_engine(transaction)
