"""Payer counts of a listing by enterprise over a campaign's window come from
sketches merged once per period by the compactor (`payers_period`), and equal,
to the unit, what merging the enterprise-day sketches on the request gives:
after batches and compaction, after more batches, after a rebuild, and when a
campaign's window moves."""

from datetime import date
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ingest.payers import compact_all
from ingest.rollups import rebuild_rollups, verify_rollups
from store.data_version import current_version
from store.sketches import estimate, union_of
from tests.factories import enterprise_with_account, push, record, register

WINDOW = ("2023-09-09", "2023-10-08")
"""The seeded campaign 2023; its baseline is 2023-08-10..2023-09-08."""
BASELINE = ("2023-08-10", "2023-09-08")


def payments(tag: str, merchant: str, payers: range, days: list[str]) -> list[dict[str, Any]]:
    """One payment per payer, the payers spread over `days` in turn."""
    return [
        record(
            f"{tag}{p}",
            merchant_id=merchant,
            occurred_at=f"{days[p % len(days)]}T12:00:00+08:00",
            payer_ref=f"payer-{p}",
        )
        for p in payers
    ]


async def listed(
    client: httpx.AsyncClient, viewer: dict[str, str], window: tuple[str, str], **params: Any
) -> dict[str, int]:
    """payer_count per enterprise, every page read."""
    counts: dict[str, int] = {}
    query = {"dims": "enterprise", "from": window[0], "to": window[1], "limit": 2, **params}
    while True:
        response = await client.get("/v1/rollups", params=query, headers=viewer)
        assert response.status_code == 200, response.text
        answer = response.json()
        counts.update({r["enterprise"]: r["payer_count"] for r in answer["rows"]})
        if answer["next_cursor"] is None:
            return counts
        query["cursor"] = answer["next_cursor"]


async def merged_on_request(engine: AsyncEngine, window: tuple[str, str]) -> dict[str, int]:
    """What the listing merged before periods were kept: each enterprise's day
    sketches over the window, merged (in both orders: the estimate is the same)."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT enterprise, array_agg(sketch ORDER BY day, city) FROM "
                "rollup_enterprise_day_payers WHERE day BETWEEN :first AND :last "
                "GROUP BY enterprise"
            ),
            {"first": date.fromisoformat(window[0]), "last": date.fromisoformat(window[1])},
        )
        merged = {}
        for enterprise, sketches in rows:
            merged[enterprise] = estimate(union_of(sketches))
            assert estimate(union_of(reversed(sketches))) == merged[enterprise]
        return merged


async def stored_estimates(engine: AsyncEngine, window: tuple[str, str]) -> dict[str, int]:
    """The estimates kept for the enterprises of one city in the period: what the
    listing answers for them without merging anything."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT enterprise, min(estimate) FROM payers_period WHERE first_day = :first "
                "AND last_day = :last GROUP BY enterprise HAVING count(*) = 1"
            ),
            {"first": date.fromisoformat(window[0]), "last": date.fromisoformat(window[1])},
        )
        return dict(rows.all())


async def kept_periods(engine: AsyncEngine) -> list[tuple[str, str]]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT first_day, last_day FROM payer_periods ORDER BY 1"))
        return [(str(first), str(last)) for first, last in rows]


