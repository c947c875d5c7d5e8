"""Schema migrations (Alembic, in `migrations/`), run from code so that `payfeed
migrate`, the tests and `/readyz` share one definition of "migrated"."""

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncConnection

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(slug)s")
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("")).get_current_head()


async def upgrade(url: str) -> None:
    """Bring the database at `url` to the latest revision (idempotent)."""
    await asyncio.to_thread(command.upgrade, alembic_config(url), "head")


async def is_migrated(conn: AsyncConnection) -> bool:
    current = await conn.run_sync(
        lambda sync: MigrationContext.configure(sync).get_current_revision()
    )
    return current is not None and current == head_revision()
