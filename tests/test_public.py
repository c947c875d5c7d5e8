"""GET /v1/public/summary: no token, the report's figures and how complete the
feeds behind them are, cached, nothing per enterprise or provider."""

import time
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from campaign.public import live_summary, running_campaign
from store.errors import NotFound
from tests.factories import enterprise_with_account, push, record, register


async def load(client: httpx.AsyncClient, admin: dict[str, str], provider_token: Any) -> list[str]:
    cities = ["330100", "330200", "320100", "110000"]
    assert (
        await register(client, admin, "cities", [{"city": c} for c in cities])
    ).status_code == 200
    cmb, alipay = await provider_token("cmb"), await provider_token("alipay")
    secrets = []
    for n, city in enumerate(cities):
        secrets.append(
            await enterprise_with_account(
                client, admin, provider="cmb", merchant_id=f"M{n}", city=city
            )
        )
    await enterprise_with_account(
        client, admin, provider="alipay", merchant_id="ALI-7", city="330200"
    )
    records = [
        record("T1", merchant_id="M0", amount_fen=10000, payer_ref="someone"),
        record("T2", merchant_id="M1", amount_fen=30000),
        record("T3", merchant_id="M2", amount_fen=20000),
        record("T4", merchant_id="M2", amount_fen=500, kind="refund"),
        record("T5", merchant_id="M1", amount_fen=1, occurred_at="2023-08-20T12:00:00+08:00"),
    ]
    assert (await push(client, cmb, "b1", records)).json()["inserted"] == 5
    assert (
        await push(client, alipay, "b2", [record("T6", merchant_id="ALI-7", amount_fen=7)])
    ).json()["inserted"] == 1
    return [*secrets, "cmb", "alipay", "ALI-7", "M0", "someone"]


async def test_public_summary_needs_no_token_and_shows_the_report(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    viewer: dict[str, str],
    provider_token: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    private = await load(client, admin, provider_token)
    response = await client.get("/v1/public/summary")
    assert response.status_code == 200, response.text
    summary = response.json()
    report = (await client.get("/v1/reports/2023", params={"level": "city"}, headers=viewer)).json()
    assert summary["campaign"] == "2023"  # over, but the latest that has begun
    assert (summary["first_day"], summary["last_day"], summary["days_so_far"]) == (
        "2023-09-09",
        "2023-10-08",
        30,
    )
    assert summary["measures"] == {
        "txn_count": 5,
        "payment_count": 4,
        "refund_count": 1,
        "gross_fen": 10000 + 30000 + 20000 + 7,
        "refund_fen": 500,
        "net_fen": report["total"]["net_fen"],
    }
    assert summary["measures"]["net_fen"] == 10000 + 30007 + 19500
    assert summary["top_cities"] == [
        {"city": "330200", "name": "宁波市", "net_fen": 30007},
        {"city": "320100", "name": "南京市", "net_fen": 19500},
        {"city": "330100", "name": "杭州市", "net_fen": 10000},
        {"city": "110000", "name": "北京市", "net_fen": 0},
    ]
    assert set(summary) == {
        "campaign",
        "first_day",
        "last_day",
        "days_so_far",
        "as_of",
        "measures",
        "top_cities",
        "provisional",
        "coverage",
    }
    # cmb and alipay delivered 09-10 only (cmb also a baseline day, 08-20): the week
    # after it is missing for both, and the later days, without a record, are
    # suspect (under a third of their usual day); counts and days, no provider named.
    assert summary["provisional"] is True
    assert summary["coverage"] == {
        "from": "2023-09-09",
        "to": "2023-10-08",
        "provider_days": 60,
        "complete": 3,
        "pending": 0,
        "missing": 14,
        "suspect": 43,
        "late": 2,
        "providers": 2,
        "delivered": 0,
        "missing_days": [f"2023-09-{d}" for d in range(11, 18)],
        "suspect_days": [
            "2023-09-09",
            *(f"2023-09-{d}" for d in range(18, 31)),
            *(f"2023-10-0{d}" for d in range(1, 9)),
        ],
    }
    for secret in private:
        assert secret not in response.text
    assert "enterprise" not in response.text
    assert response.headers["cache-control"].startswith("public, max-age=")
    assert 0 <= int(response.headers["cache-control"].rsplit("=", 1)[1]) <= 60

    cmb = await provider_token("cmb")
    await push(client, cmb, "b3", [record("T7", merchant_id="M0", amount_fen=99)])
    cached = (await client.get("/v1/public/summary")).json()
    assert cached == summary
    later = time.monotonic() + 61
    monkeypatch.setattr("app.public.time.monotonic", lambda: later)
    fresh = (await client.get("/v1/public/summary")).json()
    assert fresh["measures"]["net_fen"] == summary["measures"]["net_fen"] + 99
    assert fresh["as_of"] > summary["as_of"]


async def test_running_campaign_and_days_so_far(
    client: httpx.AsyncClient, admin: dict[str, str], engine: AsyncEngine
) -> None:
    body = {"name": "下一季", "first_day": "2023-12-01", "last_day": "2023-12-31"}
    assert (await client.put("/v1/campaigns/2023Q4", json=body, headers=admin)).status_code == 200
    async with engine.connect() as conn:
        assert await running_campaign(conn, date(2023, 9, 20)) == "2023"
        assert await running_campaign(conn, date(2023, 11, 1)) == "2023"
        assert await running_campaign(conn, date(2023, 12, 1)) == "2023Q4"
        with pytest.raises(NotFound):
            await running_campaign(conn, date(2023, 9, 8))
        # 2023-09-20 03:00 in UTC is already the 20th in Shanghai: day 12.
        during = await live_summary(conn, datetime(2023, 9, 19, 19, 0, tzinfo=UTC))
    assert (during["campaign"], during["days_so_far"], during["top_cities"]) == ("2023", 12, [])
