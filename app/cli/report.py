"""`payfeed report --campaign C --level province|city --format csv|xlsx|json`,
`payfeed report submit` and `payfeed report verify-submissions`."""

import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import orjson
import typer
from sqlalchemy.ext.asyncio import AsyncConnection

from app.cli.common import in_transaction
from campaign.report_files import report_csv, report_xlsx
from campaign.reports import campaign_report
from campaign.submissions import submit as submit_report
from campaign.submissions import verify_submissions
from store.principal import COMMAND_LINE
from store.scope import parse_region


class Level(StrEnum):
    PROVINCE = "province"
    CITY = "city"


class Format(StrEnum):
    CSV = "csv"
    XLSX = "xlsx"
    JSON = "json"


cli = typer.Typer(
    rich_markup_mode="markdown",
    help="Without a command: the campaign report per province or city, with the total row "
    "(the figures of GET /v1/reports/{campaign}). `submit` and `verify-submissions`: the "
    "provinces' submissions (报送).",
    invoke_without_command=True,
)


def attach(root: typer.Typer) -> None:
    root.add_typer(cli, name="report")


@cli.callback()
def report(
    context: typer.Context,
    campaign: str = typer.Option("2023", help="campaign code"),
    level: Level = typer.Option(Level.PROVINCE, help="province or city"),
    format: Format = typer.Option(Format.CSV, help="csv, xlsx or json"),
    output: Path | None = typer.Option(None, help="write here instead of stdout"),
) -> None:
    """The campaign report per province or city, with the total row (the same
    figures as GET /v1/reports/{campaign})."""
    if context.invoked_subcommand is not None:
        return
    figures = in_transaction(
        lambda conn: campaign_report(conn, campaign, level.value, now=datetime.now(UTC))
    )
    if format == Format.JSON:
        body = orjson.dumps(figures, option=orjson.OPT_INDENT_2) + b"\n"
    elif format == Format.CSV:
        body = report_csv(figures)
    else:
        body = report_xlsx(figures)
    if output is None:
        sys.stdout.buffer.write(body)
        sys.stdout.buffer.flush()
    else:
        output.write_bytes(body)
        typer.echo(f"wrote the {level.value} report of campaign {campaign} to {output}", err=True)


@cli.command()
def submit(
    campaign: str = typer.Option("2023", help="campaign code"),
    region: str = typer.Option(..., help="the province submitting, by its prefix (33)"),
    note: str = typer.Option("", help="what this submission is for or corrects"),
) -> None:
    """Submit a province's report as its next numbered, immutable submission."""

    async def work(conn: AsyncConnection) -> dict[str, object]:
        province = parse_region(region)
        if province is None or len(province) != 2:
            raise typer.BadParameter("--region is a province prefix, e.g. 33")
        return await submit_report(conn, campaign, province, COMMAND_LINE, note, datetime.now(UTC))

    done = in_transaction(work)
    report = done["report"]
    assert isinstance(report, dict)
    typer.echo(
        f"submitted {campaign} province {done['province']} #{done['number']}"
        f"{' (late)' if done['late'] else ''}: net_fen={report['total']['net_fen']} "
        f"sha256={done['sha256']}"
    )


@cli.command("verify-submissions")
def verify() -> None:
    """Recompute every submission's checksum; exit 1 listing the altered ones."""
    altered = in_transaction(verify_submissions)
    for row in altered:
        typer.echo(orjson.dumps(row).decode())
    if altered:
        typer.echo(f"{len(altered)} submissions were altered", err=True)
        raise typer.Exit(1)
    typer.echo("every submission matches its checksum")
