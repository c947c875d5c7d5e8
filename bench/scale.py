"""Campaign scale: 10,000 enterprises in 100 cities, filled through HTTP batches.

Starts `payfeed serve --workers 2` on a fresh embedded database, registers 100
participating cities and 10,000 enterprises (one merchant account each), then
pushes standard records in 10,000-record batches, several in flight, through
`POST /v1/batches` — the product's own write path, sketches included — and
prints the ingest rate every `--every` records. Two orders: `time` (each batch a
short span of one day, over all enterprises, as a large provider's feed) and
`scattered` (each batch spread over 20 days and all enterprises: late files,
mixed backfills). Then p50/p99 of the dashboard reads, sequential requests of a
viewer: recomputed (`--recomputed` of them, a data version bump before each
request, so nothing comes from the cache), then from the process cache and
answered 304, each asked by wrk over one connection for `--seconds`, as are the
public summary and `/healthz`, the floor of any answer; all on a store at rest
(`at_rest`). Payer sketches are merged
by the compactor while the records arrive: the largest age of a queued batch is
printed as `payer_lag_max_s`.

It says the disk it needs before it starts and removes its files at exit. Last
line: `scale order=… stored=N ratio=<ingest at the end ÷ on the empty store>
rollup_p99_ms=… summary_p99_ms=… enterprise_p99_ms=… report_p99_ms=… (reads
recomputed) cached_p99_ms=… not_modified_p99_ms=… (the largest of the four)
bytes_per_record=…`.
"""

import argparse
import asyncio
import multiprocessing
import random
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import cli, served, temp_home, uscc_for, warm_wal  # noqa: E402

ENTERPRISES = 10_000
CITY_COUNT = 100
BATCH = 10_000
IN_FLIGHT = 4
DAYS = 20
FIRST_DAY = 9  # 2023-09-09, the demo campaign's first day
PAYERS = 2_000_000
DISK_BYTES_PER_RECORD = 700
"""Database, WAL and headroom per record: runs of 1 M and 3 M records used 510
and 371 bytes (the run prints what it used) and the WAL stays near the embedded
server's max_wal_size of 8 GB (`store.db.EMBEDDED_SETTINGS`), so 700 leaves
room without refusing a 100 M run on an 80 GB disk."""
MCCS = ["5812", "5411", "5732", "5651", "5311", "7011", None]


