"""Cells of every CSV and XLSX payfeed writes, safe to open in Excel or WPS.

A text cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is
read by spreadsheets as a formula (OWASP's CSV injection): a provider or an
enterprise named `=cmd|' /C calc'!A0` would run on an official's machine. Such
text is written with a leading `'`, which spreadsheets show as text. Numbers are
never touched: a negative uplift stays a number.
"""

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import xlsxwriter

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    """`value`, with a leading `'` when it is text a spreadsheet would evaluate."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_text(
    header: Sequence[str], rows: Iterable[Mapping[str, Any]], with_header: bool = True
) -> str:
    """The header (unless `with_header` is false: a later page of a stream) and the
    rows' values under it (other keys ignored), every cell neutralised."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180: a CR in a value is quoted
    if with_header:
        writer.writerow([neutralise(name) for name in header])
    writer.writerows([neutralise(row.get(name)) for name in header] for row in rows)
    return out.getvalue()


CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def xlsx_table(header: Sequence[str], rows: Iterable[Mapping[str, Any]], sheet: str) -> bytes:
    """One sheet: the header row (bold, frozen) and the rows' values under it, as
    they are (amounts stay integer fen, so that a sum in the sheet is the API's),
    text neutralised and never read as a formula."""
    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True, "strings_to_formulas": False})
    page = book.add_worksheet(sheet)
    page.write_row(0, 0, [neutralise(name) for name in header], book.add_format({"bold": True}))
    for index, row in enumerate(rows, 1):
        page.write_row(index, 0, [_cell(row.get(name)) for name in header])
    page.freeze_panes(1, 0)
    book.close()
    return out.getvalue()


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, int | float):
        return value
    return neutralise(str(value))
