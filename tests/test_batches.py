"""POST /v1/batches: exact outcomes, quarantine, idempotency, statuses."""

from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.factories import enterprise_with_account, push, record


async def scalar(engine: AsyncEngine, sql: str) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(text(sql))).scalar()


async def test_scenario_gives_exact_outcomes_and_rollups(
    client: httpx.AsyncClient, admin: dict[str, str], viewer: dict[str, str], provider_token: Any
) -> None:
    cmb = await provider_token("cmb")
    hz = await enterprise_with_account(
        client, admin, provider="cmb", merchant_id="M1", category="grocery"
    )
    # A chain store's account in Ningbo, enterprise registered in Hangzhou.
    await enterprise_with_account(
        client, admin, provider="cmb", merchant_id="M2", account={"city": "330200"}
    )
    records = [
        # 23:30 local on the 9th, given in UTC: day 2023-09-09 in Hangzhou.
        record("P1", amount_fen=12345, occurred_at="2023-09-09T15:30:00Z", mcc="5812"),
        # 00:30 local on the 10th, given in UTC on the 9th.
        record("P2", amount_fen=20000, occurred_at="2023-09-09T16:30:00Z"),
        # A refund of P1 crossing midnight: counts on the 10th.
        record(
            "R1",
            kind="refund",
            amount_fen=2345,
            occurred_at="2023-09-10T00:10:00+08:00",
            original_txn_id="P1",
            mcc="5812",
        ),
        record("C1", merchant_id="M2", amount_fen=5000, channel="online", mcc="5732"),
        record("P1", amount_fen=12345, occurred_at="2023-09-09T23:30:00+08:00", mcc="5812"),
        record("X1", merchant_id="NOPE"),
        record("B1", currency="USD"),
    ]
    response = await push(client, cmb, "b-1", records)
    assert response.status_code == 200, response.text
    # The next batch may go to another API process (see app.batches.push_batch).
    assert response.headers["connection"] == "close"
    answer = response.json()
    assert {
        k: answer[k] for k in ("received", "inserted", "duplicates", "rejected", "quarantined")
    } == {
        "received": 7,
        "inserted": 4,
        "duplicates": 1,
        "rejected": 2,
        "quarantined": 1,
    }
    assert answer["replayed"] is False and answer["control_totals"] is None
    assert [(e["index"], e["code"], e["txn_id"]) for e in answer["errors"]] == [
        (5, "unknown_merchant", "X1"),
        (6, "unsupported_currency", "B1"),
    ]

    rollups = await client.get(
        "/v1/rollups",
        params={"dims": "day,city,category", "from": "2023-09-09", "to": "2023-09-10"},
        headers=viewer,
    )
    assert rollups.status_code == 200, rollups.text
    rows = [
        (
            r["day"],
            r["city"],
            r["category"],
            r["txn_count"],
            r["gross_fen"],
            r["refund_fen"],
            r["net_fen"],
        )
        for r in rollups.json()["rows"]
    ]
    assert rows == [
        ("2023-09-09", "330100", "catering", 1, 12345, 0, 12345),
        ("2023-09-10", "330100", "catering", 1, 0, 2345, -2345),
        ("2023-09-10", "330100", "grocery", 1, 20000, 0, 20000),
        ("2023-09-10", "330200", "electronics", 1, 5000, 0, 5000),
    ]
    assert rollups.json()["totals"]["net_fen"] == 12345 - 2345 + 20000 + 5000
    by_enterprise = await client.get(
        "/v1/rollups",
        params={
            "dims": "enterprise",
            "from": "2023-09-09",
            "to": "2023-09-10",
            "channel": "offline",
        },
        headers=viewer,
    )
    assert [(r["enterprise"], r["net_fen"]) for r in by_enterprise.json()["rows"]] == [
        (hz, 12345 - 2345 + 20000)
    ]


