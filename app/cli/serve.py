"""`payfeed migrate` and `payfeed serve`."""

import asyncio
import logging

import typer
import uvicorn

from ingest.db import database_url
from ingest.migrate import upgrade
from ingest.settings import get_settings


def attach(cli: typer.Typer) -> None:
    cli.command()(migrate)
    cli.command()(serve)


def migrate() -> None:
    """Bring the database to the latest schema (idempotent)."""
    asyncio.run(upgrade(database_url(get_settings())))
    typer.echo("database is at the latest revision")


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    demo: bool = typer.Option(False, help="load the demo campaign into an empty database"),
    with_consumer: bool = typer.Option(False, help="also consume the Kafka topic"),
) -> None:
    """Serve the HTTP API (migrating first)."""
    from app.main import create_app

    settings = get_settings()
    logging.basicConfig(level=settings.log_level.upper())
    url = database_url(settings)
    asyncio.run(upgrade(url))
    if demo:
        from ingest.demo import load_demo

        loaded = asyncio.run(load_demo(url, settings))
        typer.echo(loaded)
    uvicorn.run(create_app(settings, url), host=host, port=port, log_level="info")
