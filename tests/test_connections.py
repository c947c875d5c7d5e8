"""Pooled connections the server has closed are replaced, not answered with."""

import asyncio

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from tests.test_answers import READS

TERMINATE_THE_OTHERS = """
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
"""


async def test_connections_the_server_closed_cost_no_request_an_error(
    client: httpx.AsyncClient, viewer: dict[str, str], database_url: str
) -> None:
    """As after a restart of PostgreSQL: every connection the pool holds is gone."""

    async def read_all() -> None:
        answers = await asyncio.gather(
            *(client.get(path, params=params, headers=viewer) for path, params in READS * 3)
        )
        assert [a.status_code for a in answers] == [200] * len(answers)

    await read_all()  # the pool now holds several idle connections
    admin = await asyncpg.connect(
        make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    try:
        assert await admin.fetchval(TERMINATE_THE_OTHERS) >= 2
    finally:
        await admin.close()
    await asyncio.sleep(0.2)
    await read_all()
