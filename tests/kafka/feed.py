"""A synthetic Kafka feed for the consumer tests: registered merchants, distinct
records whose rollups are known in advance, the messages that carry them, and
the conditions the tests wait on (always with a deadline)."""

import asyncio
import random
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from ingest.rollups import verify_rollups
from store.settings import Settings
from store.tables import enterprises, merchant_accounts
from tests.factories import uscc
from tests.kafka.conftest import PARTITIONS

PROVIDERS = ("cmb", "icbc")
CITIES = ("330100", "330200", "110000", "440100", "510100")
CATEGORIES = ("grocery", "catering", "apparel", "auto", "electronics")
SHANGHAI = ZoneInfo("Asia/Shanghai")
FIRST_DAY = datetime(2023, 9, 9, tzinfo=SHANGHAI)
PAYFEED = Path(sys.executable).parent / "payfeed"

Outgoing = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]
"""A message to produce: key, value, headers."""
RollupKey = tuple[date, str, str, str, str]
"""day, city, category, channel, provider: the key of `rollup_city_day`."""


@dataclass(frozen=True)
class Merchant:
    provider: str
    merchant_id: str
    city: str
    category: str


async def register_merchants(engine: AsyncEngine, per_provider: int = 10) -> list[Merchant]:
    """One enterprise per merchant account, spread over the cities and categories."""
    merchants = [
        Merchant(provider, f"M{i}", CITIES[i % len(CITIES)], CATEGORIES[i % len(CATEGORIES)])
        for provider in PROVIDERS
        for i in range(per_provider)
    ]
    codes = [uscc() for _ in merchants]
    async with engine.begin() as conn:
        await conn.execute(
            insert(enterprises),
            [
                {
                    "uscc": code,
                    "campaign": "2023",
                    "name": f"企业{code[-4:]}",
                    "city": m.city,
                    "kind": "retail",
                    "category": m.category,
                }
                for code, m in zip(codes, merchants, strict=True)
            ],
        )
        await conn.execute(
            insert(merchant_accounts),
            [
                {"provider": m.provider, "merchant_id": m.merchant_id, "uscc": code}
                for code, m in zip(codes, merchants, strict=True)
            ],
        )
    return merchants


def make_records(
    merchants: list[Merchant], count: int, *, prefix: str, seed: int
) -> list[tuple[Merchant, dict[str, Any]]]:
    """`count` distinct valid records over the campaign's 30 days, with refunds,
    both channels, times given in UTC or local offsets, and some payer references."""
    rng = random.Random(seed)
    records = []
    for i in range(count):
        merchant = rng.choice(merchants)
        local = FIRST_DAY + timedelta(seconds=rng.randrange(30 * 86400))
        occurred = (
            local.isoformat()
            if rng.random() < 0.5
            else local.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")
        )
        record: dict[str, Any] = {
            "txn_id": f"{prefix}-{i}",
            "kind": "refund" if rng.random() < 0.1 else "payment",
            "amount_fen": rng.randrange(1, 2_000_000),
            "currency": "CNY",
            "occurred_at": occurred,
            "merchant_id": merchant.merchant_id,
            "channel": rng.choice(("online", "offline")),
        }
        if rng.random() < 0.3:
            record["payer_ref"] = f"payer-{rng.randrange(5000)}"
        records.append((merchant, record))
    return records


def message(provider: str | None, value: Any, key: str | None = None) -> Outgoing:
    headers = [("provider", provider.encode())] if provider is not None else []
    raw = value if isinstance(value, bytes) or value is None else orjson.dumps(value)
    return (key.encode() if key else None, raw, headers)


def messages_of(
    records: list[tuple[Merchant, dict[str, Any]]], *, arrays: float = 0.0, seed: int = 0
) -> list[Outgoing]:
    """One message per record, except a share `arrays` of records sent as JSON
    arrays of up to 20 records of one provider, keyed by the first txn_id."""
    rng = random.Random(seed)
    out: list[Outgoing] = []
    pending: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for merchant, record in records:
        if rng.random() >= arrays:
            out.append(message(merchant.provider, record, record["txn_id"]))
            continue
        group = pending[merchant.provider]
        group.append(record)
        if len(group) == 20:
            out.append(message(merchant.provider, list(group), group[0]["txn_id"]))
            group.clear()
    for provider, group in pending.items():
        if group:
            out.append(message(provider, list(group), group[0]["txn_id"]))
    return out


