"""The campaign report as files: CSV for machines, XLSX for the people who file it.

Both hold the same figures as the JSON: the rows, then the total. CSV keeps the
field names and integer fen; the XLSX has a Chinese header, amounts in yuan with
two decimals and a frozen header row.

After the report's own fields, both carry its `coverage` (SPEC section 10) in
`COVERAGE_FIELDS`, the same on every line: a file is read row by row, filtered
and pasted elsewhere, and each row must still say that its figures are
provisional and which provider-days are missing, suspect or late. A report
without coverage (a publication made before coverage was kept) leaves those
cells empty: it cannot say.
"""

import io
from typing import Any

import xlsxwriter

from campaign.coverage import is_provisional
from campaign.reports import FIELDS
from store.spreadsheets import csv_text, neutralise

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
    "provisional": "初步数据",
    "coverage_from": "报送统计起始日",
    "coverage_to": "数据截至",
    "coverage_provider_days": "应报机构日数",
    "coverage_complete": "已报齐机构日数",
    "coverage_pending": "未到报送时限机构日数",
    "coverage_late": "迟报机构日数",
    "coverage_missing": "未报送机构日",
    "coverage_suspect": "数据存疑机构日",
    "coverage_late_days": "迟报机构日",
    "coverage_providers": "机构数",
    "coverage_delivered": "已报送机构数",
}
COVERAGE_FIELDS = (
    "provisional",
    "coverage_from",
    "coverage_to",
    "coverage_provider_days",
    "coverage_complete",
    "coverage_pending",
    "coverage_late",
    "coverage_missing",
    "coverage_suspect",
    "coverage_late_days",
    "coverage_providers",
    "coverage_delivered",
)
"""`provisional`, then the report's `coverage` field by field (`coverage_<key>`);
its lists of provider-days as `provider day` pairs joined by `; ` (an empty
list an empty cell)."""
COLUMNS = (*FIELDS, *COVERAGE_FIELDS)
assert tuple(HEADER_ZH) == COLUMNS

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
    "provisional": "flag",
    "coverage_from": "text",
    "coverage_to": "text",
    "coverage_provider_days": "count",
    "coverage_complete": "count",
    "coverage_pending": "count",
    "coverage_late": "count",
    "coverage_missing": "text",
    "coverage_suspect": "text",
    "coverage_late_days": "text",
    "coverage_providers": "count",
    "coverage_delivered": "count",
}
assert tuple(KINDS) == COLUMNS
NUMBER_FORMATS = {
    "money": "#,##0.00",
    "percent": "0.00",
    "count": "#,##0",
    "text": "@",
    "flag": "General",
}
SHEET_NAMES = {"province": "分省", "city": "分城市"}


def coverage_cells(coverage: dict[str, Any] | None) -> dict[str, Any]:
    """The `COVERAGE_FIELDS` of a report's coverage (all empty without one)."""
    if coverage is None:
        return dict.fromkeys(COVERAGE_FIELDS)

    def listed(entries: list[dict[str, Any]]) -> str | None:
        return "; ".join(f"{d['provider']} {d['day']}" for d in entries) or None

    return {
        "provisional": is_provisional(coverage),
        "coverage_from": str(coverage["from"]),
        "coverage_to": str(coverage["to"]),
        "coverage_provider_days": coverage["provider_days"],
        "coverage_complete": coverage["complete"],
        "coverage_pending": coverage["pending"],
        "coverage_late": coverage["late"],
        "coverage_missing": listed(coverage["missing"]),
        "coverage_suspect": listed(coverage["suspect"]),
        "coverage_late_days": listed(coverage["late_days"]),
        "coverage_providers": coverage["providers"],
        "coverage_delivered": coverage["delivered"],
    }


def _lines(report: dict[str, Any]) -> list[dict[str, Any]]:
    coverage = coverage_cells(report.get("coverage"))
    return [{**line, **coverage} for line in (*report["rows"], report["total"])]


def report_csv(report: dict[str, Any]) -> bytes:
    """`provisional` is written `true` or `false`, as in JSON."""
    lines = [{**line, "provisional": _json_flag(line["provisional"])} for line in _lines(report)]
    return csv_text(COLUMNS, lines).encode()


def _json_flag(value: bool | None) -> str | None:
    return None if value is None else str(value).lower()


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
    for col, name in enumerate(COLUMNS):
        sheet.write_string(0, col, HEADER_ZH[name], header)
        sheet.set_column(col, col, 12 if KINDS[name] == "text" else 16)
    lines = _lines(report)
    for row, line in enumerate(lines, 1):
        total = row == len(lines)
        for col, name in enumerate(COLUMNS):
            value, kind = line[name], KINDS[name]
            cell_format = formats[kind, total]
            if value is None:
                sheet.write_blank(row, col, None, cell_format)
            elif kind == "text":
                sheet.write_string(row, col, neutralise(value), cell_format)
            elif kind == "flag":
                sheet.write_boolean(row, col, value, cell_format)
            elif kind == "money":
                sheet.write_number(row, col, value / 100, cell_format)
            else:
                sheet.write_number(row, col, value, cell_format)
    sheet.freeze_panes(1, 0)
    book.close()
    return out.getvalue()