async def test_same_instant_in_another_offset_is_a_duplicate_and_other_content_conflicts(
    client: httpx.AsyncClient, admin: dict[str, str], provider_token: Any, engine: AsyncEngine
) -> None:
    cmb = await provider_token("cmb")
    await enterprise_with_account(client, admin, provider="cmb", merchant_id="M1")
    first = await push(client, cmb, "b-1", [record("T1", occurred_at="2023-09-10T12:00:00+08:00")])
    assert first.json()["inserted"] == 1
    again = await push(
        client,
        cmb,
        "b-2",
        [
            record("T1", occurred_at="2023-09-10T04:00:00Z"),
            record("T1", occurred_at="2023-09-10T04:00:00Z", amount_fen=1),
        ],
    )
    answer = again.json()
    assert (
        answer["inserted"],
        answer["duplicates"],
        answer["rejected"],
        answer["quarantined"],
    ) == (0, 1, 1, 1)
    assert answer["errors"][0]["code"] == "conflict"
    assert await scalar(engine, "SELECT amount_fen FROM records WHERE txn_id = 'T1'") == 10000


async def test_replay_by_batch_id_and_409_on_another_body(
    client: httpx.AsyncClient, admin: dict[str, str], provider_token: Any, engine: AsyncEngine
) -> None:
    cmb = await provider_token("cmb")
    await enterprise_with_account(client, admin, provider="cmb", merchant_id="M1")
    body = [record("T1"), record("T2")]
    first = await push(client, cmb, "b-1", body)
    second = await push(client, cmb, "b-1", body)
    assert second.status_code == 200
    assert second.json() == {**first.json(), "replayed": True}
    other = await push(client, cmb, "b-1", [record("T3")])
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "batch_id_reused"
    assert await scalar(engine, "SELECT count(*) FROM records") == 2
    stored = await client.get("/v1/batches/b-1", headers=cmb)
    assert stored.json() == first.json()


async def test_every_rejection_code(
    client: httpx.AsyncClient, admin: dict[str, str], provider_token: Any
) -> None:
    cmb = await provider_token("cmb")
    await enterprise_with_account(client, admin, provider="cmb", merchant_id="M1")
    await push(client, cmb, "b-0", [record("T0")])
    cases = [
        ("malformed", None, 42),
        ("invalid_field", "amount_fen", record("A1", amount_fen=0)),
        ("invalid_field", "kind", record("A2", kind="void")),
        ("invalid_field", "txn_id", record("bad id")),
        ("invalid_field", "occurred_at", record("A3", occurred_at="2023-09-10 12:00:00")),
        ("invalid_field", "amount_fen", record("A4", amount_fen=12.5)),
        ("invalid_field", "mcc", record("A5", mcc="58")),
        ("invalid_field", "channel", record("A6", channel=None)),
        ("unsupported_currency", None, record("A7", currency="HKD")),
        ("future_time", None, record("A8", occurred_at="2099-01-01T00:00:00+08:00")),
        ("outside_window", None, record("A9", occurred_at="2023-01-01T00:00:00+08:00")),
        ("unknown_merchant", None, record("A10", merchant_id="ZZ")),
        ("conflict", None, record("T0", amount_fen=1)),
    ]
    answer = (await push(client, cmb, "b-1", [c[2] for c in cases])).json()
    assert [(e["index"], e["code"], e["field"]) for e in answer["errors"]] == [
        (i, code, field) for i, (code, field, _) in enumerate(cases)
    ]
    assert (answer["received"], answer["rejected"], answer["quarantined"]) == (13, 13, 2)


async def test_card_numbers_are_masked_in_quarantine(
    client: httpx.AsyncClient, admin: dict[str, str], provider_token: Any, engine: AsyncEngine
) -> None:
    cmb = await provider_token("cmb")
    await push(
        client,
        cmb,
        "b-1",
        [record("T1", merchant_id="4111111111111111", payer_ref="6222021234567890128")],
    )
    stored = await scalar(engine, "SELECT record::text FROM quarantine")
    assert "411111******1111" in stored
    assert "4111111111111111" not in stored
    assert "6222021234567890128" not in stored
    listed = await client.get("/v1/quarantine", headers=admin)
    assert listed.json()["total"] == 1


