"""`payfeed migrate` and `payfeed serve`."""

import asyncio
import os

import typer
import uvicorn

from app.logs import configure_logging
from store.db import create_engine, database_url
from store.migrate import upgrade
from store.settings import get_settings


def attach(cli: typer.Typer) -> None:
    cli.command()(migrate)
    cli.command()(serve)


def migrate() -> None:
    """Bring the database to the latest schema (idempotent)."""
    asyncio.run(upgrade(database_url(get_settings())))
    typer.echo("database is at the latest revision")


async def _load_demo(url: str) -> str:
    from demo.campaign import load_demo

    engine = create_engine(url)
    try:
        return await load_demo(engine, get_settings())
    finally:
        await engine.dispose()


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    demo: bool = typer.Option(False, help="load the demo campaign into an empty database"),
    with_consumer: bool = typer.Option(False, help="also consume the Kafka topic"),
    workers: int = typer.Option(
        1, min=1, help="API processes (stateless; use the machine's cores under load)"
    ),
) -> None:
    """Serve the HTTP API (migrating first)."""
    from app.main import create_app

    if with_consumer and workers > 1:
        raise typer.BadParameter("with several workers, run `payfeed consume` beside them")

    settings = get_settings()
    configure_logging(settings.log_level)
    url = database_url(settings)
    asyncio.run(upgrade(url))
    if demo:
        typer.echo(asyncio.run(_load_demo(url)))
    if workers > 1:
        # Each worker's polars would start a thread per core: share the cores out
        # instead of oversubscribing them (the workers are spawned, so they read it).
        os.environ.setdefault("POLARS_MAX_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
        uvicorn.run(
            "app.main:create_app",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            log_level="info",
            log_config=None,
        )
        return
    app = create_app(settings, url)
    app.state.with_consumer = with_consumer
    uvicorn.run(app, host=host, port=port, log_level="info", log_config=None)
