"""The campaign report: figures equal to a recount of the records, per city
window (local extension included), with activities and policies; JSON, CSV,
XLSX and the command line agree."""

import csv
import io
from datetime import date, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import openpyxl
import orjson

from campaign.reports import FIELDS
from tests.cli import run_payfeed
from tests.factories import enterprise_with_account, push, record, register

FIRST, LAST = date(2023, 9, 9), date(2023, 10, 8)
BASELINE = (date(2023, 8, 10), date(2023, 9, 8))
EXTENDED = {"330200": date(2023, 10, 15)}  # Ningbo's local extension
PARTICIPATING = ("320100", "330100", "330200")  # Nanjing, Hangzhou, Ningbo; not Wenzhou
MERCHANT_CITY = {"M1": "330100", "M2": "330100", "M3": "330200", "M4": "320100", "M5": "330300"}

RECORDS = [
    # Hangzhou: baseline, campaign, a refund, after its window (00:30 local on 10-09).
    record("H1", merchant_id="M1", amount_fen=300000, occurred_at="2023-08-20T10:00:00+08:00"),
    record("H2", merchant_id="M2", amount_fen=500000, occurred_at="2023-09-10T10:00:00+08:00"),
    record("H3", kind="refund", merchant_id="M2", amount_fen=20000, original_txn_id="H2"),
    record("H4", merchant_id="M1", amount_fen=77700, occurred_at="2023-10-08T16:30:00Z"),
    # Ningbo: baseline, campaign, inside its extension, after it.
    record("N1", merchant_id="M3", amount_fen=100000, occurred_at="2023-09-01T09:00:00+08:00"),
    record("N2", merchant_id="M3", amount_fen=200000, occurred_at="2023-10-01T09:00:00+08:00"),
    record("N3", merchant_id="M3", amount_fen=50000, occurred_at="2023-10-15T23:59:59+08:00"),
    record("N4", merchant_id="M3", amount_fen=9900, occurred_at="2023-10-16T00:00:00+08:00"),
    # Nanjing: campaign only (no baseline: uplift_pct is null).
    record("J1", merchant_id="M4", amount_fen=123457, occurred_at="2023-09-30T20:00:00+08:00"),
    # Wenzhou does not take part: its sales are in no row.
    record("W1", merchant_id="M5", amount_fen=1000000, occurred_at="2023-09-15T12:00:00+08:00"),
]
ALIPAY = [record("A1", merchant_id="A1", amount_fen=10000, occurred_at="2023-09-20T12:00:00+08:00")]

ACTIVITIES = [
    {
        "city": "330100",
        "theme": "启动仪式",
        "title": "杭州启动仪式",
        "first_day": "2023-09-09",
        "last_day": "2023-09-09",
        "sessions": 1,
    },
    {
        "city": "330100",
        "theme": "汽车消费节",
        "title": "杭州汽车节",
        "first_day": "2023-09-15",
        "last_day": "2023-09-20",
        "sessions": 3,
    },
    {
        "city": "330200",
        "theme": "家电下乡",
        "title": "宁波家电节",
        "first_day": "2023-09-20",
        "last_day": "2023-10-15",
        "sessions": 5,
    },
]
POLICIES_CSV = (
    "unit,title,issued_on\n"
    "33,浙江省促消费十条,2023-09-01\n"
    "330100,杭州消费券,2023-09-05\n"
    "330102,杭州夜间经济,2023-09-06\n"  # a county code: counts for Hangzhou
    "320100,南京促消费措施,2023-09-07\n"
    "330300,温州消费券,2023-09-08\n"  # a non-participating city still counts for Zhejiang
)


def local_day(occurred_at: str) -> date:
    return datetime.fromisoformat(occurred_at).astimezone(ZoneInfo("Asia/Shanghai")).date()


def round_half_up(value: Fraction) -> int:
    sign = -1 if value < 0 else 1
    return sign * int(abs(value) + Fraction(1, 2))


def recount() -> dict[str, dict[str, Any]]:
    """Each participating city's figures straight from the records above."""
    cities: dict[str, dict[str, Any]] = {}
    for city in PARTICIPATING:
        last = EXTENDED.get(city, LAST)
        net = base = 0
        for r in [*RECORDS, *ALIPAY]:
            merchant = r["merchant_id"] if r["merchant_id"] != "A1" else "M1"
            if MERCHANT_CITY[merchant] != city:
                continue
            signed = r["amount_fen"] if r["kind"] == "payment" else -r["amount_fen"]
            day = local_day(r["occurred_at"])
            net += signed if FIRST <= day <= last else 0
            base += signed if BASELINE[0] <= day <= BASELINE[1] else 0
        days = (last - FIRST).days + 1
        scaled = round_half_up(Fraction(base * days, 30))
        cities[city] = {"net_fen": net, "baseline_net_fen": base, "scaled": scaled}
    return cities


