"""Hostile but fair input: never a 500, every refusal the JSON error body.

NUL and control characters, numbers and days beyond what the database holds,
repeated JSON keys, formula cells in exports, a starved pool, an unforeseen
error, a client that hangs up; every route of the app's own route table is
tried with them.
"""

import asyncio
import base64
import csv
import gzip
import io
import json
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.large_bodies import LargeBodyGate
from app.main import create_app
from campaign.report_files import report_csv, report_xlsx
from ingest.adapters import ReadOptions
from ingest.adapters import unionpay as unionpay_adapter
from ingest.pipeline import Pipeline
from store.db import create_engine
from store.settings import Settings
from tests.cli import run_payfeed
from tests.factories import enterprise_with_account, push, record, uscc

GOLDEN = Path(__file__).parent / "adapters" / "golden"


def app_on(engine: AsyncEngine, settings: Settings) -> FastAPI:
    """The app as the `client` fixture builds it, on `engine`."""
    app = create_app(settings, url="unused")
    app.state.engine = engine
    app.state.pipeline = Pipeline(settings.resolved_secret())
    return app


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) >= {"code", "message"}
    if code is not None:
        assert error["code"] == code, error


# --- text: NUL and control characters --------------------------------------------


async def test_nul_in_a_record_is_its_invalid_field_and_the_batch_goes_on(
    client: httpx.AsyncClient, admin: dict[str, str], provider_token: Any
) -> None:
    cmb = await provider_token("cmb")
    await enterprise_with_account(client, admin, provider="cmb", merchant_id="M1")
    records = [
        record("T1"),
        record("T2", merchant_id="M\u0000X"),
        record("T3", payer_ref="p\u0001"),
        record("T4", mcc="5\u00001"),
    ]
    response = await push(client, cmb, "nul-1", records)

    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["received"], answer["inserted"], answer["rejected"]) == (4, 1, 3)
    assert [(e["index"], e["code"], e["field"], e["message"]) for e in answer["errors"]] == [
        (1, "invalid_field", "merchant_id", "merchant_id holds a control character"),
        (2, "invalid_field", "payer_ref", "payer_ref holds a control character"),
        (3, "invalid_field", "mcc", "mcc holds a control character"),
    ]


async def test_nul_in_registry_rows_and_notes_is_refused_naming_the_field(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    enterprise = {"uscc": uscc(), "name": "杭州\u0000百货", "city": "330100", "kind": "retail"}
    response = await client.post("/v1/registry/enterprises", json=[enterprise], headers=admin)
    assert_error(response, 422, "invalid_registration")
    assert "name" in response.json()["error"]["message"]

    account = {"provider": "cmb", "merchant_id": "M\u0000", "uscc": enterprise["uscc"]}
    response = await client.post("/v1/registry/merchant-accounts", json=account, headers=admin)
    assert_error(response, 422, "invalid_registration")
    assert "merchant_id" in response.json()["error"]["message"]

    csv_body = f"uscc,name,city,kind,category\n{uscc()},A\x01B,330100,retail,other\n"
    response = await client.post(
        "/v1/registry/enterprises",
        content=csv_body.encode(),
        headers={**admin, "Content-Type": "text/csv"},
    )
    assert_error(response, 422, "invalid_registration")

    response = await client.post(
        "/v1/campaigns/2023/publications", json={"note": "a\u0000b"}, headers=admin
    )
    assert_error(response, 400, "invalid_request")
    assert "note" in response.json()["error"]["message"]


async def test_provider_codes_follow_their_pattern(
    client: httpx.AsyncClient, admin: dict[str, str], engine: AsyncEngine
) -> None:
    account = {"provider": "=cmd|' /C calc'!A0", "merchant_id": "M1", "uscc": uscc()}
    response = await client.post("/v1/registry/merchant-accounts", json=account, headers=admin)
    assert_error(response, 422, "invalid_registration")
    assert "provider" in response.json()["error"]["message"]


async def test_batch_ids_follow_their_pattern(
    client: httpx.AsyncClient, provider_token: Any
) -> None:
    cmb = await provider_token("cmb")
    response = await push(client, cmb, "a b", [record("T1")])
    assert_error(response, 400, "invalid_request")
    response = await client.get("/v1/batches/a%20b", headers=cmb)
    assert_error(response, 400, "invalid_request")


# --- every route from the app's route table ----------------------------------------


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    path_params: list[Any]
    query_params: list[Any]


def _routes() -> list[Route]:
    """Every API route of the app as mounted (prefixes applied)."""
    app = create_app(Settings(home=Path("unused"), secret_key="x"), url="unused")
    return [
        Route(
            sorted(context.methods or {"GET"})[0],
            context.path_format,
            context.original_route.dependant.path_params,
            context.original_route.dependant.query_params,
        )
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute)
    ]


