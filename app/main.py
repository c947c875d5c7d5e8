"""`create_app()`: the FastAPI application, one router per resource."""

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import Depends, FastAPI
from fastapi_offline import FastAPIOffline

from app import (
    audit,
    batches,
    campaigns,
    errors,
    feeds,
    health,
    openapi,
    public,
    public_page,
    publications,
    quarantine,
    registry,
    reports,
    rollups,
    submissions,
)
from app.answers import AnswerCache, CachedAnswers
from app.large_bodies import LargeBodyGate
from app.parameters import refuse_unknown_query_parameters
from app.request_checks import RequestChecks
from app.schedule import publish_on_schedule
from campaign.publications import parse_interval
from ingest.consumer import RecordConsumer
from ingest.payers import compact_continuously
from ingest.pipeline import Pipeline
from store.db import create_engine, database_url, leave_embedded
from store.settings import Settings, get_settings

DESCRIPTION = """
payfeed collects payment records of the 百城万企促消费 campaign from banks and payment
institutions, normalises them to one data standard and rolls them up per city and day.

Amounts are integer fen. Days are Asia/Shanghai dates. Authenticate with
`Authorization: Bearer <token>` (`payfeed tokens create`).
"""


def create_app(settings: Settings | None = None, url: str | None = None) -> FastAPI:
    settings = settings or get_settings()
    publish_every = parse_interval(settings.publish_every) if settings.publish_every else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        """The engines, the process's ingest pipeline, the payer compactor, and the
        consumer and scheduled publishing when asked for; all stopped again however
        the app ends."""
        app.state.engine = create_engine(
            url or database_url(settings), pool_timeout=settings.pool_timeout
        )
        if settings.read_database_url:
            app.state.read_engine = create_engine(
                settings.read_database_url, pool_timeout=settings.pool_timeout
            )
        app.state.pipeline = Pipeline(settings.resolved_secret())
        consuming = publishing = None
        compacting = asyncio.create_task(compact_continuously(app.state.engine))
        try:
            if app.state.with_consumer:
                app.state.consumer = RecordConsumer(settings, app.state.engine, app.state.pipeline)
                consuming = asyncio.create_task(app.state.consumer.run())
            if publish_every is not None:
                publishing = asyncio.create_task(
                    publish_on_schedule(app.state.engine, publish_every)
                )
            # What startup built (some 160,000 objects: the frameworks, the route
            # table, the reference data) lives as long as the process: out of the
            # cyclic collector's reach, whose every full pass walked it all and
            # stalled the process's requests for 50-180 ms (the p99 of cached
            # answers).
            gc.freeze()
            yield
        finally:
            compacting.cancel()
            with suppress(asyncio.CancelledError):
                await compacting
            if publishing is not None:
                publishing.cancel()
                with suppress(asyncio.CancelledError):
                    await publishing
            if consuming is not None:
                app.state.consumer.stop()
                await consuming
            await app.state.engine.dispose()
            if app.state.read_engine is not None:
                await app.state.read_engine.dispose()
            leave_embedded(settings)

    # Swagger UI and ReDoc from the assets of the fastapi-offline package, served
    # by payfeed itself: /docs works on a network with no way out.
    app = FastAPIOffline(
        title="payfeed",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        dependencies=[Depends(refuse_unknown_query_parameters)],
        swagger_ui_parameters={"persistAuthorization": True},
    )
    app.state.settings = settings
    app.state.with_consumer = False
    app.state.read_engine = None
    app.state.answers = AnswerCache()
    app.state.large_bodies = LargeBodyGate(settings.large_bodies)
    app.add_middleware(CachedAnswers)  # innermost: after the checks every request passes
    app.add_middleware(RequestChecks, max_body_bytes=settings.max_batch_bytes)
    errors.install(app)  # after RequestChecks: its middleware is the outermost
    for module in (
        batches,
        rollups,
        campaigns,
        reports,
        submissions,
        publications,
        registry,
        feeds,
        quarantine,
        audit,
        public,
        public_page,
        health,
    ):
        app.include_router(module.router)
    openapi.install(app)
    return app