async def load_scenario(
    client: httpx.AsyncClient, admin: dict[str, str], provider_token: Any
) -> None:
    cities = [
        {"city": c, **({"last_day": str(EXTENDED[c])} if c in EXTENDED else {})}
        for c in PARTICIPATING
    ]
    assert (await register(client, admin, "cities", cities)).status_code == 200
    enterprises = {}
    for merchant, city in MERCHANT_CITY.items():
        enterprises[merchant] = await enterprise_with_account(
            client, admin, provider="cmb", merchant_id=merchant, city=city
        )
    accounts = [{"provider": "alipay", "merchant_id": "A1", "uscc": enterprises["M1"]}]
    assert (await register(client, admin, "merchant-accounts", accounts)).status_code == 200
    assert (await register(client, admin, "activities", ACTIVITIES)).json() == {"registered": 3}
    again = [{**ACTIVITIES[1], "sessions": 4}]  # identified by city and title: an update
    assert (await register(client, admin, "activities", again)).status_code == 200
    policies = await client.post(
        "/v1/registry/policies",
        content=POLICIES_CSV.encode(),
        headers={**admin, "Content-Type": "text/csv"},
    )
    assert policies.json() == {"registered": 5}, policies.text
    cmb, alipay = await provider_token("cmb"), await provider_token("alipay")
    assert (await push(client, cmb, "b1", RECORDS)).json()["inserted"] == len(RECORDS)
    assert (await push(client, alipay, "b2", ALIPAY)).json()["inserted"] == 1


def pct(uplift: int, scaled: int) -> float | None:
    return None if scaled == 0 else round(uplift * 100 / scaled, 2)


async def test_report_equals_a_recount(
    client: httpx.AsyncClient, admin: dict[str, str], viewer: dict[str, str], provider_token: Any
) -> None:
    await load_scenario(client, admin, provider_token)
    expected = recount()
    assert expected["330100"]["net_fen"] == 500000 - 20000 + 10000
    assert expected["330200"] == {"net_fen": 250000, "baseline_net_fen": 100000, "scaled": 123333}

    response = await client.get("/v1/reports/2023", params={"level": "city"}, headers=viewer)
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["campaign"], report["level"], report["first_day"], report["last_day"]) == (
        "2023",
        "city",
        "2023-09-09",
        "2023-10-08",
    )
    counts = {"330100": (2, 2, 5, 2), "330200": (1, 1, 5, 0), "320100": (1, 0, 0, 1)}
    names = {"320100": "南京市", "330100": "杭州市", "330200": "宁波市"}
    assert [row["unit"] for row in report["rows"]] == ["320100", "330100", "330200"]
    for row in report["rows"]:
        figures = expected[row["unit"]]
        uplift = figures["net_fen"] - figures["scaled"]
        assert row == {
            "unit": row["unit"],
            "name": names[row["unit"]],
            "cities": 1,
            "enterprises": counts[row["unit"]][0],
            "activities": counts[row["unit"]][1],
            "sessions": counts[row["unit"]][2],
            "policies": counts[row["unit"]][3],
            "net_fen": figures["net_fen"],
            "baseline_net_fen": figures["baseline_net_fen"],
            "uplift_fen": uplift,
            "uplift_pct": pct(uplift, figures["scaled"]),
        }
    ningbo = report["rows"][2]
    assert (ningbo["uplift_fen"], ningbo["uplift_pct"]) == (126667, 102.7)
    assert report["rows"][0]["uplift_pct"] is None

    provinces = (
        await client.get("/v1/reports/2023", params={"level": "province"}, headers=viewer)
    ).json()
    zj = [expected["330100"], expected["330200"]]
    zj_uplift = sum(c["net_fen"] - c["scaled"] for c in zj)
    assert provinces["rows"] == [
        {
            "unit": "32",
            "name": "江苏省",
            "cities": 1,
            "enterprises": 1,
            "activities": 0,
            "sessions": 0,
            "policies": 1,
            "net_fen": 123457,
            "baseline_net_fen": 0,
            "uplift_fen": 123457,
            "uplift_pct": None,
        },
        {
            "unit": "33",
            "name": "浙江省",
            "cities": 2,
            "enterprises": 3,
            "activities": 3,
            "sessions": 10,
            "policies": 1 + 2 + 1,
            "net_fen": 490000 + 250000,
            "baseline_net_fen": 300000 + 100000,
            "uplift_fen": zj_uplift,
            "uplift_pct": pct(zj_uplift, 300000 + 123333),
        },
    ]
    all_uplift = zj_uplift + 123457
    total = {
        "unit": "total",
        "name": "合计",
        "cities": 3,
        "enterprises": 4,
        "activities": 3,
        "sessions": 10,
        "policies": 5,
        "net_fen": 863457,
        "baseline_net_fen": 400000,
        "uplift_fen": all_uplift,
        "uplift_pct": pct(all_uplift, 423333),
    }
    assert provinces["total"] == report["total"] == total

    as_csv = await client.get(
        "/v1/reports/2023", params={"level": "province", "format": "csv"}, headers=viewer
    )
    assert as_csv.headers["content-type"].startswith("text/csv")
    lines = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [{k: line[k] for k in FIELDS} for line in lines] == [
        {k: "" if v is None else str(v) for k, v in row.items()}
        for row in [*provinces["rows"], total]
    ]
    assert as_csv.text.splitlines()[0].startswith(
        "unit,name,cities,enterprises,activities,sessions,policies,net_fen,baseline_net_fen,"
        "uplift_fen,uplift_pct,provisional,coverage_from,"
    )
    # Every line carries the report's coverage (exact values: tests/test_feeds.py).
    (coverage,) = {tuple((k, v) for k, v in line.items() if k not in FIELDS) for line in lines}
    assert dict(coverage)["coverage_provider_days"] == str(provinces["coverage"]["provider_days"])

    as_xlsx = await client.get(
        "/v1/reports/2023", params={"level": "city", "format": "xlsx"}, headers=viewer
    )
    assert as_xlsx.status_code == 200
    check_xlsx(as_xlsx.content, report)


