"""Rollups equal a recount of the stored records, whatever the batches."""

import io
import random
from datetime import date
from typing import Any

import httpx
import openpyxl
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ingest.rollups import verify_rollups
from tests.factories import enterprise_with_account, push, record

MERCHANTS = ["M1", "M2", "M3"]


def random_batch(rng: random.Random) -> list[dict[str, Any]]:
    """Up to 40 records over three days, with repeated txn_ids (duplicates and
    conflicts), unknown merchants, refunds and unlisted MCCs."""
    batch = []
    for _ in range(rng.randint(0, 40)):
        minute = rng.randrange(3 * 1440)
        batch.append(
            record(
                f"T{rng.randint(0, 60)}",
                kind=rng.choice(["payment", "refund"]),
                amount_fen=rng.randint(1, 10**9),
                occurred_at=f"2023-09-{9 + minute // 1440:02d}T{minute % 1440 // 60:02d}:"
                f"{minute % 60:02d}:00+08:00",
                merchant_id=rng.choice([*MERCHANTS, "UNKNOWN"]),
                channel=rng.choice(["online", "offline"]),
                mcc=rng.choice([None, "5812", "5411", "0000"]),
            )
        )
    return batch


async def recount(engine: AsyncEngine, dims: str) -> list[tuple[Any, ...]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                f"SELECT {dims}, count(*), sum(CASE WHEN kind = 'payment' THEN amount_fen "
                f"ELSE -amount_fen END) FROM records GROUP BY {dims} ORDER BY {dims}"
            )
        )
        return [tuple(r) for r in rows]


async def test_rollups_equal_a_recount_after_random_batches(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    viewer: dict[str, str],
    provider_token: Any,
    engine: AsyncEngine,
) -> None:
    cmb = await provider_token("cmb")
    for i, merchant in enumerate(MERCHANTS):
        await enterprise_with_account(
            client, admin, provider="cmb", merchant_id=merchant, city=["330100", "320100"][i % 2]
        )
    rng = random.Random(20230909)
    for round_ in range(25):
        for i in range(rng.randint(1, 3)):
            response = await push(client, cmb, f"b{round_}-{i}", random_batch(rng))
            assert response.status_code == 200, response.text
            answer = response.json()
            assert (
                answer["received"] == answer["inserted"] + answer["duplicates"] + answer["rejected"]
            )
        async with engine.connect() as conn:
            assert await verify_rollups(conn, date(2023, 1, 1), date(2024, 1, 1)) == []
        for dims in ("day", "city", "day, city, channel"):
            api = await client.get(
                "/v1/rollups",
                params={"dims": dims.replace(" ", ""), "from": "2023-09-01", "to": "2023-09-30"},
                headers=viewer,
            )
            keys = [d.strip() for d in dims.split(",")]
            got = [
                tuple(
                    [
                        *(date.fromisoformat(r[k]) if k == "day" else r[k] for k in keys),
                        r["txn_count"],
                        r["net_fen"],
                    ]
                )
                for r in api.json()["rows"]
            ]
            assert got == await recount(engine, dims)


async def test_verify_reports_a_tampered_rollup(
    client: httpx.AsyncClient, admin: dict[str, str], provider_token: Any, engine: AsyncEngine
) -> None:
    cmb = await provider_token("cmb")
    await enterprise_with_account(client, admin, provider="cmb", merchant_id="M1")
    await push(client, cmb, "b1", [record("T1"), record("T2", kind="refund", amount_fen=300)])
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE rollup_city_day SET gross_fen = gross_fen + 1"))
        differences = await verify_rollups(conn, date(2023, 9, 1), date(2023, 9, 30))
    assert len(differences) == 1
    assert differences[0]["table"] == "rollup_city_day"
    assert differences[0]["stored"]["gross_fen"] == 10001
    assert differences[0]["recount"]["gross_fen"] == 10000