async def produce(bootstrap: str, topic: str, messages: Iterable[Outgoing]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    await producer.start()
    try:
        sent = [
            await producer.send(topic, value, key, headers=headers)
            for key, value, headers in messages
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def expected_rollups(
    records: Iterable[tuple[Merchant, dict[str, Any]]],
) -> dict[RollupKey, list[int]]:
    """`rollup_city_day` as it must be: payment and refund counts and sums."""
    rows: dict[RollupKey, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for merchant, record in records:
        occurred = datetime.fromisoformat(record["occurred_at"].replace("Z", "+00:00"))
        day = occurred.astimezone(SHANGHAI).date()
        row = rows[(day, merchant.city, merchant.category, record["channel"], merchant.provider)]
        refund = record["kind"] == "refund"
        row[1 if refund else 0] += 1
        row[3 if refund else 2] += record["amount_fen"]
    return dict(rows)


async def stored_rollups(engine: AsyncEngine) -> dict[RollupKey, list[int]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT day, city, category, channel, provider, payment_count, refund_count, "
                "gross_fen, refund_fen FROM rollup_city_day"
            )
        )
        return {tuple(row[:5]): list(row[5:]) for row in rows}  # type: ignore[misc]


async def assert_exact(engine: AsyncEngine, records: list[tuple[Merchant, dict[str, Any]]]) -> None:
    """The stored records are exactly the distinct records produced, once each, and
    every rollup equals both the expected figures and a recount of the records."""
    async with engine.connect() as conn:
        count, total = (
            await conn.execute(text("SELECT count(*), coalesce(sum(amount_fen), 0) FROM records"))
        ).one()
        assert await verify_rollups(conn, date(2000, 1, 1), date(2100, 12, 31)) == []
    assert count == len(records)
    assert total == sum(record["amount_fen"] for _, record in records)
    assert await stored_rollups(engine) == expected_rollups(records)


async def scalar(engine: AsyncEngine, sql: str) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(text(sql))).scalar()


def stored_at_least(engine: AsyncEngine, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        stored: int = await scalar(engine, "SELECT count(*) FROM records")
        return stored >= count

    return check


async def wait_until(condition: Callable[[], Awaitable[bool]], *, within: float, what: str) -> None:
    """Poll `condition` until it holds; fail naming `what` after `within` seconds."""
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


class Progress:
    """Where a group stands on its topic: the committed offsets against the ends.
    Use as `async with Progress(settings) as progress`; it never joins the group
    (OffsetFetch by a consumer of the group id: Tansu does not answer the admin
    client's version of it)."""

    def __init__(self, settings: Settings) -> None:
        assert settings.kafka_bootstrap_servers
        self.partitions = [TopicPartition(settings.kafka_topic, p) for p in range(PARTITIONS)]
        self.reader = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=settings.kafka_group,
            enable_auto_commit=False,
        )

    async def __aenter__(self) -> "Progress":
        await self.reader.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.reader.stop()

    async def ends(self) -> dict[TopicPartition, int]:
        ends: dict[TopicPartition, int] = await self.reader.end_offsets(self.partitions)
        return ends

    async def committed(self) -> dict[TopicPartition, int]:
        return {tp: await self.reader.committed(tp) or 0 for tp in self.partitions}

    async def all_consumed(self) -> bool:
        """The group has committed every partition up to its end: all is stored."""
        ends, done = await self.ends(), await self.committed()
        return all(done[tp] >= end for tp, end in ends.items())


def consumer_env(settings: Settings, database_url: str, home: Path) -> dict[str, str]:
    """The environment of a `payfeed consume` process on the test database and topic."""
    assert settings.kafka_bootstrap_servers and settings.secret_key
    env = {
        "PATH": str(PAYFEED.parent),
        "PAYFEED_HOME": str(home),
        "PAYFEED_DATABASE_URL": database_url,
        "PAYFEED_SECRET_KEY": settings.secret_key,
        "PAYFEED_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "PAYFEED_KAFKA_TOPIC": settings.kafka_topic,
        "PAYFEED_KAFKA_GROUP": settings.kafka_group,
        "PAYFEED_LOG_LEVEL": "INFO",
    }
    return env
