"""Alembic environment: runs migrations over the async engine payfeed itself uses."""

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from store.db import create_engine
from store.tables import metadata

config = context.config


def run_with(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def run_online() -> None:
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    async with engine.connect() as connection:
        await connection.run_sync(run_with)
    await engine.dispose()


asyncio.run(run_online())