async def test_empty_dims_give_one_grand_total_and_csv(
    client: httpx.AsyncClient, admin: dict[str, str], viewer: dict[str, str], provider_token: Any
) -> None:
    cmb = await provider_token("cmb")
    await enterprise_with_account(client, admin, provider="cmb", merchant_id="M1")
    await push(client, cmb, "b1", [record("T1"), record("T2", kind="refund", amount_fen=300)])
    params = {"from": "2023-09-01", "to": "2023-09-30"}
    total = (await client.get("/v1/rollups", params=params, headers=viewer)).json()
    assert total["rows"] == [
        {
            "txn_count": 2,
            "payment_count": 1,
            "refund_count": 1,
            "gross_fen": 10000,
            "refund_fen": 300,
            "net_fen": 9700,
            "payer_count": 0,
        }
    ]
    csv = await client.get(
        "/v1/rollups",
        params={**params, "dims": "province,provider", "format": "csv"},
        headers=viewer,
    )
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines() == [
        "province,provider,txn_count,payment_count,refund_count,gross_fen,refund_fen,net_fen,"
        "payer_count",
        "33,cmb,2,1,1,10000,300,9700,0",
    ]
    bad = await client.get("/v1/rollups", params={**params, "dims": "planet"}, headers=viewer)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "unknown_dim"


async def test_a_county_code_filters_its_city(
    client: httpx.AsyncClient, admin: dict[str, str], viewer: dict[str, str], provider_token: Any
) -> None:
    cmb = await provider_token("cmb")
    await enterprise_with_account(client, admin, provider="cmb", merchant_id="M1")
    await push(client, cmb, "b1", [record("T1")])
    params = {"from": "2023-09-01", "to": "2023-09-30", "dims": "city"}
    west_lake = await client.get("/v1/rollups", params={**params, "city": "330106"}, headers=viewer)
    assert [(r["city"], r["net_fen"]) for r in west_lake.json()["rows"]] == [("330100", 10000)]


async def test_the_window_defaults_to_the_campaign_and_xlsx_has_a_total_row(
    client: httpx.AsyncClient, admin: dict[str, str], viewer: dict[str, str], provider_token: Any
) -> None:
    cmb = await provider_token("cmb")
    await enterprise_with_account(client, admin, provider="cmb", merchant_id="M1")
    inside = [record("T1", occurred_at="2023-09-09T10:00:00+08:00", amount_fen=700)]
    inside += [record("T2", occurred_at="2023-10-08T22:00:00+08:00", amount_fen=300)]
    before = [record("T0", occurred_at="2023-09-08T23:59:00+08:00", amount_fen=5)]
    await push(client, cmb, "b1", inside + before)
    campaign = (await client.get("/v1/rollups?dims=day", headers=viewer)).json()
    assert (campaign["from"], campaign["to"]) == ("2023-09-09", "2023-10-08")
    assert [(r["day"], r["net_fen"]) for r in campaign["rows"]] == [
        ("2023-09-09", 700),
        ("2023-10-08", 300),
    ]
    named = (await client.get("/v1/rollups?campaign=2023&from=2023-09-08", headers=viewer)).json()
    assert (named["from"], named["to"], named["totals"]["net_fen"]) == (
        "2023-09-08",
        "2023-10-08",
        1005,
    )
    unknown = await client.get("/v1/rollups?campaign=1999", headers=viewer)
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "unknown_campaign")

    sheet = await client.get("/v1/rollups?dims=day&format=xlsx", headers=viewer)
    assert sheet.headers["content-type"] == (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    rows = list(openpyxl.load_workbook(io.BytesIO(sheet.content)).active.values)
    assert rows[0][:2] == ("day", "txn_count") and rows[0][-2:] == ("net_fen", "payer_count")
    assert [(r[0], r[-2]) for r in rows[1:]] == [
        ("2023-09-09", 700),
        ("2023-10-08", 300),
        ("total", 1000),
    ]
