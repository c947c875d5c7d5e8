"""`payfeed report --campaign C --level province|city --format csv|xlsx|json`."""

import sys
from enum import StrEnum
from pathlib import Path

import orjson
import typer

from app.cli.common import in_transaction
from campaign.report_files import report_csv, report_xlsx
from campaign.reports import campaign_report


class Level(StrEnum):
    PROVINCE = "province"
    CITY = "city"


class Format(StrEnum):
    CSV = "csv"
    XLSX = "xlsx"
    JSON = "json"


def attach(cli: typer.Typer) -> None:
    cli.command()(report)


def report(
    campaign: str = typer.Option("2023", help="campaign code"),
    level: Level = typer.Option(Level.PROVINCE, help="province or city"),
    format: Format = typer.Option(Format.CSV, help="csv, xlsx or json"),
    output: Path | None = typer.Option(None, help="write here instead of stdout"),
) -> None:
    """The campaign report per province or city, with the total row (the same
    figures as GET /v1/reports/{campaign})."""
    figures = in_transaction(lambda conn: campaign_report(conn, campaign, level.value))
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