def _path(route: Route, **given: str) -> str:
    path = route.path
    for param in route.path_params:
        path = path.replace("{" + param.name + "}", given.get(param.name, _sample(param)))
    return path


def _sample(param: Any) -> str:
    annotation = str(param.field_info.annotation)
    return "1" if "int" in annotation else "2023"


ROUTES = _routes()


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
async def test_every_route_refuses_nul_in_path_and_query(
    client: httpx.AsyncClient, admin: dict[str, str], route: Route
) -> None:
    method = route.method
    for param in route.path_params:
        response = await client.request(
            method, _path(route, **{param.name: "a%00b"}), headers=admin
        )
        assert_error(response, 400, "invalid_parameter")
        assert "path segment" in response.json()["error"]["message"]
    for param in route.query_params:
        name = param.alias or param.name
        url = _path(route) + f"?{name}=%00"
        response = await client.request(method, url, headers=admin)
        assert_error(response, 400, "invalid_parameter")
        assert name in response.json()["error"]["message"]


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
async def test_every_route_answers_overflowing_numbers_and_odd_days_without_a_5xx(
    client: httpx.AsyncClient, admin: dict[str, str], route: Route
) -> None:
    method = route.method
    odd = [
        "2147483648",
        "99999999999999999999",
        "-1",
        "1693526400",
        "2023-02-30",
        "0",
        "0001-01-01",
        "9999-12-31",
        "0001-01-01T00:00:00",
        "9999-12-31T23:59:59-12:00",
    ]
    for value in odd:
        for param in route.path_params:
            response = await client.request(
                method, _path(route, **{param.name: value}), headers=admin
            )
            assert response.status_code < 500, (value, response.text)
            assert "error" in response.json() or response.status_code < 400
        for param in route.query_params:
            url = _path(route) + f"?{param.alias or param.name}={value}"
            response = await client.request(method, url, headers=admin)
            assert response.status_code < 500, (value, response.text)


async def test_a_cursor_holding_a_nul_is_a_bad_cursor(
    client: httpx.AsyncClient, viewer: dict[str, str]
) -> None:
    cursor = base64.urlsafe_b64encode(b'["M\\u0000"]').decode()
    response = await client.get(
        "/v1/rollups",
        params={"from": "2023-09-09", "to": "2023-09-10", "dims": "enterprise"},
        headers=viewer,
    )
    assert response.status_code == 200, response.text
    response = await client.get(
        "/v1/rollups",
        params={
            "from": "2023-09-09",
            "to": "2023-09-10",
            "dims": "enterprise",
            "limit": "10",
            "cursor": cursor,
        },
        headers=viewer,
    )
    assert_error(response, 400, "bad_cursor")


PAGED = [r for r in ROUTES if any((p.alias or p.name) == "cursor" for p in r.query_params)]


@pytest.mark.parametrize("route", PAGED, ids=lambda r: f"{r.method} {r.path}")
async def test_every_paged_route_refuses_a_cursor_no_listing_gave(
    client: httpx.AsyncClient, admin: dict[str, str], route: Route
) -> None:
    """Keys of every length with a NUL (which PostgreSQL refuses in text) and
    numbers beyond a bigint (which no id reaches) are not cursors of any listing."""
    keys: list[list[Any]] = [["\u0000"] * n for n in (1, 2, 3)] + [[2**64 - 1], [-(2**63) - 1]]
    for key in keys:
        cursor = base64.urlsafe_b64encode(json.dumps(key).encode()).decode()
        response = await client.get(_path(route), params={"cursor": cursor}, headers=admin)
        assert_error(response, 400, "bad_cursor")