def campaign_cities() -> list[str]:
    """100 prefecture-level cities, at most half of each province's (the rule)."""
    from schemas.regions import CITIES, MUNICIPALITY_PROVINCES, prefecture_count

    by_province: dict[str, list[str]] = {}
    for code, city in CITIES.items():
        if city.province not in MUNICIPALITY_PROVINCES:
            by_province.setdefault(city.province, []).append(code)
    chosen: list[str] = []
    for province, codes in sorted(by_province.items()):
        chosen += sorted(codes)[: prefecture_count(province) // 2]
    return chosen[:CITY_COUNT]


def register(base: str, admin: str, cities: list[str]) -> None:
    headers = {"Authorization": f"Bearer {admin}"}
    with httpx.Client(base_url=base, headers=headers, timeout=600) as client:
        client.post("/v1/registry/cities", json=[{"city": c} for c in cities]).raise_for_status()
        for start in range(0, ENTERPRISES, 2000):
            part = range(start, min(start + 2000, ENTERPRISES))
            client.post(
                "/v1/registry/enterprises",
                json=[
                    {
                        "uscc": uscc_for(i),
                        "name": f"企业{i}",
                        "city": cities[i % len(cities)],
                        "kind": "retail",
                    }
                    for i in part
                ],
            ).raise_for_status()
            client.post(
                "/v1/registry/merchant-accounts",
                json=[
                    {"provider": "bench", "merchant_id": f"M{i:05d}", "uscc": uscc_for(i)}
                    for i in part
                ],
            ).raise_for_status()


def batch_body(order: str, number: int, total: int) -> bytes:
    """Batch `number` of `total`: records in time order over the 20 days (`time`),
    or each record on any of the 20 days (`scattered`); enterprises and payers
    drawn at random either way."""
    rng = random.Random(number)
    span = DAYS * 86400
    records = []
    for k in range(BATCH):
        i = number * BATCH + k
        m = rng.randrange(ENTERPRISES)
        second = i * span // (total * BATCH) if order == "time" else rng.randrange(span)
        mcc = MCCS[m % len(MCCS)]
        records.append(
            {
                "txn_id": f"T{i:010d}",
                "kind": "refund" if i % 20 == 0 else "payment",
                "amount_fen": 100 + (i * 7919) % 500000,
                "currency": "CNY",
                "occurred_at": f"2023-09-{FIRST_DAY + second // 86400:02d}T"
                f"{second % 86400 // 3600:02d}:{second % 3600 // 60:02d}:{second % 60:02d}+08:00",
                "merchant_id": f"M{m:05d}",
                "channel": "offline" if m % 3 else "online",
                **({"mcc": mcc} if mcc else {}),
                "payer_ref": f"payer-{rng.randrange(PAYERS)}",
            }
        )
    return orjson.dumps(records)


def push_window(
    base: str, token: str, order: str, numbers: range, total: int, result: "Any"
) -> None:
    """One window of batches, bodies made first (untimed), then pushed with
    IN_FLIGHT on the wire; puts the seconds the pushes took."""
    bodies = [(n, batch_body(order, n, total)) for n in numbers]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    async def run() -> float:
        gate = asyncio.Semaphore(IN_FLIGHT)
        async with httpx.AsyncClient(base_url=base, timeout=600) as client:

            async def send(n: int, body: bytes) -> None:
                async with gate:
                    response = await client.post(
                        "/v1/batches", content=body, headers={**headers, "X-Batch-Id": f"s{n}"}
                    )
                response.raise_for_status()
                assert response.json()["inserted"] == BATCH, response.text[:300]

            started = time.perf_counter()
            await asyncio.gather(*(send(n, body) for n, body in bodies))
            return time.perf_counter() - started

    result.put(asyncio.run(run()))


class LagProbe:
    """The age of the oldest queued payer batch, sampled every second."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.worst = 0.0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            while not self.stopping.is_set():
                age = await conn.fetchval(
                    "SELECT extract(epoch FROM now() - min(queued_at)) FROM payer_queue"
                )
                self.worst = max(self.worst, float(age or 0))
                await asyncio.sleep(1)
        finally:
            await conn.close()


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def fetch_value(dsn: str, sql: str) -> Any:
    """One statement on a connection of its own, from synchronous code."""

    async def run() -> Any:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()

    return asyncio.run(run())


def at_rest(dsn: str) -> float:
    """Waits until no autovacuum worker runs, then checkpoints: the reads are
    timed on a store at rest, not against the vacuum of the tables the ingest
    just filled (which took /healthz's own p99 from 0.5 to 3.5 ms). Returns the
    seconds waited."""
    started = time.perf_counter()
    busy = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'"
    while fetch_value(dsn, busy):
        time.sleep(1)
    fetch_value(dsn, "CHECKPOINT")
    return time.perf_counter() - started


def wrk_percentiles(url: str, headers: dict[str, str], seconds: int) -> tuple[float, float]:
    """p50/p99 in ms of one connection asking `url` again and again for `seconds`,
    measured by wrk (a C client: what it adds is microseconds, not a Python
    client's half millisecond)."""
    command = ["wrk", "-t1", "-c1", f"-d{seconds}s", "--latency", url]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    found: dict[str, float] = {}
    for percent, value, unit in re.findall(r"^\s+(50|99)%\s+([0-9.]+)(us|ms|s)$", out, re.M):
        found[percent] = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    return found["50"], found["99"]


def time_reads(
    base: str,
    viewer: str,
    path: str,
    params: dict[str, Any],
    seconds: int,
    recomputed: int,
    before: Callable[[], None],
) -> dict[str, tuple[float, float]]:
    """p50/p99 in ms: recomputed (`before` bumps the data version before each
    request, so nothing comes from the cache), then from the cache and 304 (wrk)."""
    headers = {"Authorization": f"Bearer {viewer}"}
    misses = []
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        client.get(path, params=params).raise_for_status()
        for _ in range(recomputed):
            before()
            started = time.perf_counter()
            client.get(path, params=params).raise_for_status()
            misses.append(time.perf_counter() - started)
        answer = client.get(path, params=params)
    url = str(answer.url)
    etag = answer.headers["etag"]
    miss_p50, miss_p99 = percentiles(misses)
    return {
        "miss": (miss_p50 * 1000, miss_p99 * 1000),
        "cached": wrk_percentiles(url, headers, seconds),
        "304": wrk_percentiles(url, {**headers, "If-None-Match": etag}, seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=2_000_000)
    parser.add_argument("--order", choices=("time", "scattered"), default="time")
    parser.add_argument("--every", type=int, default=500_000, help="records per rate window")
    parser.add_argument("--seconds", type=int, default=5, help="wrk's run per cached read")
    parser.add_argument("--recomputed", type=int, default=100, help="requests per recomputed read")
    args = parser.parse_args()
    batches = args.records // BATCH
    per_window = max(1, args.every // BATCH)
    if shutil.which("wrk") is None:
        raise SystemExit("bench/scale.py times cached reads with wrk: apt-get install wrk")
    home = temp_home()
    need = args.records * DISK_BYTES_PER_RECORD
    free = shutil.disk_usage(home).free
    print(f"needs about {need / 1e9:.1f} GB of disk under {home} ({free / 1e9:.0f} GB free)")
    if free < need:
        raise SystemExit("not enough disk")
    started_all = time.perf_counter()
    with served(home, workers=2) as (base, env):
        admin = cli(env, "tokens", "create", "--role", "admin")
        viewer = cli(env, "tokens", "create", "--role", "viewer")
        token = cli(env, "tokens", "create", "--role", "provider", "--provider", "bench")
        register(base, admin, campaign_cities())
        warm_wal(home, args.records)
        from store.db import embedded_url
        from store.settings import Settings

        dsn = embedded_url(Settings(home=home))
        for counters in ("wal", "checkpointer"):  # the ingest's own, not the warm-up's
            fetch_value(dsn, f"SELECT pg_stat_reset_shared('{counters}')")
        probe = LagProbe(dsn)
        probe.thread.start()
        rates = []
        for start in range(0, batches, per_window):
            numbers = range(start, min(start + per_window, batches))
            queue: Any = multiprocessing.Queue()
            pusher = multiprocessing.Process(
                target=push_window, args=(base, token, args.order, numbers, batches, queue)
            )
            pusher.start()
            elapsed = queue.get()
            pusher.join()
            rates.append(len(numbers) * BATCH / elapsed)
            elapsed = time.perf_counter() - started_all
            print(
                f"stored={numbers.stop * BATCH} rate={rates[-1]:,.0f} records/s "
                f"payer_lag_max_s={probe.worst:.1f} elapsed={elapsed:.0f}s",
                flush=True,
            )
        ingest_seconds = time.perf_counter() - started_all

        settled = time.perf_counter()
        # The compactor runs every few seconds in the API processes.
        while fetch_value(dsn, "SELECT count(*) FROM payer_queue"):
            time.sleep(0.5)
        probe.stopping.set()
        print(
            f"ingest took {ingest_seconds:.0f} s; payer queue drained "
            f"{time.perf_counter() - settled:.1f} s after the last batch; "
            f"payer_lag_max_s={probe.worst:.1f}"
        )
        print(f"store at rest {at_rest(dsn):.0f} s later", flush=True)

        def bump() -> None:
            fetch_value(dsn, "UPDATE campaigns SET name = name WHERE code = '2023'")

        window = {"from": "2023-09-09", "to": "2023-10-08"}
        reads: dict[str, tuple[str, dict[str, Any]]] = {
            "rollup": ("/v1/rollups", {**window, "dims": "day,city"}),
            "summary": ("/v1/campaigns/2023/summary", {}),
            "enterprise": ("/v1/rollups", {**window, "dims": "enterprise", "limit": 1000}),
            "report": ("/v1/reports/2023", {"level": "city"}),
        }
        p99 = {}
        for name, (path, params) in reads.items():
            timed = time_reads(base, viewer, path, params, args.seconds, args.recomputed, bump)
            p99[name] = timed["miss"][1]
            p99["cached"] = max(p99.get("cached", 0.0), timed["cached"][1])
            p99["304"] = max(p99.get("304", 0.0), timed["304"][1])
            print(
                f"{name}: recomputed p50/p99 {timed['miss'][0]:.1f}/{timed['miss'][1]:.1f} ms, "
                f"cached {timed['cached'][0]:.2f}/{timed['cached'][1]:.2f} ms, "
                f"304 {timed['304'][0]:.2f}/{timed['304'][1]:.2f} ms",
                flush=True,
            )
        for name, path in (("public summary", "/v1/public/summary"), ("/healthz", "/healthz")):
            p50, p99_other = wrk_percentiles(base + path, {}, args.seconds)
            print(f"{name}: p50/p99 {p50:.2f}/{p99_other:.2f} ms", flush=True)

        async def sizes() -> tuple[int, int, list[Any], list[Any], Any]:
            conn = await asyncpg.connect(dsn)
            try:
                stored = await conn.fetchval("SELECT count(*) FROM records")
                size = await conn.fetchval("SELECT pg_database_size(current_database())")
                tables = await conn.fetch(
                    "SELECT relname, pg_table_size(relid) AS heap, "
                    "pg_indexes_size(relid) AS indexes FROM pg_stat_user_tables "
                    "ORDER BY pg_total_relation_size(relid) DESC LIMIT 8"
                )
                updates = await conn.fetch(
                    "SELECT relname, n_tup_upd, n_tup_hot_upd, n_dead_tup, autovacuum_count "
                    "FROM pg_stat_user_tables WHERE n_tup_upd > 0 ORDER BY n_tup_upd DESC"
                )
                wal = await conn.fetchrow(
                    "SELECT wal_bytes, wal_fpi, num_timed + num_requested AS checkpoints "
                    "FROM pg_stat_wal, pg_stat_checkpointer"
                )
                return int(stored), int(size), list(tables), list(updates), wal
            finally:
                await conn.close()

        stored, size, tables, updates, wal = asyncio.run(sizes())
        print(
            f"wal since the ingest began: {int(wal['wal_bytes']) / stored:.0f} bytes per record, "
            f"{wal['wal_fpi'] * 1000 / stored:.0f} full-page images per 1,000 records, "
            f"{wal['checkpoints']} checkpoints"
        )
        print(
            "largest (heap+indexes): "
            + ", ".join(
                f"{t['relname']} {t['heap'] / 1e6:.0f}+{t['indexes'] / 1e6:.0f} MB" for t in tables
            )
        )
        print(
            "updates (HOT share, dead rows, autovacuums): "
            + ", ".join(
                f"{u['relname']} {u['n_tup_upd']} ({u['n_tup_hot_upd'] / u['n_tup_upd']:.0%}, "
                f"{u['n_dead_tup']}, {u['autovacuum_count']})"
                for u in updates
            )
        )
    print(f"whole run {time.perf_counter() - started_all:.0f} s")
    print(
        f"scale order={args.order} stored={stored} ratio={rates[-1] / rates[0]:.2f} "
        f"rollup_p99_ms={p99['rollup']:.1f} summary_p99_ms={p99['summary']:.1f} "
        f"enterprise_p99_ms={p99['enterprise']:.1f} report_p99_ms={p99['report']:.1f} "
        f"cached_p99_ms={p99['cached']:.2f} not_modified_p99_ms={p99['304']:.2f} "
        f"bytes_per_record={size / stored:.0f}"
    )


if __name__ == "__main__":
    main()