def check_xlsx(content: bytes, report: dict[str, Any]) -> None:
    sheet = openpyxl.load_workbook(io.BytesIO(content)).active
    assert sheet is not None
    assert sheet.freeze_panes == "A2"
    rows = [row[: len(FIELDS)] for row in sheet.iter_rows(values_only=True)]
    assert rows[0] == (
        "单位代码",
        "单位名称",
        "参与城市数",
        "参与企业数",
        "活动数",
        "活动场次",
        "出台政策数",
        "活动期销售额（元）",
        "基期销售额（元）",
        "拉动增量（元）",
        "增幅（%）",
    )
    assert len(rows) == 1 + len(report["rows"]) + 1
    for line, row in zip(rows[1:], [*report["rows"], report["total"]], strict=True):
        assert line == (
            row["unit"],
            row["name"],
            row["cities"],
            row["enterprises"],
            row["activities"],
            row["sessions"],
            row["policies"],
            row["net_fen"] / 100,
            row["baseline_net_fen"] / 100,
            row["uplift_fen"] / 100,
            row["uplift_pct"],
        )
    ningbo = next(r for r in sheet.iter_rows(min_row=2) if r[0].value == "330200")
    assert ningbo[7].value == 2500.0 and ningbo[7].number_format == "#,##0.00"
    assert ningbo[9].value == 1266.67


async def test_command_line_report_gives_the_same_figures(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    viewer: dict[str, str],
    provider_token: Any,
    database_url: str,
    tmp_path: Path,
) -> None:
    await load_scenario(client, admin, provider_token)
    http = (await client.get("/v1/reports/2023", params={"level": "city"}, headers=viewer)).json()
    done = await run_payfeed(
        database_url,
        tmp_path,
        "report",
        "--campaign",
        "2023",
        "--level",
        "city",
        "--format",
        "json",
    )
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout) == http
    target = tmp_path / "report.xlsx"
    done = await run_payfeed(
        database_url,
        tmp_path,
        "report",
        "--campaign",
        "2023",
        "--level",
        "city",
        "--format",
        "xlsx",
        "--output",
        str(target),
    )
    assert done.returncode == 0, done.stderr
    check_xlsx(target.read_bytes(), http)
    unknown = await run_payfeed(database_url, tmp_path, "report", "--campaign", "1999")
    assert unknown.returncode == 2 and b"unknown_campaign" in unknown.stderr


async def test_report_errors(client: httpx.AsyncClient, viewer: dict[str, str]) -> None:
    assert (await client.get("/v1/reports/1999", headers=viewer)).status_code == 404
    bad = await client.get("/v1/reports/2023", params={"level": "county"}, headers=viewer)
    assert bad.status_code == 400
    assert (await client.get("/v1/reports/2023")).status_code == 401
    empty = (await client.get("/v1/reports/2023", headers=viewer)).json()
    assert empty["rows"] == [] and empty["total"]["net_fen"] == 0