@pytest.mark.parametrize(
    ("path", "name", "value"),
    [
        ("/v1/feeds/coverage", "from", "0001-01-01"),
        ("/v1/feeds/coverage", "to", "9999-12-31"),
        ("/v1/feeds/reconciliation", "from", "9999-12-31"),
        ("/v1/feeds/reconciliation", "to", "1999-12-31"),
        ("/v1/quarantine", "from", "0001-01-01"),
        ("/v1/quarantine", "to", "9999-12-31"),
        ("/v1/audit", "from", "0001-01-01T00:00:00"),
        ("/v1/audit", "to", "9999-12-31T23:59:59-12:00"),
        ("/v1/audit", "from", "1999-12-31T23:59:59"),
    ],
)
async def test_days_and_times_of_feeds_quarantine_and_audit_stay_in_2000_to_2100(
    client: httpx.AsyncClient, admin: dict[str, str], path: str, name: str, value: str
) -> None:
    response = await client.get(path, params={name: value}, headers=admin)
    assert_error(response, 400, "invalid_request")
    assert response.json()["error"]["message"].startswith(f"query.{name}: ")
    assert "2000-01-01 to 2100-12-31" in response.json()["error"]["message"]
    edge = "2100-12-31" if value > "2" else "2000-01-01"
    response = await client.get(path, params={name: edge}, headers=admin)
    assert response.status_code == 200, response.text


async def test_numbers_beyond_integer_and_bigint_are_400(
    client: httpx.AsyncClient, admin: dict[str, str], viewer: dict[str, str]
) -> None:
    response = await client.get("/v1/campaigns/2023/publications/2147483648", headers=viewer)
    assert_error(response, 400, "invalid_request")
    response = await client.get(
        f"/v1/campaigns/2023/publications/{2**40}/diff/30315", headers=viewer
    )
    assert_error(response, 400, "invalid_request")
    response = await client.post("/v1/quarantine/replay", json={"ids": [2**63 + 1]}, headers=admin)
    assert_error(response, 400, "invalid_request")


async def test_days_are_dates_not_seconds_and_campaigns_stay_in_2000_to_2100(
    client: httpx.AsyncClient, admin: dict[str, str], viewer: dict[str, str]
) -> None:
    response = await client.get(
        "/v1/rollups", params={"from": "1693526400", "to": "2023-10-31"}, headers=viewer
    )
    assert_error(response, 400, "invalid_request")
    assert "from" in response.json()["error"]["message"]
    for first, last in (("0443-06-17", "0443-07-01"), ("0001-01-01", "9999-12-31")):
        body = {"name": "x", "first_day": first, "last_day": last}
        response = await client.put("/v1/campaigns/c1", json=body, headers=admin)
        assert_error(response, 422, "invalid_registration")
        assert "2000-01-01 to 2100-12-31" in response.json()["error"]["message"]
    body = {"name": "x", "first_day": "2050-01-01", "last_day": "2100-12-31"}
    response = await client.put("/v1/campaigns/c1", json=body, headers=admin)
    assert_error(response, 422, "invalid_registration")
    assert "the baseline would begin before 2000-01-01" in response.json()["error"]["message"]
    body = {"name": "x", "first_day": "2001-01-01", "last_day": "2001-12-31"}
    response = await client.put("/v1/campaigns/c1", json=body, headers=admin)
    assert response.status_code == 200, response.text
    assert response.json()["baseline_first_day"] == "2000-01-02"


async def test_a_leap_second_is_refused(
    client: httpx.AsyncClient, admin: dict[str, str], provider_token: Any
) -> None:
    cmb = await provider_token("cmb")
    await enterprise_with_account(client, admin, provider="cmb", merchant_id="M1")
    response = await push(
        client, cmb, "leap", [record("L1", occurred_at="2023-09-10T23:59:60+08:00")]
    )
    assert response.status_code == 200, response.text
    assert [(e["code"], e["field"]) for e in response.json()["errors"]] == [
        ("invalid_field", "occurred_at")
    ]


# --- repeated JSON keys --------------------------------------------------------------


