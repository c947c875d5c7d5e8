"""PUT /v1/campaigns/{code}: windows, the default baseline, local extensions."""

from typing import Any

import httpx

from tests.factories import enterprise_with_account, push, record, register


async def test_put_creates_then_replaces_a_campaign(
    client: httpx.AsyncClient, admin: dict[str, str], viewer: dict[str, str]
) -> None:
    body = {"name": "金秋促消费", "first_day": "2024-09-01", "last_day": "2024-09-10"}
    created = await client.put("/v1/campaigns/2024", json=body, headers=admin)
    assert created.status_code == 200, created.text
    assert created.json() == {
        "code": "2024",
        "name": "金秋促消费",
        "slogan": "",
        "first_day": "2024-09-01",
        "last_day": "2024-09-10",
        # Ten days immediately before the first day.
        "baseline_first_day": "2024-08-22",
        "baseline_last_day": "2024-08-31",
        "time_zone": "Asia/Shanghai",
        # Provinces report a week after the last day.
        "report_due": "2024-09-17",
    }
    csv_body = (
        "name,slogan,first_day,last_day,baseline_first_day,baseline_last_day\n"
        "金秋促消费,乐享金秋,2024-09-01,2024-09-12,2023-09-01,2023-09-12\n"
    )
    replaced = await client.put(
        "/v1/campaigns/2024",
        content=csv_body.encode(),
        headers={**admin, "Content-Type": "text/csv"},
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["slogan"] == "乐享金秋"
    assert replaced.json()["last_day"] == "2024-09-12"
    assert replaced.json()["baseline_first_day"] == "2023-09-01"
    summary = (await client.get("/v1/campaigns/2024/summary", headers=viewer)).json()
    assert summary["baseline"]["last_day"] == "2023-09-12"

    backwards = {**body, "last_day": "2024-08-01"}
    refused = await client.put("/v1/campaigns/2024", json=backwards, headers=admin)
    assert refused.status_code == 422
    assert "last_day" in refused.json()["error"]["message"]
    overlapping = {**body, "baseline_last_day": "2024-09-05"}
    assert (
        await client.put("/v1/campaigns/2024", json=overlapping, headers=admin)
    ).status_code == 422
    assert (await client.put("/v1/campaigns/2024", json=body, headers=viewer)).status_code == 403
    assert (await client.put("/v1/campaigns/bad code", json=body, headers=admin)).status_code == 400


async def test_new_window_and_local_extension_are_honoured(
    client: httpx.AsyncClient, admin: dict[str, str], viewer: dict[str, str], provider_token: Any
) -> None:
    cmb = await provider_token("cmb")
    late = record("L1", amount_fen=700, occurred_at="2025-05-06T12:00:00+08:00")
    await enterprise_with_account(client, admin, provider="cmb", merchant_id="M1")
    before = (await push(client, cmb, "b0", [late])).json()
    assert before["errors"][0]["code"] == "outside_window"

    body = {"name": "五一消费季", "first_day": "2025-05-01", "last_day": "2025-05-05"}
    assert (await client.put("/v1/campaigns/2025", json=body, headers=admin)).status_code == 200
    cities = [
        {"city": "330100", "campaign": "2025", "last_day": "2025-05-07"},
        {"city": "320100", "campaign": "2025"},
    ]
    assert (await register(client, admin, "cities", cities)).status_code == 200
    await enterprise_with_account(client, admin, provider="cmb", merchant_id="M2", city="320100")
    records = [
        record("B1", amount_fen=1000, occurred_at="2025-04-28T12:00:00+08:00"),  # baseline
        record("C1", amount_fen=2000, occurred_at="2025-05-05T12:00:00+08:00"),
        late,  # inside Hangzhou's extension
        record("C2", merchant_id="M2", amount_fen=3000, occurred_at="2025-05-05T12:00:00+08:00"),
        record("X2", merchant_id="M2", amount_fen=5000, occurred_at="2025-05-06T12:00:00+08:00"),
    ]
    assert (await push(client, cmb, "b1", records)).json()["inserted"] == 5
    report = (await client.get("/v1/reports/2025", params={"level": "city"}, headers=viewer)).json()
    rows = {row["unit"]: row for row in report["rows"]}
    # Hangzhou counts 7 days against a 5-day baseline: 1000 × 7 / 5 = 1400.
    assert (rows["330100"]["net_fen"], rows["330100"]["uplift_fen"]) == (2700, 1300)
    assert rows["330100"]["uplift_pct"] == round(1300 * 100 / 1400, 2)
    # Nanjing keeps the campaign's last day: X2 is not counted.
    assert rows["320100"]["net_fen"] == 3000
    assert report["total"]["net_fen"] == 5700
    # The campaign summary keeps the campaign's own window.
    summary = (await client.get("/v1/campaigns/2025/summary", headers=viewer)).json()
    assert summary["measures"]["net_fen"] == 5000
