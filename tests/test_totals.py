"""The exact totals kept at the grains dashboards read (`store.periods`,
`totals_city_day`): equal to a recount after batches, campaign changes, a
campaign change that meets a batch half way, and the migration that fills them."""

import asyncio
from datetime import date
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from campaign.figures import grain_for
from ingest.rollups import rebuild_rollups, verify_rollups
from store.migrate import upgrade
from store.periods import campaign_periods, keep_period_totals, listed_periods
from store.tables import (
    rollup_city_day,
    rollup_enterprise_day,
    totals_city_day,
    totals_enterprise_period,
)
from tests.factories import enterprise_with_account, push, record

EVERYTHING = (date(2023, 1, 1), date(2024, 12, 31))
WINDOW = {"from": "2023-09-09", "to": "2023-10-08"}


def spread(tag: str, merchant: str, days: list[int], month: int = 9) -> list[dict[str, Any]]:
    return [
        record(
            f"{tag}-{i}",
            merchant_id=merchant,
            amount_fen=100 + 7 * i,
            kind="refund" if i % 5 == 0 else "payment",
            occurred_at=f"2023-{month:02d}-{day:02d}T12:00:00+08:00",
            channel="online" if i % 2 else "offline",
        )
        for i, day in enumerate(days)
    ]


async def one_enterprise(
    client: httpx.AsyncClient, admin: dict[str, str], provider_token: Any, days: list[int]
) -> tuple[dict[str, str], str]:
    """A provider's headers and the code of its enterprise (merchant M1, Hangzhou),
    after a batch of `spread` records on those days of September."""
    cmb = await provider_token("cmb")
    code = await enterprise_with_account(client, admin, provider="cmb", merchant_id="M1")
    assert (await push(client, cmb, "b0", spread("A", "M1", days))).status_code == 200
    return cmb, code


