"""`payfeed consume`: the Kafka consumer as a process of its own."""

import asyncio
import signal
from contextlib import suppress

import typer
from prometheus_client import start_http_server

from app.logs import configure_logging
from ingest.consumer import MAX_POLL_RECORDS, RecordConsumer
from ingest.payers import compact_continuously
from ingest.pipeline import Pipeline
from store.db import create_engine, database_url
from store.migrate import upgrade
from store.settings import Settings, get_settings

DB_TIMEOUTS = {"timeout": 10, "command_timeout": 120}
"""A database that stops answering mid-write fails the poll (which is then
retried) instead of holding its partitions forever."""


def attach(cli: typer.Typer) -> None:
    cli.command()(consume)


def consume(
    metrics_port: int | None = typer.Option(None, help="serve Prometheus /metrics on this port"),
    session_timeout: float = typer.Option(
        10.0, help="seconds after which the group hands a silent member's partitions to others"
    ),
    max_poll_records: int = typer.Option(
        MAX_POLL_RECORDS, min=1, help="messages per poll, stored in one transaction"
    ),
) -> None:
    """Consume the Kafka topic into the database until SIGTERM or SIGINT.

    Joins group PAYFEED_KAFKA_GROUP on PAYFEED_KAFKA_TOPIC (migrating the database
    first); on SIGTERM or SIGINT, stores and commits the polls in hand, leaves the
    group and exits 0."""
    settings = get_settings()
    configure_logging(settings.log_level)
    if not settings.kafka_bootstrap_servers:
        typer.echo("error: PAYFEED_KAFKA_BOOTSTRAP_SERVERS is not set", err=True)
        raise typer.Exit(2)
    url = database_url(settings)
    asyncio.run(upgrade(url))
    if metrics_port is not None:
        start_http_server(metrics_port, addr="127.0.0.1")
    asyncio.run(_consume(settings, url, int(session_timeout * 1000), max_poll_records))


async def _consume(
    settings: Settings, url: str, session_timeout_ms: int, max_poll_records: int
) -> None:
    engine = create_engine(url, connect_args=DB_TIMEOUTS)
    consumer = RecordConsumer(
        settings,
        engine,
        Pipeline(settings.resolved_secret()),
        session_timeout_ms=session_timeout_ms,
        max_poll_records=max_poll_records,
    )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, consumer.stop)
    compacting = asyncio.create_task(compact_continuously(engine))
    try:
        await consumer.run()
    finally:
        compacting.cancel()
        with suppress(asyncio.CancelledError):
            await compacting
        await engine.dispose()