async def test_statuses(
    client: httpx.AsyncClient, admin: dict[str, str], viewer: dict[str, str], provider_token: Any
) -> None:
    cmb = await provider_token("cmb")
    ccb = await provider_token("ccb")
    ok = await push(client, cmb, "b-1", [record("T1")])
    assert ok.status_code == 200
    assert (
        await client.post("/v1/batches", json=[], headers={"X-Batch-Id": "x"})
    ).status_code == 401
    bad = await client.post(
        "/v1/batches", json=[], headers={"X-Batch-Id": "x", "Authorization": "Bearer nope"}
    )
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "unauthorized"
    assert (await push(client, viewer, "b-2", [])).status_code == 403
    assert (await client.get("/v1/batches/b-1", headers=ccb)).status_code == 403
    assert (await client.get("/v1/batches/b-1", headers=viewer)).status_code == 403
    assert (await client.get("/v1/batches/b-1", headers=admin)).status_code == 200
    assert (
        await client.get("/v1/rollups?from=2023-09-09&to=2023-09-09", headers=cmb)
    ).status_code == 403
    unknown = await client.post(
        "/v1/batches?format=visa", json=[], headers={**cmb, "X-Batch-Id": "b-3"}
    )
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "unknown_format"
    garbage = await client.post(
        "/v1/batches",
        content=b"{nope",
        headers={**cmb, "X-Batch-Id": "b-4", "Content-Type": "application/json"},
    )
    assert garbage.status_code == 400 and garbage.json()["error"]["code"] == "undecodable_body"
    xml = await client.post(
        "/v1/batches",
        content=b"<a/>",
        headers={**cmb, "X-Batch-Id": "b-5", "Content-Type": "application/xml"},
    )
    assert xml.status_code == 415
    no_id = await client.post("/v1/batches", json=[], headers=cmb)
    assert no_id.status_code == 400


async def test_413_on_size_and_count(
    client: httpx.AsyncClient, provider_token: Any, settings: Any
) -> None:
    cmb = await provider_token("cmb")
    limit = settings.max_batch_records
    settings.max_batch_records = 2
    try:
        many = await push(client, cmb, "b-1", [record("T1"), record("T2"), record("T3")])
    finally:
        settings.max_batch_records = limit
    assert many.status_code == 413
    big = await client.post(
        "/v1/batches",
        content=b" " * (settings.max_batch_bytes + 1),
        headers={**cmb, "X-Batch-Id": "b-2", "Content-Type": "application/json"},
    )
    assert big.status_code == 413 and big.json()["error"]["code"] == "body_too_large"


async def test_database_unavailable_is_503_with_retry_after(settings: Any) -> None:
    from app.main import create_app
    from store.db import create_engine

    app = create_app(settings, url="unused")
    app.state.engine = create_engine("postgresql://nobody@127.0.0.1:1/none")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://payfeed") as client:
        response = await push(client, {"Authorization": "Bearer pf_x"}, "b-1", [record("T1")])
        ready = await client.get("/readyz")
    await app.state.engine.dispose()
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["error"]["code"] == "database_unavailable"
    assert ready.status_code == 503


async def test_errors_are_capped_at_1000_but_counts_are_exact(
    client: httpx.AsyncClient, provider_token: Any
) -> None:
    cmb = await provider_token("cmb")
    bad = [record(f"T{i}", amount_fen=0) for i in range(1005)]
    answer = (await push(client, cmb, "b-1", bad)).json()
    assert (answer["received"], answer["rejected"]) == (1005, 1005)
    assert len(answer["errors"]) == 1000
    assert answer["errors"][-1]["index"] == 999
