"""The campaign report as files: CSV for machines, XLSX for the people who file it.

Both hold the same figures as the JSON: the rows, then the total. CSV keeps the
field names and integer fen; the XLSX has a Chinese header, amounts in yuan with
two decimals and a frozen header row.
"""

import io
from typing import Any

import xlsxwriter

from campaign.reports import FIELDS
from store.spreadsheets import csv_text, neutralise

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"

HEADER_ZH = {
    "unit": "单位代码",
    "name": "单位名称",
    "cities": "参与城市数",
    "enterprises": "参与企业数",
    "activities": "活动数",
    "sessions": "活动场次",
    "policies": "出台政策数",
    "net_fen": "活动期销售额（元）",
    "baseline_net_fen": "基期销售额（元）",
    "uplift_fen": "拉动增量（元）",
    "uplift_pct": "增幅（%）",
}
assert tuple(HEADER_ZH) == FIELDS

KINDS = {
    "unit": "text",
    "name": "text",
    "cities": "count",
    "enterprises": "count",
    "activities": "count",
    "sessions": "count",
    "policies": "count",
    "net_fen": "money",
    "baseline_net_fen": "money",
    "uplift_fen": "money",
    "uplift_pct": "percent",
}
assert tuple(KINDS) == FIELDS
NUMBER_FORMATS = {"money": "#,##0.00", "percent": "0.00", "count": "#,##0", "text": "@"}
SHEET_NAMES = {"province": "分省", "city": "分城市"}


def _lines(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [*report["rows"], report["total"]]


def report_csv(report: dict[str, Any]) -> bytes:
    return csv_text(FIELDS, _lines(report)).encode()


def report_xlsx(report: dict[str, Any]) -> bytes:
    """One sheet. Amounts are written as `fen / 100` — the double nearest the exact
    yuan amount, which Excel shows exactly with two decimals — never rounded
    through a float product."""
    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True})
    book.set_properties(
        {"title": f"百城万企促消费 {report['campaign']} 活动成效统计", "subject": "payfeed report"}
    )
    header = book.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1, "text_wrap": True})
    formats = {
        (kind, total): book.add_format({"num_format": number_format, "bold": total})
        for kind, number_format in NUMBER_FORMATS.items()
        for total in (False, True)
    }
    sheet = book.add_worksheet(SHEET_NAMES.get(report["level"], "报表"))
    for col, name in enumerate(FIELDS):
        sheet.write_string(0, col, HEADER_ZH[name], header)
        sheet.set_column(col, col, 12 if KINDS[name] == "text" else 16)
    lines = _lines(report)
    for row, line in enumerate(lines, 1):
        total = row == len(lines)
        for col, name in enumerate(FIELDS):
            value, kind = line[name], KINDS[name]
            cell_format = formats[kind, total]
            if value is None:
                sheet.write_blank(row, col, None, cell_format)
            elif kind == "text":
                sheet.write_string(row, col, neutralise(value), cell_format)
            elif kind == "money":
                sheet.write_number(row, col, value / 100, cell_format)
            else:
                sheet.write_number(row, col, value, cell_format)
    sheet.freeze_panes(1, 0)
    book.close()
    return out.getvalue()