async def recounted(engine: AsyncEngine, first: str, last: str) -> dict[str, tuple[int, int]]:
    """Each enterprise's records and net fen over the days, from the records."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT enterprise, count(*), sum(CASE kind WHEN 'payment' THEN amount_fen "
                "ELSE -amount_fen END) FROM records WHERE day BETWEEN :first AND :last "
                "GROUP BY enterprise"
            ),
            {"first": date.fromisoformat(first), "last": date.fromisoformat(last)},
        )
        return {enterprise: (int(n), int(net)) for enterprise, n, net in rows}


async def listed(
    client: httpx.AsyncClient, viewer: dict[str, str], first: str, last: str
) -> dict[str, tuple[int, int]]:
    params = {"dims": "enterprise", "from": first, "to": last}
    response = await client.get("/v1/rollups", params=params, headers=viewer)
    assert response.status_code == 200, response.text
    return {r["enterprise"]: (r["txn_count"], r["net_fen"]) for r in response.json()["rows"]}


async def differences(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        return await verify_rollups(conn, *EVERYTHING)


async def test_reads_take_the_smallest_grain_that_answers(engine: AsyncEngine) -> None:
    window = (date(2023, 9, 9), date(2023, 10, 8))
    async with engine.connect() as conn:
        assert await grain_for(conn, ["day", "city"], {}, *window) is totals_city_day
        assert await grain_for(conn, [], {"province": "33"}, *window) is totals_city_day
        assert await grain_for(conn, ["channel"], {}, *window) is rollup_city_day
        assert await grain_for(conn, ["enterprise"], {}, *window) is totals_enterprise_period
        # Not a campaign period, or finer than the enterprise: the enterprise-day grain.
        later = (date(2023, 9, 10), date(2023, 10, 8))
        assert await grain_for(conn, ["enterprise"], {}, *later) is rollup_enterprise_day
        assert (
            await grain_for(conn, ["enterprise"], {"channel": "online"}, *window)
            is rollup_enterprise_day
        )


async def test_listings_by_enterprise_add_up_over_windows_and_other_ranges(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    viewer: dict[str, str],
    provider_token: Any,
    engine: AsyncEngine,
) -> None:
    cmb = await provider_token("cmb")
    await enterprise_with_account(client, admin, provider="cmb", merchant_id="M1")
    await enterprise_with_account(client, admin, provider="cmb", merchant_id="M2", city="320100")
    # Baseline days (August), window days, and the window's last day.
    days = [28, 30, 9, 10, 10, 20]
    assert (await push(client, cmb, "b1", spread("A", "M1", days[2:]))).status_code == 200
    assert (await push(client, cmb, "b2", spread("B", "M2", days[2:5]))).status_code == 200
    assert (await push(client, cmb, "b3", spread("C", "M1", days[:2], 8))).status_code == 200
    assert (await push(client, cmb, "b4", spread("D", "M2", [8], 10))).status_code == 200

    for first, last in (
        ("2023-09-09", "2023-10-08"),
        ("2023-09-10", "2023-10-08"),
        ("2023-09-09", "2023-09-09"),
    ):
        expected = await recounted(engine, first, last)
        assert await listed(client, viewer, first, last) == expected, (first, last)
    assert len(await recounted(engine, "2023-09-09", "2023-10-08")) == 2
    summary = (await client.get("/v1/campaigns/2023/summary", headers=viewer)).json()
    assert summary["active_enterprises"] == 2
    assert summary["active_cities"] == 2
    assert await differences(engine) == []


async def test_a_new_window_is_summed_and_a_dropped_one_removed(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    viewer: dict[str, str],
    provider_token: Any,
    engine: AsyncEngine,
) -> None:
    # A refund of 100 on the 20th, payments of 107, 114 and 121 on the 21st to 23rd.
    _, code = await one_enterprise(client, admin, provider_token, [20, 21, 22, 23])
    body = {"name": "中秋", "first_day": "2023-09-21", "last_day": "2023-09-22"}
    assert (await client.put("/v1/campaigns/mid", json=body, headers=admin)).status_code == 200
    assert await listed(client, viewer, "2023-09-21", "2023-09-22") == {code: (2, 221)}

    moved = {**body, "last_day": "2023-09-23"}
    assert (await client.put("/v1/campaigns/mid", json=moved, headers=admin)).status_code == 200
    assert await listed(client, viewer, "2023-09-21", "2023-09-23") == {code: (3, 342)}
    async with engine.connect() as conn:
        periods = await conn.execute(
            text("SELECT DISTINCT first_day, last_day FROM totals_enterprise_period")
        )
        summed = {(first, last) for first, last in periods}
        wanted = await campaign_periods(conn)
    assert (date(2023, 9, 21), date(2023, 9, 23)) in summed
    assert (date(2023, 9, 21), date(2023, 9, 22)) not in summed | wanted
    assert summed <= wanted
    assert await differences(engine) == []


async def test_a_batch_meeting_a_new_window_half_way_counts_once(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    viewer: dict[str, str],
    provider_token: Any,
    engine: AsyncEngine,
) -> None:
    """A campaign change holds the period totals while it sums the new window from
    the enterprise-day rollups; a batch that has written those rollups meanwhile
    waits at its period totals, then reads the campaigns again and adds itself to
    the new window: counted once, neither missed nor twice."""
    cmb, _ = await one_enterprise(client, admin, provider_token, [20, 21])

    async with engine.begin() as change:
        await change.execute(
            text(
                "INSERT INTO campaigns (code, name, first_day, last_day, baseline_first_day, "
                "baseline_last_day) VALUES ('mid', '中秋', '2023-09-20', '2023-09-22', "
                "'2023-09-17', '2023-09-19')"
            )
        )
        await keep_period_totals(change)
        pushing = asyncio.create_task(push(client, cmb, "b1", spread("B", "M1", [21, 22])))
        for _ in range(400):
            async with engine.connect() as conn:
                waiting = await conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND query LIKE 'INSERT INTO totals_enterprise_period%'"
                    )
                )
                if waiting.scalar():
                    break
            await asyncio.sleep(0.025)
        else:
            raise AssertionError("the batch never waited for the campaign change")
    response = await asyncio.wait_for(pushing, 30)
    assert response.json()["inserted"] == 2
    assert await listed(client, viewer, "2023-09-20", "2023-09-22") == await recounted(
        engine, "2023-09-20", "2023-09-22"
    )
    assert await differences(engine) == []


async def test_the_migration_fills_the_totals_from_the_rollups(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    provider_token: Any,
    engine: AsyncEngine,
    database_url: str,
) -> None:
    cmb = await provider_token("cmb")
    await enterprise_with_account(client, admin, provider="cmb", merchant_id="M1")
    await enterprise_with_account(client, admin, provider="cmb", merchant_id="M2", city="320100")
    assert (await push(client, cmb, "b1", spread("A", "M1", [9, 10, 30]))).status_code == 200
    assert (await push(client, cmb, "b2", spread("B", "M2", [28], 8))).status_code == 200
    async with engine.begin() as conn:
        await conn.execute(
            text("DROP TABLE totals_city_day, totals_enterprise_period, total_periods")
        )
        await conn.execute(text("UPDATE alembic_version SET version_num = '0012'"))
    await upgrade(database_url)
    async with engine.connect() as conn:
        counts = await conn.execute(
            text(
                "SELECT (SELECT count(*) FROM totals_city_day), "
                "(SELECT count(*) FROM totals_enterprise_period)"
            )
        )
        # Three days of Hangzhou and one of Nanjing; M1 in the window, M2 in the baseline.
        assert tuple(counts.one()) == (4, 2)
    assert await differences(engine) == []


async def test_a_campaign_changed_by_hand_is_read_from_the_days_until_rebuilt(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    viewer: dict[str, str],
    provider_token: Any,
    engine: AsyncEngine,
) -> None:
    _, code = await one_enterprise(client, admin, provider_token, [20, 21, 22, 23])
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE campaigns SET last_day = '2023-09-22' WHERE code = '2023'"))
    shorter = (date(2023, 9, 9), date(2023, 9, 22))
    async with engine.connect() as conn:
        assert await grain_for(conn, ["enterprise"], {}, *shorter) is rollup_enterprise_day
    assert await listed(client, viewer, "2023-09-09", "2023-09-22") == {code: (3, 121)}
    summary = (await client.get("/v1/campaigns/2023/summary", headers=viewer)).json()
    assert summary["active_enterprises"] == 1

    async with engine.begin() as conn:
        await rebuild_rollups(conn, date(2023, 9, 20), date(2023, 9, 20))
    async with engine.connect() as conn:
        assert await grain_for(conn, ["enterprise"], {}, *shorter) is totals_enterprise_period
        assert shorter in await listed_periods(conn)
        assert (date(2023, 9, 9), date(2023, 10, 8)) not in await listed_periods(conn)
    assert await listed(client, viewer, "2023-09-09", "2023-09-22") == {code: (3, 121)}
    assert await differences(engine) == []
