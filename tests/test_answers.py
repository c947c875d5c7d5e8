"""Dashboard answers: ETags by data version, 304, the in-process cache, paging."""

import csv
import gc
import io
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.answers import AnswerCache, Rendered
from app.main import create_app
from campaign.coverage import coverage_clock
from schemas.records import LOCAL_TIME_ZONE, Role
from store.settings import Settings
from store.tables import providers
from tests.factories import enterprise_with_account, push, record
from tests.two_provinces import SALES, seed

ROLLUPS = {"dims": "day", "from": "2023-09-09", "to": "2023-10-08"}
READS = [
    ("/v1/rollups", ROLLUPS),
    ("/v1/campaigns/2023/summary", {}),
    ("/v1/reports/2023", {"level": "city"}),
]


async def etags(client: httpx.AsyncClient, viewer: dict[str, str]) -> list[str]:
    found = []
    for path, params in READS:
        response = await client.get(path, params=params, headers=viewer)
        assert response.status_code == 200, response.text
        found.append(response.headers["etag"])
    return found


async def net(client: httpx.AsyncClient, viewer: dict[str, str]) -> int:
    response = await client.get("/v1/rollups", params={**ROLLUPS, "dims": ""}, headers=viewer)
    assert response.status_code == 200, response.text
    return int(response.json()["totals"]["net_fen"])


async def test_etag_changes_with_the_figures_and_only_then(
    client: httpx.AsyncClient, admin: dict[str, str], viewer: dict[str, str], provider_token: Any
) -> None:
    cmb = await provider_token("cmb")
    await enterprise_with_account(client, admin, provider="cmb", merchant_id="M1")
    batch = [record("T1", amount_fen=12345), record("T2", amount_fen=100)]
    assert (await push(client, cmb, "b1", batch)).status_code == 200
    first = await etags(client, viewer)
    assert len(set(first)) == 3
    assert await etags(client, viewer) == first
    # Nothing the answers read changes: the same records again (all duplicates), a
    # new token.
    again = await push(client, cmb, "b2", batch)
    assert again.json()["duplicates"] == 2
    other_viewer = await client.post("/v1/batches", headers=cmb)  # refused, changes nothing
    assert other_viewer.status_code != 200
    assert await etags(client, viewer) == first
    assert (await push(client, cmb, "b3", [record("T3", amount_fen=7)])).status_code == 200
    second = await etags(client, viewer)
    assert all(a != b for a, b in zip(first, second, strict=True))
    assert await net(client, viewer) == 12345 + 100 + 7


async def test_matching_if_none_match_is_answered_304(
    client: httpx.AsyncClient, admin: dict[str, str], viewer: dict[str, str], provider_token: Any
) -> None:
    cmb = await provider_token("cmb")
    await enterprise_with_account(client, admin, provider="cmb", merchant_id="M1")
    assert (await push(client, cmb, "b1", [record("T1")])).status_code == 200
    for path, params in READS:
        first = await client.get(path, params=params, headers=viewer)
        etag = first.headers["etag"]
        same = await client.get(path, params=params, headers={**viewer, "If-None-Match": etag})
        assert same.status_code == 304
        assert same.content == b""
        assert same.headers["etag"] == etag
        listed = await client.get(
            path, params=params, headers={**viewer, "If-None-Match": f'"0-x", W/{etag}'}
        )
        assert listed.status_code == 304
        stale = await client.get(path, params=params, headers={**viewer, "If-None-Match": '"0-x"'})
        assert stale.status_code == 200
        assert stale.content == first.content
    # `*`: 304 while an answer exists, the 404 where none does; `W/*` is no tag.
    star = await client.get(path, params=params, headers={**viewer, "If-None-Match": "*"})
    assert star.status_code == 304
    weak_star = await client.get(path, params=params, headers={**viewer, "If-None-Match": "W/*"})
    assert weak_star.status_code == 200
    for missing in ("/v1/campaigns/nope/summary", "/v1/reports/nope"):
        unknown = await client.get(missing, headers={**viewer, "If-None-Match": "*"})
        assert unknown.status_code == 404, missing
    # Another query is another answer.
    other = await client.get(
        "/v1/rollups",
        params={**ROLLUPS, "dims": "city"},
        headers={**viewer, "If-None-Match": first.headers["etag"]},
    )
    assert other.status_code == 200


