"""`payfeed consume` processes on a real broker: killed mid-stream and restarted,
or two in one group with one stopped half-way; the result is exact either way."""

import asyncio
import random
import re
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from store.settings import Settings
from tests.kafka.feed import (
    PAYFEED,
    Progress,
    assert_exact,
    consumer_env,
    make_records,
    messages_of,
    produce,
    register_merchants,
    stored_at_least,
    wait_until,
)

pytestmark = pytest.mark.kafka

ASSIGNED = re.compile(r"assigned partitions \[([0-9, ]*)\]")


class Consumers:
    """`payfeed consume` processes on the test database, each logging to a file."""

    def __init__(self, settings: Settings, database_url: str, home: Path) -> None:
        self.env = consumer_env(settings, database_url, home)
        self.home = home
        self.started: list[tuple[asyncio.subprocess.Process, Path]] = []

    async def start(self) -> tuple[asyncio.subprocess.Process, Path]:
        log = self.home / f"consumer-{len(self.started)}.log"
        with log.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                str(PAYFEED),
                "consume",
                "--session-timeout",
                "3",
                "--max-poll-records",
                "1000",
                env=self.env,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )
        self.started.append((process, log))
        return process, log

    async def kill_all(self) -> None:
        for process, _ in self.started:
            if process.returncode is None:
                process.kill()
                await process.wait()


@pytest.fixture
async def consumers(
    kafka_settings: Settings, database_url: str, tmp_path: Path
) -> AsyncIterator[Consumers]:
    running = Consumers(kafka_settings, database_url, tmp_path)
    yield running
    await running.kill_all()


async def partitions_held(log: Path) -> list[int] | None:
    """The partitions the consumer logging to `log` was given at its last
    assignment; None before its first (until then it does not handle signals)."""
    found = ASSIGNED.findall(await asyncio.to_thread(log.read_text))
    return [int(p) for p in found[-1].split(",") if p.strip()] if found else None


def assigned(log: Path) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await partitions_held(log) is not None

    return check


async def test_consumer_killed_mid_stream_and_restarted_is_exact(
    engine: AsyncEngine, kafka_settings: Settings, consumers: Consumers
) -> None:
    merchants = await register_merchants(engine)
    records = make_records(merchants, 30_000, prefix="k", seed=11)
    rng = random.Random(12)
    copies = rng.sample(records, 3_000)
    bootstrap = kafka_settings.kafka_bootstrap_servers or ""
    await produce(
        bootstrap, kafka_settings.kafka_topic, messages_of(records + copies, arrays=0.5, seed=13)
    )

    for low, high in ((0.05, 0.25), (0.3, 0.5), (0.55, 0.75)):
        threshold = int(len(records) * rng.uniform(low, high))
        process, _ = await consumers.start()
        await wait_until(stored_at_least(engine, threshold), within=60, what=f"{threshold} stored")
        process.kill()
        await process.wait()

    process, log = await consumers.start()
    async with Progress(kafka_settings) as progress:
        await wait_until(progress.all_consumed, within=90, what="the feed to be consumed")
    await wait_until(assigned(log), within=30, what="the last consumer to join")
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 30) == 0
    await assert_exact(engine, records)


async def test_two_consumers_one_stopped_half_way_is_exact(
    engine: AsyncEngine, kafka_settings: Settings, consumers: Consumers
) -> None:
    merchants = await register_merchants(engine)
    records = make_records(merchants, 30_000, prefix="r", seed=21)
    copies = random.Random(22).sample(records, 3_000)
    outgoing = messages_of(records + copies, arrays=0.3, seed=23)
    half = len(outgoing) // 2
    bootstrap = kafka_settings.kafka_bootstrap_servers or ""
    first, first_log = await consumers.start()
    second, second_log = await consumers.start()

    async def both_assigned() -> bool:
        first_held, second_held = (
            await partitions_held(first_log),
            await partitions_held(second_log),
        )
        return bool(first_held and second_held) and sorted(first_held + second_held) == list(
            range(6)
        )

    await wait_until(both_assigned, within=60, what="both consumers to share the partitions")
    await produce(bootstrap, kafka_settings.kafka_topic, outgoing[:half])

    await wait_until(stored_at_least(engine, len(records) // 4), within=60, what="a quarter stored")
    first.send_signal(signal.SIGTERM)
    producing = asyncio.create_task(produce(bootstrap, kafka_settings.kafka_topic, outgoing[half:]))
    assert await asyncio.wait_for(first.wait(), 30) == 0
    await producing

    async def second_holds_all() -> bool:
        return await partitions_held(second_log) == list(range(6))

    await wait_until(second_holds_all, within=60, what="the second consumer to take over")
    async with Progress(kafka_settings) as progress:
        await wait_until(progress.all_consumed, within=90, what="the feed to be consumed")
    second.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(second.wait(), 30) == 0
    await assert_exact(engine, records)
