"""Reads on a real streaming replica (`PAYFEED_READ_DATABASE_URL`): dashboards
read the standby and see a batch once it has replayed it; writes and a
provider's own reads stay on the primary."""

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.answers import AS_OF_HEADER
from app.main import create_app
from ingest.pipeline import Pipeline
from schemas.records import Role
from store.db import create_engine
from store.migrate import upgrade
from store.settings import Settings
from store.tokens import create_token
from tests.factories import enterprise_with_account, push, record
from tests.standby import primary_and_standby

SUMMARY = "/v1/campaigns/2023/summary"
DEADLINE = 30.0


@pytest.fixture
async def replicated(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, AsyncEngine]]:
    """A client of an app whose writes go to a primary and whose dashboard reads
    go to its standby; and the standby's engine."""
    with primary_and_standby(tmp_path / "pair") as pair:
        await upgrade(pair.primary_url)
        settings = Settings(
            home=tmp_path / "home", secret_key="test-secret", read_database_url=pair.standby_url
        )
        app = create_app(settings, url="unused")
        app.state.engine = create_engine(pair.primary_url)
        app.state.read_engine = create_engine(pair.standby_url)
        app.state.pipeline = Pipeline(settings.resolved_secret())
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://payfeed") as client:
                yield client, app.state.read_engine
        finally:
            await app.state.engine.dispose()
            await app.state.read_engine.dispose()


async def token(client: httpx.AsyncClient, role: Role, provider: str | None = None) -> Any:
    engine: AsyncEngine = client._transport.app.state.engine  # type: ignore[attr-defined]
    async with engine.begin() as conn:
        return {"Authorization": f"Bearer {await create_token(conn, role, provider)}"}


async def net_when(client: httpx.AsyncClient, viewer: Any, expected: int) -> httpx.Response:
    """The summary once its net is `expected`, read through the replica."""
    deadline = time.monotonic() + DEADLINE
    while True:
        answer = await client.get(SUMMARY, headers=viewer)
        if answer.status_code == 200 and answer.json()["measures"]["net_fen"] == expected:
            return answer
        assert time.monotonic() < deadline, answer.text
        await asyncio.sleep(0.05)


async def test_dashboards_read_the_standby_once_it_has_replayed_a_batch(
    replicated: tuple[httpx.AsyncClient, AsyncEngine],
) -> None:
    client, standby = replicated
    async with standby.connect() as conn:
        assert (await conn.execute(text("SELECT pg_is_in_recovery()"))).scalar() is True
    admin = await token(client, Role.ADMIN)
    viewer = await token(client, Role.VIEWER)
    cmb = await token(client, Role.PROVIDER, "cmb")
    await enterprise_with_account(client, admin, provider="cmb", merchant_id="M1")
    pushed = await push(client, cmb, "b1", [record("T1", amount_fen=12345)])
    assert pushed.json()["inserted"] == 1
    first = await net_when(client, viewer, 12345)

    # Replay paused: the primary takes the batch and answers it (its own
    # read-your-writes), the dashboards still read the standby's older figures
    # and say how old they are.
    async with standby.connect() as conn:
        await conn.execute(text("SELECT pg_wal_replay_pause()"))
        await conn.commit()
    try:
        second = await push(client, cmb, "b2", [record("T2", amount_fen=7)])
        assert second.json()["inserted"] == 1
        again = await client.get("/v1/batches/b2", headers=cmb)
        assert again.status_code == 200 and again.json()["inserted"] == 1
        behind = await client.get(SUMMARY, headers=viewer)
        assert behind.json()["measures"]["net_fen"] == 12345
        assert behind.headers["etag"] == first.headers["etag"]
        as_of = datetime.fromisoformat(behind.headers[AS_OF_HEADER])
        still = await client.get(SUMMARY, headers=viewer)
        assert datetime.fromisoformat(still.headers[AS_OF_HEADER]) == as_of
    finally:
        async with standby.connect() as conn:
            await conn.execute(text("SELECT pg_wal_replay_resume()"))
            await conn.commit()
    caught_up = await net_when(client, viewer, 12345 + 7)
    assert caught_up.headers["etag"] != first.headers["etag"]
    assert datetime.fromisoformat(caught_up.headers[AS_OF_HEADER]) > as_of
    rollups = await client.get(
        "/v1/rollups", params={"from": "2023-09-01", "to": "2023-09-30"}, headers=viewer
    )
    assert rollups.json()["totals"]["net_fen"] == 12345 + 7
    assert AS_OF_HEADER in rollups.headers