async def test_a_warm_cache_answers_from_memory_and_a_batch_is_read_next(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    viewer: dict[str, str],
    provider_token: Any,
    engine: AsyncEngine,
) -> None:
    cmb = await provider_token("cmb")
    await enterprise_with_account(client, admin, provider="cmb", merchant_id="M1")
    assert (await push(client, cmb, "b1", [record("T1", amount_fen=500)])).status_code == 200
    assert await net(client, viewer) == 500
    # A change behind the version's back (triggers off) is not seen: the answer
    # comes from the cache, not from the database.
    async with engine.begin() as conn:
        await conn.execute(text("SET LOCAL session_replication_role = replica"))
        await conn.execute(text("UPDATE rollup_city_day SET gross_fen = 1"))
    assert await net(client, viewer) == 500
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE rollup_city_day SET gross_fen = 500"))
    # Read-your-writes with the cache warm: the answered batch is in the next read.
    for n in range(2, 5):
        assert (
            await push(client, cmb, f"b{n}", [record(f"T{n}", amount_fen=n)])
        ).status_code == 200
        assert await net(client, viewer) == 500 + sum(range(2, n + 1))


async def test_answers_are_cached_per_scope_not_per_token(
    client: httpx.AsyncClient, viewer: dict[str, str], admin: dict[str, str]
) -> None:
    first = await client.get("/v1/campaigns/2023/summary", headers=viewer)
    second = await client.get("/v1/campaigns/2023/summary", headers=admin)
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    # The role is part of the principal's scope: each has its own ETag.
    assert first.headers["etag"] != second.headers["etag"]
    assert "x-data-as-of" in first.headers


async def test_a_warm_cache_never_hands_one_regions_answer_to_another(
    client: httpx.AsyncClient, admin: dict[str, str], provider_token: Any, regional_token: Any
) -> None:
    await seed(client, admin, provider_token)
    zhejiang = await regional_token(Role.VIEWER, "33")
    guangdong = await regional_token(Role.VIEWER, "44")
    another_zhejiang = await regional_token(Role.VIEWER, "33")
    params = {**ROLLUPS, "dims": ""}
    for path, query in (("/v1/rollups", params), ("/v1/reports/2023", {"level": "city"})):
        first = await client.get(path, params=query, headers=zhejiang)
        second = await client.get(path, params=query, headers=guangdong)
        third = await client.get(path, params=query, headers=another_zhejiang)
        assert first.headers["etag"] != second.headers["etag"]
        assert first.content != second.content
        assert (third.headers["etag"], third.content) == (first.headers["etag"], first.content)
    mine = await client.get("/v1/rollups", params=params, headers=zhejiang)
    assert mine.json()["totals"]["net_fen"] == SALES["330100"] + SALES["330200"]
    # Another region's ETag is no 304.
    other = await client.get(
        "/v1/rollups", params=params, headers={**guangdong, "If-None-Match": mine.headers["etag"]}
    )
    assert other.status_code == 200
    assert other.json()["totals"]["net_fen"] == SALES["440100"] + SALES["440300"]


async def enterprises_with_records(
    client: httpx.AsyncClient, admin: dict[str, str], provider_token: Any, count: int
) -> list[str]:
    cmb = await provider_token("cmb")
    codes = []
    batch = []
    for n in range(count):
        codes.append(
            await enterprise_with_account(
                client, admin, provider="cmb", merchant_id=f"M{n}", city=("330100", "320100")[n % 2]
            )
        )
        for day in (10, 11):
            batch.append(
                record(
                    f"T{n}-{day}",
                    merchant_id=f"M{n}",
                    amount_fen=n + 1,
                    occurred_at=f"2023-09-{day}T12:00:00+08:00",
                )
            )
    assert (await push(client, cmb, "all", batch)).status_code == 200
    return codes


