"""Fixtures: a real PostgreSQL (embedded by default, or PAYFEED_TEST_DATABASE_URL),
one fresh database per test session migrated with Alembic, emptied before each
test; an httpx client on the ASGI app; tokens for every role."""

import asyncio
import hashlib
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from app.main import create_app
from ingest.pipeline import Pipeline
from schemas.records import Role
from store.db import create_engine, embedded_url
from store.migrate import upgrade
from store.periods import CAMPAIGN_PERIODS
from store.settings import Settings
from store.tables import metadata
from store.tokens import create_token

KEEP = {"campaigns", "alembic_version"}


def pytest_configure(config: pytest.Config) -> None:
    """A temporary directory per checkout: pytest's shared /tmp/pytest-of-<user>
    keeps only the three latest runs of anyone, so a run from another checkout
    could delete this run's embedded database from under it."""
    if config.option.basetemp is None:
        checkout = hashlib.sha256(str(config.rootpath).encode()).hexdigest()[:10]
        config.option.basetemp = Path(tempfile.gettempdir()) / f"payfeed-tests-{checkout}"


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    given = os.environ.get("PAYFEED_TEST_DATABASE_URL")
    if given:
        return given
    return embedded_url(Settings(home=tmp_path_factory.mktemp("payfeed-home")))


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    """A database of our own on the server, so that a shared server stays clean."""
    name = f"payfeed_test_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(_dsn(server_url))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    asyncio.run(upgrade(url))
    yield url
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(home=tmp_path_factory.mktemp("home"), secret_key="test-secret")


@pytest.fixture(scope="session")
async def shared_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def seeded_campaigns(shared_engine: AsyncEngine) -> list[dict[str, Any]]:
    """The campaigns the migrations create, restored before each test."""
    async with shared_engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM campaigns"))).mappings().all()
    return [dict(row) for row in rows]


@pytest.fixture
async def engine(shared_engine: AsyncEngine, seeded_campaigns: list[dict[str, Any]]) -> AsyncEngine:
    """The test database, emptied (the seeded campaigns restored, their periods
    listed for totals as the migration lists them) for this test."""
    tables = [t.name for t in metadata.sorted_tables if t.name not in KEEP]
    async with shared_engine.begin() as conn:
        await conn.execute(
            text(f"TRUNCATE {', '.join(tables)}, campaigns RESTART IDENTITY CASCADE")
        )
        for row in seeded_campaigns:
            columns = ", ".join(row)
            values = ", ".join(f":{c}" for c in row)
            await conn.execute(text(f"INSERT INTO campaigns ({columns}) VALUES ({values})"), row)
        await conn.execute(text(f"INSERT INTO total_periods {CAMPAIGN_PERIODS}"))
    return shared_engine


@pytest.fixture
def pipeline(settings: Settings) -> Pipeline:
    """The test's ingest pipeline (its own payer-hash cache), shared by the app of
    `client` and whatever else the test drives."""
    return Pipeline(settings.resolved_secret())


@pytest.fixture
def app(engine: AsyncEngine, settings: Settings, pipeline: Pipeline) -> FastAPI:
    """The application on the test database (its route table is what some tests walk)."""
    application = create_app(settings, url="unused")
    application.state.engine = engine
    application.state.pipeline = pipeline
    return application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://payfeed") as client:
        yield client


async def _token(
    engine: AsyncEngine, role: Role, provider: str | None = None, region: str | None = None
) -> dict[str, str]:
    async with engine.begin() as conn:
        token = await create_token(conn, role, provider, region=region)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def admin(engine: AsyncEngine) -> dict[str, str]:
    return await _token(engine, Role.ADMIN)


@pytest.fixture
async def viewer(engine: AsyncEngine) -> dict[str, str]:
    return await _token(engine, Role.VIEWER)


@pytest.fixture
def provider_token(engine: AsyncEngine) -> Any:
    """`await provider_token("cmb")`: headers of a new provider token."""

    async def make(provider: str) -> dict[str, str]:
        return await _token(engine, Role.PROVIDER, provider)

    return make


@pytest.fixture
def regional_token(engine: AsyncEngine) -> Any:
    """`await regional_token(Role.VIEWER, "33")`: headers of a new token of a region."""

    async def make(role: Role, region: str) -> dict[str, str]:
        return await _token(engine, role, region=region)

    return make


@pytest.fixture(scope="session")
def artifacts() -> Path:
    path = Path(__file__).parent / "artifacts"
    path.mkdir(exist_ok=True)
    return path
