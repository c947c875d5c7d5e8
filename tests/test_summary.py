"""Campaign summary (baseline and uplift) and concurrent batches."""

import asyncio
from datetime import date
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from campaign.campaigns import uplift
from ingest.rollups import verify_rollups
from tests.factories import enterprise_with_account, push, record


async def test_summary_with_baseline_and_uplift(
    client: httpx.AsyncClient, admin: dict[str, str], viewer: dict[str, str], provider_token: Any
) -> None:
    cmb = await provider_token("cmb")
    await enterprise_with_account(client, admin, provider="cmb", merchant_id="M1")
    await enterprise_with_account(client, admin, provider="cmb", merchant_id="M2", city="320100")
    records = [
        # Baseline (2023-08-10 .. 2023-09-08): net 300,000 fen.
        record("B1", amount_fen=200000, occurred_at="2023-08-10T00:00:00+08:00"),
        record("B2", amount_fen=100001, occurred_at="2023-09-08T23:59:59+08:00"),
        record("B3", kind="refund", amount_fen=1, occurred_at="2023-09-08T12:00:00+08:00"),
        # Campaign (2023-09-09 .. 2023-10-08): net 450,000 fen in two cities.
        record("C1", amount_fen=250000, occurred_at="2023-09-08T16:00:00Z"),
        record("C2", amount_fen=200000, merchant_id="M2", occurred_at="2023-10-08T23:00:00+08:00"),
        # After the campaign: in neither window.
        record("A1", amount_fen=999, occurred_at="2023-10-09T00:00:00+08:00"),
    ]
    assert (await push(client, cmb, "b1", records)).json()["inserted"] == 6
    summary = (await client.get("/v1/campaigns/2023/summary", headers=viewer)).json()
    assert summary["first_day"] == "2023-09-09" and summary["last_day"] == "2023-10-08"
    assert summary["measures"]["net_fen"] == 450000
    assert summary["measures"]["txn_count"] == 2
    assert summary["baseline"] == {
        "first_day": "2023-08-10",
        "last_day": "2023-09-08",
        "measures": {
            "txn_count": 3,
            "payment_count": 2,
            "refund_count": 1,
            "gross_fen": 300001,
            "refund_fen": 1,
            "net_fen": 300000,
            "payer_count": 0,
        },
    }
    assert (summary["active_cities"], summary["active_enterprises"]) == (2, 2)
    assert summary["uplift_fen"] == 150000
    assert summary["uplift_pct"] == 50.0
    missing = await client.get("/v1/campaigns/1999/summary", headers=viewer)
    assert missing.status_code == 404


def test_uplift_scales_the_baseline_and_rounds_half_away_from_zero() -> None:
    assert uplift(1000, 333, 3, 2) == (1000 - 500, 500)  # 499.5 rounds to 500
    assert uplift(0, -333, 3, 2) == (500, -500)
    assert uplift(31, 31, 31, 30) == (31 - 32, 32)  # 32.03 rounds to 32


async def test_concurrent_batches_store_each_record_once(
    client: httpx.AsyncClient, admin: dict[str, str], provider_token: Any, engine: AsyncEngine
) -> None:
    cmb = await provider_token("cmb")
    await enterprise_with_account(client, admin, provider="cmb", merchant_id="M1")
    shared = [record(f"S{i}", amount_fen=100 + i) for i in range(300)]
    answers = await asyncio.gather(
        *(
            push(client, cmb, f"b{n}", [*shared, *(record(f"O{n}-{i}") for i in range(50))])
            for n in range(4)
        )
    )
    bodies = [a.json() for a in answers]
    assert sum(b["inserted"] for b in bodies) == 300 + 4 * 50
    assert sum(b["duplicates"] for b in bodies) == 3 * 300
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM records"))).scalar() == 500
        assert await verify_rollups(conn, date(2023, 9, 1), date(2023, 9, 30)) == []