async def test_paging_returns_every_enterprise_exactly_once(
    client: httpx.AsyncClient, admin: dict[str, str], viewer: dict[str, str], provider_token: Any
) -> None:
    codes = await enterprises_with_records(client, admin, provider_token, 23)
    for dims, limit, expected in (("enterprise", 5, 23), ("day,enterprise", 7, 46)):
        seen: list[tuple[Any, ...]] = []
        cursor = None
        pages = 0
        while True:
            params: dict[str, Any] = {**ROLLUPS, "dims": dims, "limit": limit}
            if cursor is not None:
                params["cursor"] = cursor
            page = (await client.get("/v1/rollups", params=params, headers=viewer)).json()
            pages += 1
            assert len(page["rows"]) <= limit
            assert page["totals"]["net_fen"] == 2 * sum(range(1, 24))
            seen += [tuple(row[d] for d in dims.split(",")) for row in page["rows"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert pages == -(-expected // limit)
        assert len(seen) == len(set(seen)) == expected
        assert seen == sorted(seen)
        assert {key[-1] for key in seen} == set(codes)


async def test_a_listing_by_enterprise_streams_as_csv_and_bad_cursors_are_400(
    client: httpx.AsyncClient, admin: dict[str, str], viewer: dict[str, str], provider_token: Any
) -> None:
    codes = await enterprises_with_records(client, admin, provider_token, 7)
    response = await client.get(
        "/v1/rollups", params={**ROLLUPS, "dims": "enterprise", "format": "csv"}, headers=viewer
    )
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [row["enterprise"] for row in rows] == sorted(codes)
    assert sum(int(row["net_fen"]) for row in rows) == 2 * sum(range(1, 8))
    for cursor in ("nope", "WyJhIiwiYiJd"):  # not base64 JSON; a key of two dims
        bad = await client.get(
            "/v1/rollups",
            params={**ROLLUPS, "dims": "enterprise", "cursor": cursor},
            headers=viewer,
        )
        assert bad.status_code == 400
        assert bad.json()["error"]["code"] == "bad_cursor"


async def test_a_publication_at_repeatable_read_is_not_refused_for_a_concurrent_batch(
    engine: AsyncEngine,
) -> None:
    """Publishing reads one snapshot (REPEATABLE READ); a batch that commits
    meanwhile bumps the data version, which the publication must not bump too."""
    async with engine.connect() as publishing:
        await publishing.execution_options(isolation_level="REPEATABLE READ")
        async with publishing.begin():
            await publishing.execute(text("SELECT count(*) FROM data_version"))
            async with engine.begin() as batch:
                await batch.execute(
                    text(
                        "INSERT INTO data_version SELECT slot, 1 FROM generate_series(0, 63) slot "
                        "ON CONFLICT (slot) DO UPDATE SET version = data_version.version + 1"
                    )
                )
            await publishing.execute(
                text(
                    "INSERT INTO publications (campaign, number, published_at, published_by, "
                    "note, final, sha256, body) VALUES ('2023', 1, now(), 'test', '', false, "
                    "'', '{}')"
                )
            )


async def test_a_cached_answer_costs_two_statements_on_one_connection(
    client: httpx.AsyncClient, viewer: dict[str, str], engine: AsyncEngine
) -> None:
    """The caller's token and the data version, outside any transaction: what a
    polling dashboard costs the database once its answer is cached. Statements go
    through SQLAlchemy or straight to the driver: both are counted."""
    for path, params in READS:
        assert (await client.get(path, params=params, headers=viewer)).status_code == 200
    statements: list[str] = []
    checkouts: list[Any] = []

    def through_sqlalchemy(*args: Any) -> None:
        statements.append(args[2])

    def through_the_driver(query: Any) -> None:
        statements.append(query.query)

    def checked_out(dbapi_connection: Any, *_: Any) -> None:
        checkouts.append(dbapi_connection.driver_connection)
        dbapi_connection.driver_connection.add_query_logger(through_the_driver)

    event.listen(engine.sync_engine, "before_cursor_execute", through_sqlalchemy)
    event.listen(engine.sync_engine, "checkout", checked_out)
    try:
        for path, params in READS:
            cached = await client.get(path, params=params, headers=viewer)
            assert cached.status_code == 200
            assert cached.headers["etag"]
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", through_sqlalchemy)
        event.remove(engine.sync_engine, "checkout", checked_out)
        for driver_connection in checkouts:
            driver_connection.remove_query_logger(through_the_driver)
    assert len(checkouts) == len(READS)
    assert len(statements) == 2 * len(READS)
    assert all("FROM tokens" in s for s in statements[::2])
    assert all("FROM data_version" in s for s in statements[1::2])


async def test_an_answer_with_coverage_is_kept_until_the_clock_can_change_it(
    engine: AsyncEngine,
) -> None:
    """Coverage moves with the clock at local midnight and at each provider's due
    time (the default 10:00 and a registered 14:30 here)."""
    async with engine.begin() as conn:
        await conn.execute(
            providers.insert().values(
                provider="cmb", name="招商银行", kind="bank", delivery="http", due=time(14, 30)
            )
        )
        shanghai = ZoneInfo(LOCAL_TIME_ZONE)

        def at(day: int, hour: int, minute: int = 0) -> datetime:
            return datetime(2023, 9, day, hour, minute, tzinfo=shanghai)

        assert await coverage_clock(conn, at(10, 9)) == (at(10, 0), at(10, 10))
        assert await coverage_clock(conn, at(10, 10)) == (at(10, 10), at(10, 14, 30))
        assert await coverage_clock(conn, at(10, 23)) == (at(10, 14, 30), at(11, 0))
    cache = AnswerCache()
    kept = Rendered(b"{}", "application/json").on_the_clock((at(10, 10), at(10, 14, 30)))
    cache.put(7, "asked", kept, "/v1/campaigns/2023/summary")
    assert cache.get(7, "asked", at(10, 14, 29)) == kept
    assert cache.get(7, "asked", at(10, 14, 30)) is None
    assert cache.get(8, "asked", at(10, 11)) is None


async def test_a_warm_cache_answers_no_one_its_route_would_refuse(
    client: httpx.AsyncClient,
    viewer: dict[str, str],
    provider_token: Any,
    engine: AsyncEngine,
) -> None:
    """Answers kept are handed out before routing: only to a live token of the
    same scope, for the very query the route answered."""
    path, params = READS[0]
    kept = await client.get(path, params=params, headers=viewer)
    assert kept.status_code == 200
    assert (await client.get(path, params=params, headers=viewer)).content == kept.content
    refused = {
        "no token": await client.get(path, params=params),
        "not bearer": await client.get(
            path, params=params, headers={"Authorization": "Basic " + viewer["Authorization"][7:]}
        ),
        "a provider": await client.get(path, params=params, headers=await provider_token("cmb")),
        "a misspelt filter": await client.get(
            path, params={**params, "provder": "cmb"}, headers=viewer
        ),
    }
    assert {k: r.status_code for k, r in refused.items()} == {
        "no token": 401,
        "not bearer": 401,
        "a provider": 403,
        "a misspelt filter": 400,
    }
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE tokens SET revoked_at = now()"))
    revoked = await client.get(path, params=params, headers=viewer)
    assert revoked.status_code == 401
    assert revoked.json()["error"]["code"] == "unauthorized"


async def test_what_startup_built_is_out_of_the_collectors_reach(
    settings: Settings, database_url: str
) -> None:
    """A full pass of the cyclic collector walked every object startup built
    (160,000) and stalled the process's requests for 50-180 ms: they are frozen
    once the app has started."""
    application = create_app(settings, database_url)
    gc.unfreeze()
    try:
        async with application.router.lifespan_context(application):
            assert gc.get_freeze_count() > 100_000
    finally:
        gc.unfreeze()