async def test_period_counts_equal_the_merge_of_day_sketches(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    viewer: dict[str, str],
    provider_token: Any,
    engine: AsyncEngine,
) -> None:
    cmb = await provider_token("cmb")
    big = await enterprise_with_account(client, admin, provider="cmb", merchant_id="BIG")
    small = await enterprise_with_account(client, admin, provider="cmb", merchant_id="SMALL")
    # Two cities: the enterprise is two keys of the period, merged on the request.
    both = await enterprise_with_account(
        client, admin, provider="cmb", merchant_id="HZ", city="330100"
    )
    second_city = {"provider": "cmb", "merchant_id": "NJ", "uscc": both, "city": "320100"}
    assert (await register(client, admin, "merchant-accounts", [second_city])).status_code == 200
    days = [f"2023-09-{d:02d}" for d in range(9, 31)]
    batches = [
        payments("B", "BIG", range(6000), days),  # far beyond a list of payers: HLL mode
        payments("S", "SMALL", range(7), days[:3]),
        payments("H", "HZ", range(0, 1500), days),
        payments("N", "NJ", range(1000, 2500), days[5:]),
        payments("X", "BIG", range(100), ["2023-08-20"]),  # in the baseline only
    ]
    for n, batch in enumerate(batches):
        assert (await push(client, cmb, f"b{n}", batch)).status_code == 200
    await compact_all(engine)
    assert await kept_periods(engine) == [BASELINE, WINDOW]

    counts = await listed(client, viewer, WINDOW)
    assert counts == await merged_on_request(engine, WINDOW)
    assert {big: counts[big], small: counts[small]} == await stored_estimates(engine, WINDOW)
    assert counts[small] == 7 and abs(counts[big] - 6000) < 6000 * 0.05
    assert await listed(client, viewer, BASELINE) == await merged_on_request(engine, BASELINE)
    assert (await listed(client, viewer, BASELINE))[big] == 100
    # A window that is no campaign's merges on the request, to the same estimates.
    other = ("2023-09-09", "2023-10-07")
    assert await listed(client, viewer, other) == counts
    # A city filter reads that city's keys only.
    assert (await listed(client, viewer, WINDOW, city="320100")) == {
        both: (await merged_on_request_in(engine, WINDOW, "320100"))[both]
    }

    # More payers, some already counted: the period sketches follow the batches.
    more = [
        *payments("B2", "BIG", range(5000, 9000), days),
        *payments("S2", "SMALL", range(12), days),
    ]
    assert (await push(client, cmb, "more", more)).status_code == 200
    await compact_all(engine)
    counts = await listed(client, viewer, WINDOW)
    assert counts == await merged_on_request(engine, WINDOW)
    assert counts[small] == 12

    # A rebuild recomputes the sketches from the records: the same registers,
    # so the same estimates, and the periods it overlaps rebuilt with them.
    async with engine.begin() as conn:
        written = await rebuild_rollups(conn, date(2023, 9, 1), date(2023, 9, 30))
        assert await verify_rollups(conn, date(2023, 8, 1), date(2023, 10, 31)) == []
    assert written["payers_period"] == 4 + 1  # the window's keys, the baseline's
    assert await listed(client, viewer, WINDOW) == counts
    assert await listed(client, viewer, BASELINE) == await merged_on_request(engine, BASELINE)


async def merged_on_request_in(
    engine: AsyncEngine, window: tuple[str, str], city: str
) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT enterprise, array_agg(sketch) FROM rollup_enterprise_day_payers "
                "WHERE day BETWEEN :first AND :last AND city = :city GROUP BY enterprise"
            ),
            {
                "first": date.fromisoformat(window[0]),
                "last": date.fromisoformat(window[1]),
                "city": city,
            },
        )
        return {enterprise: estimate(union_of(sketches)) for enterprise, sketches in rows}


async def test_periods_follow_the_campaigns_and_an_idle_compactor_writes_nothing(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    viewer: dict[str, str],
    provider_token: Any,
    engine: AsyncEngine,
) -> None:
    cmb = await provider_token("cmb")
    shop = await enterprise_with_account(client, admin, provider="cmb", merchant_id="M1")
    days = [f"2023-09-{d:02d}" for d in range(9, 31)]
    assert (await push(client, cmb, "b1", payments("T", "M1", range(900), days))).status_code == 200
    await compact_all(engine)
    async with engine.connect() as conn:
        before = (await current_version(conn)).version
    assert await compact_all(engine) == 0
    async with engine.connect() as conn:
        assert (await current_version(conn)).version == before  # nothing queued, nothing written

    async with engine.begin() as conn:
        await conn.execute(text("UPDATE campaigns SET last_day = '2023-09-20' WHERE code = '2023'"))
    shorter = ("2023-09-09", "2023-09-20")
    await compact_all(engine)
    assert await kept_periods(engine) == [BASELINE, shorter]
    async with engine.connect() as conn:
        stale = await conn.execute(
            text("SELECT count(*) FROM payers_period WHERE last_day = '2023-10-08'")
        )
        assert stale.scalar_one() == 0
    counts = await listed(client, viewer, shorter)
    assert counts == await merged_on_request(engine, shorter)
    assert counts[shop] < 900