async def test_repeated_json_keys_make_a_record_malformed_and_a_registration_400(
    client: httpx.AsyncClient, admin: dict[str, str], provider_token: Any
) -> None:
    cmb = await provider_token("cmb")
    await enterprise_with_account(client, admin, provider="cmb", merchant_id="M1")
    good = '{"txn_id": "D1", "kind": "payment", "amount_fen": 100, "currency": "CNY", '
    good += '"occurred_at": "2023-09-10T12:00:00+08:00", "merchant_id": "M1", "channel": "online"}'
    twice = good.replace('"amount_fen": 100,', '"amount_fen": 100, "amount_fen": 99999,')
    twice = twice.replace("D1", "D2")
    response = await client.post(
        "/v1/batches",
        content=f"[{good}, {twice}]".encode(),
        headers={**cmb, "X-Batch-Id": "dup", "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["inserted"], answer["rejected"]) == (1, 1)
    assert [(e["index"], e["code"], e["message"]) for e in answer["errors"]] == [
        (1, "malformed", "key 'amount_fen' appears twice in the record")
    ]

    body = b'[{"city": "330100", "city": "330200"}]'
    response = await client.post(
        "/v1/registry/cities", content=body, headers={**admin, "Content-Type": "application/json"}
    )
    assert_error(response, 400, "duplicate_key")
    body = b'{"ids": [1], "code": "conflict", "ids": [2]}'
    response = await client.post(
        "/v1/quarantine/discard",
        content=body,
        headers={**admin, "Content-Type": "application/json"},
    )
    assert_error(response, 400, "duplicate_key")
    assert response.json()["error"]["message"] == "key 'ids' appears twice in one object"


# --- errors: 401, 503, 500 -------------------------------------------------------


async def test_401_names_the_bearer_scheme(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/rollups", params={"from": "2023-09-09", "to": "2023-09-10"})
    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_an_exhausted_pool_is_503_with_retry_after(
    database_url: str, settings: Settings, engine: AsyncEngine, viewer: dict[str, str]
) -> None:
    small = create_engine(database_url, pool_size=1, max_overflow=0, pool_timeout=0.3)
    app = app_on(small, settings)
    transport = httpx.ASGITransport(app=app)
    try:
        async with (
            small.connect() as held,
            httpx.AsyncClient(transport=transport, base_url="http://payfeed") as client,
        ):
            await held.execute(text("SELECT 1"))
            response = await client.get(
                "/v1/rollups", params={"from": "2023-09-09", "to": "2023-09-10"}, headers=viewer
            )
        assert_error(response, 503, "database_unavailable")
        assert response.headers["retry-after"] == "5"
    finally:
        await small.dispose()


async def test_an_unforeseen_error_is_a_json_500_with_its_request_id_logged(
    engine: AsyncEngine, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    app = app_on(engine, settings)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("unforeseen")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    with caplog.at_level(logging.INFO):
        async with httpx.AsyncClient(transport=transport, base_url="http://payfeed") as client:
            response = await client.get("/boom")

    assert_error(response, 500, "internal")
    request_id = response.json()["error"]["request_id"]
    assert re.fullmatch("[0-9a-f]{32}", request_id)
    assert response.headers["x-request-id"] == request_id
    (logged,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert logged.request_id == request_id  # type: ignore[attr-defined]
    assert logged.exc_info is not None and "unforeseen" in str(logged.exc_info[1])


async def test_a_client_gone_mid_upload_is_logged_without_an_error(
    engine: AsyncEngine,
    settings: Settings,
    provider_token: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cmb = await provider_token("cmb")
    app = app_on(engine, settings)
    messages = [
        {"type": "http.request", "body": b'[{"txn_id": "T1"', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [(k.lower().encode(), v.encode()) for k, v in cmb.items()]
    headers += [(b"x-batch-id", b"gone"), (b"content-type", b"application/json")]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/batches",
        "raw_path": b"/v1/batches",
        "query_string": b"",
        "headers": headers,
        "server": ("payfeed", 80),
        "client": ("127.0.0.1", 1),
        "app": app,
    }
    with caplog.at_level(logging.INFO):
        await app(scope, receive, send)

    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("disconnected" in r.getMessage() for r in caplog.records)


async def test_a_csv_registration_with_stray_line_breaks_is_read_not_a_500(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    # Found by `make fuzz` (schemathesis, seed 20261127): csv refused a lone CR.
    body = b"a\nb\rc\xc2\x85d\x0be\x0cf\xe2\x80\xa8g\xe2\x80\xa9h\r\ni"
    response = await client.put(
        "/v1/campaigns/0", content=body, headers={**admin, "Content-Type": "text/csv"}
    )
    assert_error(response, 422, "invalid_registration")


async def test_large_bodies_beyond_the_gate_wait_then_get_503(
    engine: AsyncEngine, settings: Settings, provider_token: Any
) -> None:
    cmb = await provider_token("cmb")
    app = app_on(engine, settings)
    gate = app.state.large_bodies = LargeBodyGate(1, wait_seconds=0.2)
    packed = gzip.compress(b"{}")  # compressed: large until unpacked
    headers = {**cmb, "Content-Type": "application/gzip"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://payfeed") as client:
        async with gate.passage(packed):  # another large body is being read
            busy = await client.post(
                "/v1/batches?format=wechatpay",
                content=packed,
                headers={**headers, "X-Batch-Id": "g1"},
            )
            small = await push(client, cmb, "g2", [])
        after = await client.post(
            "/v1/batches?format=wechatpay",
            content=packed,
            headers={**headers, "X-Batch-Id": "g3"},
        )
    assert_error(busy, 503, "busy")
    assert busy.headers["retry-after"] == "5"
    assert small.status_code == 200, small.text
    assert_error(after, 400, "missing_columns")  # read once the gate is free


# --- the public page ----------------------------------------------------------------


async def test_the_public_page_forbids_scripts_and_sniffing(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert "script-src" not in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"


# --- formula cells in every export ------------------------------------------------


FORMULA = "=cmd|' /C calc'!A0"


async def test_rollup_csv_neutralises_a_formula_provider_name(
    client: httpx.AsyncClient, admin: dict[str, str], viewer: dict[str, str], engine: AsyncEngine
) -> None:
    # A provider stored before provider codes had a pattern.
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO tokens (token_hash, role, provider) VALUES ('\\x01', 'provider', :p)"
            ),
            {"p": FORMULA},
        )
        for table, enterprise in (("rollup_city_day", ""), ("rollup_enterprise_day", "e, ")):
            await conn.execute(
                text(
                    f"INSERT INTO {table} (day, city, {enterprise.replace('e', 'enterprise')}"
                    "category, channel, provider, payment_count, refund_count, gross_fen, "
                    f"refund_fen) VALUES ('2023-09-10', '330100', {enterprise.replace('e', ':e')}"
                    "'other', 'online', :p, 1, 0, 100, 0)"
                ),
                {"p": FORMULA, "e": uscc()},
            )
    response = await client.get(
        "/v1/rollups",
        params={"dims": "provider", "from": "2023-09-10", "to": "2023-09-10", "format": "csv"},
        headers=viewer,
    )
    assert response.status_code == 200, response.text
    lines = response.text.splitlines()
    assert lines[1].startswith("'=cmd|' /C calc'!A0,1,1,0,100,0,100")


def _report(name: str) -> dict[str, Any]:
    row = {
        "unit": "330100",
        "name": name,
        "cities": 1,
        "enterprises": 2,
        "activities": 0,
        "sessions": 0,
        "policies": 0,
        "net_fen": -1500,
        "baseline_net_fen": 1000,
        "uplift_fen": -2500,
        "uplift_pct": -250.0,
    }
    return {"campaign": "2023", "level": "city", "rows": [row], "total": {**row, "unit": "total"}}


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_report_and_publication_files_neutralise_formula_text_but_keep_numbers(
    start: str,
) -> None:
    report = _report(start + "1+2")
    rows = list(csv.reader(io.StringIO(report_csv(report).decode(), newline="")))
    assert rows[1][1] == "'" + start + "1+2"
    assert rows[1][7:11] == ["-1500", "1000", "-2500", "-250.0"]
    assert rows[1][11:] == [""] * 12  # no coverage kept: nothing said

    sheet = openpyxl.load_workbook(io.BytesIO(report_xlsx(report))).active
    assert sheet is not None
    assert str(sheet.cell(2, 2).value).replace("_x000D_", "\r") == "'" + start + "1+2"
    assert sheet.cell(2, 2).data_type == "s"
    assert sheet.cell(2, 8).value == -15.0 and sheet.cell(2, 8).data_type == "n"

    # Coverage text goes through the same neutraliser (a stored body is not trusted
    # to hold only valid provider codes).
    missing = [{"provider": start + "x", "day": "2023-09-12"}]
    coverage = {
        "from": "2023-09-09",
        "to": "2023-10-08",
        "provider_days": 30,
        "complete": 29,
        "pending": 0,
        "late": 0,
        "missing": missing,
        "suspect": [],
        "late_days": [],
        "providers": 1,
        "delivered": 0,
    }
    report = {**report, "coverage": coverage}
    rows = list(csv.reader(io.StringIO(report_csv(report).decode(), newline="")))
    assert rows[1][11] == "true" and rows[1][18] == "'" + start + "x 2023-09-12"
    sheet = openpyxl.load_workbook(io.BytesIO(report_xlsx(report))).active
    assert sheet is not None
    assert str(sheet.cell(2, 19).value).replace("_x000D_", "\r") == "'" + start + "x 2023-09-12"
    assert sheet.cell(2, 19).data_type == "s" and sheet.cell(2, 12).value is True


# --- UnionPay ZM line lengths ----------------------------------------------------


def test_zm_lines_of_396_to_608_bytes_are_read_with_missing_bytes_as_spaces() -> None:
    golden = (GOLDEN / "INN23091088ZM_777290058110048").read_bytes().split(b"\r\n")
    line = next(x for x in golden if len(x) == 608 and x[388:396].strip())
    cuts = [line[:607], line[:500].rstrip(b" "), line[:396], line[:395], line + b" " * 3]
    body = b"\r\n".join(cuts) + b"\r\n"

    batch = unionpay_adapter.read(body, ReadOptions(params={"settle_date": "2023-09-10"}))

    full = unionpay_adapter.read(line, ReadOptions(params={"settle_date": "2023-09-10"}))
    expected = full.frame.drop("index").to_dicts()[0]
    assert [r for r in batch.frame.drop("index").to_dicts()] == [expected] * 3
    assert [(e.index, e.code, e.message) for e in batch.malformed] == [
        (3, "malformed", "line is 395 bytes; a ZM line is 396 to 608"),
        (4, "malformed", "line is 611 bytes; a ZM line is 396 to 608"),
    ]


# --- the command line -----------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("tokens", "revoke", "99999999999999999999"),
        ("rollups", "verify", "--from", "2023-02-30"),
        ("rollups", "rebuild", "--to", "1693526400"),
        ("quarantine", "list", "--limit", "99999999999999999999"),
        ("audit", "--from", "0001-01-01"),
        ("audit", "--to", "9999-12-31T23:59:59-12:00"),
    ],
)
async def test_cli_bad_arguments_are_one_line_and_exit_2(
    database_url: str, tmp_path: Path, args: tuple[str, ...]
) -> None:
    done = await run_payfeed(database_url, tmp_path, *args)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines


# --- body before connection ---------------------------------------------------------


async def test_a_slow_upload_holds_no_connection(
    database_url: str,
    settings: Settings,
    engine: AsyncEngine,
    viewer: dict[str, str],
    provider_token: Any,
) -> None:
    cmb = await provider_token("cmb")
    small = create_engine(database_url, pool_size=2, max_overflow=0, pool_timeout=2)
    app = app_on(small, settings)
    started, release = asyncio.Event(), asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield b"["
        started.set()
        await release.wait()
        yield b"]"

    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://payfeed") as client:
            upload = asyncio.create_task(
                client.post(
                    "/v1/batches",
                    content=slow_body(),
                    headers={**cmb, "X-Batch-Id": "slow", "Content-Type": "application/json"},
                )
            )
            await asyncio.wait_for(started.wait(), 5)  # the body is half sent
            read = await client.get(
                "/v1/rollups", params={"from": "2023-09-09", "to": "2023-09-10"}, headers=viewer
            )
            assert read.status_code == 200, read.text
            release.set()
            assert (await upload).status_code == 200
    finally:
        await small.dispose()
