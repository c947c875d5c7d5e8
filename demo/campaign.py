"""The demo campaign `payfeed serve --demo` loads into an empty database.

Realistic and deterministic: nine cities in six provinces, four enterprises
each, merchant accounts at four providers, a 30-day baseline and the 30-day
campaign with more spending, every record pushed as the provider's own file
through the same path as a real batch (UnionPay ZM files per settlement day,
Alipay bills per account, WeChat Pay bills per week, standard NDJSON per week).

The four providers are registered, and the delivery calendar tells a story: every
day arrived on time (as a file at 02:00 the next morning) but for one, China
Merchants Bank's 2023-09-20, which was missing when the first publication was
made and arrived late; the second publication's revision is owed to it.
"""

import random
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from campaign.publications import publish_consistently
from campaign.registry import (
    register_cities,
    register_enterprises,
    register_merchant_accounts,
    register_providers,
)
from demo import samples
from ingest.adapters import ReadOptions
from ingest.batches import read_batch, store_batch
from ingest.pipeline import Pipeline
from ingest.rollups import rebuild_rollups
from schemas.records import Role
from schemas.regions import CITIES
from schemas.registry import CityIn, EnterpriseIn, MerchantAccountIn, ProviderIn
from schemas.uscc import CHARSET, uscc_check_char
from store.principal import Principal
from store.settings import Settings
from store.tables import enterprises

DEMO_CITIES = (
    "330100",
    "330200",
    "320100",
    "320500",
    "440100",
    "440300",
    "510100",
    "110000",
    "310000",
)
SHOPS = (
    ("retail", "department_store", "5311", "百货"),
    ("catering", "catering", "5812", "餐饮"),
    ("retail", "appliance", "5722", "家电"),
    ("services", "culture_tourism", "7011", "酒店"),
)
BASELINE_FIRST = date(2023, 8, 10)
CAMPAIGN_FIRST = date(2023, 9, 9)
LAST = date(2023, 10, 8)
WECHAT_SERVICE_PROVIDER = "1900000109"
MEDIA_TYPES = {"standard": "application/x-ndjson"}
PROVIDERS = (
    ProviderIn(provider="unionpay", name="中国银联", kind="card_network", delivery="daily"),
    ProviderIn(provider="alipay", name="支付宝", kind="third_party", delivery="daily"),
    ProviderIn(provider="wechatpay", name="微信支付", kind="third_party", delivery="daily"),
    ProviderIn(provider="cmb", name="招商银行", kind="bank", delivery="stream", due="09:00"),
)
LATE_PROVIDER, LATE_DAY = "cmb", date(2023, 9, 20)
DEMO = Principal(None, Role.ADMIN, source="demo")
"""Who publishes the demo's publications."""
RECORD_DAYS = (BASELINE_FIRST, LAST + timedelta(days=1))
"""The days the demo's records fall on (a late refund moves to the day after)."""
ON_TIME = text(
    "UPDATE records SET ingested_at = "
    "((day + 1)::timestamp + interval '2 hours') AT TIME ZONE 'Asia/Shanghai' "
    "WHERE day BETWEEN :first AND :last"
)
"""Arrival as a daily file at 02:00 the next morning: the demo is loaded at once,
and this gives its calendar the history a real campaign's would have."""


def _uscc(n: int) -> str:
    first17 = "91" + "330100" + "MA" + "".join(CHARSET[(n >> (4 * i)) % 31] for i in range(7))
    return first17 + uscc_check_char(first17)


def demo_shops() -> list[dict[str, Any]]:
    shops = []
    for c, city in enumerate(DEMO_CITIES):
        for s, (kind, category, mcc, label) in enumerate(SHOPS):
            n = c * len(SHOPS) + s
            shops.append(
                {
                    "uscc": _uscc(n + 1),
                    "name": f"{CITIES[city].name.removesuffix('市')}{label}{s + 1}号店",
                    "city": city,
                    "kind": kind,
                    "category": category,
                    "mcc": mcc,
                    "accounts": {
                        "unionpay": f"898{city[:4]}{n:08d}",
                        "alipay": f"2088{n:012d}",
                        "wechatpay": f"19{n:08d}",
                        "cmb": f"CMB{n:05d}",
                    },
                }
            )
    return shops


