"""`payfeed migrate` and `payfeed serve`."""

import asyncio
import os
from datetime import UTC, datetime

import typer
import uvicorn

from app.cli.progress import progress_bar
from app.logs import configure_logging
from app.public_page import yuan
from campaign.campaigns import campaign_summary
from store.db import create_engine, database_url, embedded_log
from store.migrate import upgrade
from store.settings import Settings, get_settings


def attach(cli: typer.Typer) -> None:
    cli.command()(migrate)
    cli.command()(serve)


def migrate() -> None:
    """Bring the database to the latest schema (idempotent)."""
    asyncio.run(upgrade(database_url(get_settings())))
    typer.echo("database is at the latest revision")


async def _load_demo(url: str, settings: Settings, base: str) -> list[str]:
    """Load the demo (a progress bar meanwhile) and return the few lines a newcomer
    needs: the figures, a token per role with a request to try, where logs go."""
    from demo.campaign import load_demo
    from demo.tokens import DEMO_PROVIDER, demo_tokens, regional_examples

    engine = create_engine(url)
    try:
        with progress_bar("loading the demo campaign") as advance:
            loaded = await load_demo(engine, settings, advance)
        tokens = await demo_tokens(engine, settings)
        async with engine.connect() as conn:
            summary = await campaign_summary(conn, "2023", now=datetime.now(UTC))
    finally:
        await engine.dispose()
    measures = summary["measures"]
    pct = summary["uplift_pct"]
    curl = "curl -s '{base}{path}' -H \"Authorization: Bearer {token}\""
    tries = (
        ("viewer", "viewer", "/v1/campaigns/2023/summary"),
        ("admin", "admin", "/v1/quarantine?limit=5"),
        ("provider", f"provider ({DEMO_PROVIDER})", f"/v1/batches/demo-{DEMO_PROVIDER}-0"),
    )
    lines = [
        f"payfeed serves {base}  (API docs {base}/docs, public page {base}/)",
        loaded,
        f"campaign 2023 ({summary['first_day']} to {summary['last_day']}): net "
        f"{yuan(measures['net_fen'])} yuan from {measures['payment_count']} payments; uplift "
        f"{yuan(summary['uplift_fen'])} yuan"
        + ("" if pct is None else f" ({pct:+.2f}% over the baseline)"),
        f"tokens to try (kept in {settings.home / 'demo-tokens.json'}):",
        *(
            f"  {label:<16}{curl.format(base=base, path=path, token=tokens[role])}"
            for role, label, path in tries
        ),
        "regional tokens: a province's viewer reads its own cities, a city's admin registers "
        "its own:",
        *regional_examples(base, tokens),
    ]
    return lines


def log_lines(settings: Settings) -> list[str]:
    """Where the logs are: requests here, the embedded database's in the home."""
    lines = ["logs: requests below (JSON lines on stderr)"]
    if not settings.database_url:
        lines[0] += (
            f"; PostgreSQL in {settings.home / 'pgdata' / 'log'}, "
            f"its start and stop in {embedded_log(settings)}"
        )
    return lines


def serve(
    host: str = typer.Option("127.0.0.1", help="the address to listen on (0.0.0.0: every one)"),
    port: int = typer.Option(8000, help="the TCP port to listen on"),
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
    url = database_url(settings)
    asyncio.run(upgrade(url))
    if demo:
        base = f"http://{'localhost' if host in ('127.0.0.1', '0.0.0.0') else host}:{port}"
        for line in [*asyncio.run(_load_demo(url, settings, base)), *log_lines(settings)]:
            typer.echo(line)
    # JSON logging from here on: the migration and the demo's batches above are
    # summed up in the lines just printed rather than a log line each.
    configure_logging(settings.log_level)
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