def _records(shops: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """`(provider, sample record)` for every day of baseline and campaign."""
    rng = random.Random(2023)
    serial = 0
    day = BASELINE_FIRST
    while day <= LAST:
        boost = 1.3 if day >= CAMPAIGN_FIRST else 1.0
        for shop in shops:
            for _ in range(rng.randint(2, 6)):
                serial += 1
                provider = rng.choice(("unionpay", "alipay", "wechatpay", "cmb"))
                local = datetime(day.year, day.month, day.day) + timedelta(
                    seconds=rng.randrange(8 * 3600, 24 * 3600)
                )
                sale = {
                    "txn_id": f"{provider[:2].upper()}{day:%Y%m%d}{serial:08d}",
                    "kind": "payment",
                    "amount_fen": int(rng.lognormvariate(9.5, 0.8) * boost),
                    "local_time": local,
                    "merchant_id": shop["accounts"][provider],
                    "channel": rng.choice(("offline", "offline", "online")),
                    "mcc": shop["mcc"],
                    "payer_ref": f"payer-{rng.randrange(5000)}",
                }
                yield provider, sale
                if rng.random() < 0.05:
                    refund = {
                        **sale,
                        "txn_id": sale["txn_id"] + "R",
                        "kind": "refund",
                        "amount_fen": max(1, sale["amount_fen"] // 2),
                        "local_time": local + timedelta(hours=1),
                        "original_txn_id": sale["txn_id"],
                    }
                    yield provider, refund
        day += timedelta(days=1)


def _batches(shops: list[dict[str, Any]]) -> Iterator[tuple[str, str, bytes, dict[str, str]]]:
    """`(provider, format, body, params)` in the providers' own file layouts."""
    by_provider: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for provider, record in _records(shops):
        by_provider[provider].append(record)
    cmb = [r for r in by_provider["cmb"] if r["local_time"].date() != LATE_DAY]
    for n, chunk in _grouped(cmb, _week):
        yield "cmb", "standard", samples.standard_ndjson(chunk), {"n": str(n)}
    for n, chunk in _grouped(by_provider["wechatpay"], _week):
        yield (
            "wechatpay",
            "wechatpay",
            samples.wechatpay_bill(WECHAT_SERVICE_PROVIDER, chunk),
            {"n": str(n)},
        )
    for settled, chunk in _grouped(by_provider["unionpay"], lambda r: r["local_time"].date()):
        yield "unionpay", "unionpay", samples.unionpay_zm(chunk), {"settle_date": str(settled)}
    for account, chunk in _grouped(by_provider["alipay"], lambda r: r["merchant_id"]):
        body = samples.alipay_bill(account + "0156", chunk, BASELINE_FIRST, LAST)
        yield "alipay", "alipay", body, {"account": account}


def _late_batch(shops: list[dict[str, Any]]) -> bytes:
    """The late provider's records of its late day, as it delivers them at last."""
    late = [
        r
        for provider, r in _records(shops)
        if provider == LATE_PROVIDER and r["local_time"].date() == LATE_DAY
    ]
    return samples.standard_ndjson(late)


def _week(record: dict[str, Any]) -> int:
    day: date = record["local_time"].date()
    return (day - BASELINE_FIRST).days // 7


def _grouped(records: list[dict[str, Any]], key: Any) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        groups[key(record)].append(record)
    yield from sorted(groups.items())


async def load_demo(
    engine: AsyncEngine, settings: Settings, progress: Callable[[int, int], None] | None = None
) -> str:
    """Load the demo into an empty database; leave any other database alone.

    `progress(done, total)` is called after each provider batch (a bar for the
    terminal, which should not get a line per batch)."""
    async with engine.begin() as conn:
        if (await conn.execute(select(func.count()).select_from(enterprises))).scalar_one():
            return "the database is not empty: demo not loaded"
        shops = demo_shops()
        await register_cities(conn, [CityIn(city=city) for city in DEMO_CITIES])
        await register_enterprises(
            conn,
            [
                EnterpriseIn(**{k: s[k] for k in ("uscc", "name", "city", "kind", "category")})
                for s in shops
            ],
        )
        await register_merchant_accounts(
            conn,
            [
                MerchantAccountIn(provider=provider, merchant_id=merchant_id, uscc=s["uscc"])
                for s in shops
                for provider, merchant_id in s["accounts"].items()
            ],
        )
        await register_providers(conn, list(PROVIDERS))
    pipeline = Pipeline(settings.resolved_secret())
    inserted = batches = 0
    files = list(_batches(shops))
    for provider, fmt, body, params in files:
        inserted += await _deliver(engine, pipeline, settings, provider, fmt, body, params)
        batches += 1
        if progress is not None:
            progress(batches, len(files))
    async with engine.begin() as conn:
        await conn.execute(ON_TIME, dict(zip(("first", "last"), RECORD_DAYS, strict=True)))
        await rebuild_rollups(conn, *RECORD_DAYS)
    await publish_consistently(engine, "2023", DEMO, f"{LATE_PROVIDER} {LATE_DAY} 未报送")
    late = _late_batch(shops)
    inserted += await _deliver(
        engine, pipeline, settings, LATE_PROVIDER, "standard", late, {"n": "late"}
    )
    await publish_consistently(engine, "2023", DEMO, f"{LATE_PROVIDER} {LATE_DAY} 补报")
    return (
        f"demo loaded: {len(shops)} enterprises in {len(DEMO_CITIES)} cities, "
        f"{inserted} records in {batches + 1} provider batches "
        f"({LATE_PROVIDER} delivered {LATE_DAY} late), 2 publications"
    )


async def _deliver(
    engine: AsyncEngine,
    pipeline: Pipeline,
    settings: Settings,
    provider: str,
    fmt: str,
    body: bytes,
    params: dict[str, str],
) -> int:
    options = ReadOptions(content_type=MEDIA_TYPES.get(fmt), params=params)
    read = read_batch(fmt, body, options, settings.max_batch_records)
    async with engine.begin() as conn:
        answer = await store_batch(
            conn,
            pipeline,
            provider=provider,
            batch_id=f"demo-{provider}-{'-'.join(params.values())}",
            read=read,
        )
    inserted: int = answer["inserted"]
    return inserted
