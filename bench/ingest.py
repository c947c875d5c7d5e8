"""HTTP ingest throughput against the physical limit, in one run.

Starts `payfeed serve` on a fresh embedded database, registers merchants, pushes
batches of 10,000 standard records from a separate client process, then COPYs
the same stored rows into an empty table with the same indexes (the WAL is
written once before the pushes: see `bench.common.warm_wal`).

Payer references: one of 50,000 in turn (customers come back, as in the feeds
seen so far: most HMACs are cache hits); `--new-payers`, the worst case, makes
every reference new. Last line:
`ingest_http records_per_s=<n> copy_records_per_s=<n> ratio=<x> payers=usual|new`.
"""

import argparse
import multiprocessing
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    NEW_PAYERS_HELP,
    cli,
    copy_rate,
    register_merchants,
    served,
    standard_records,
    temp_home,
    warm_wal,
)

BATCH = 10_000
IN_FLIGHT = 4
"""Two batches per API process on the wire at once."""


def push_all(
    base: str,
    token: str,
    warmup: list[bytes],
    bodies: list[bytes],
    result: "multiprocessing.Queue[float]",
) -> None:
    """The provider's side: up to IN_FLIGHT batches on the wire at once, as a
    provider with several senders would push."""
    import asyncio

    import httpx

    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    async def run() -> float:
        gate = asyncio.Semaphore(IN_FLIGHT)
        async with httpx.AsyncClient(base_url=base, timeout=300) as client:

            async def send(i: int, body: bytes) -> None:
                async with gate:
                    response = await client.post(
                        "/v1/batches", content=body, headers={**headers, "X-Batch-Id": f"bench-{i}"}
                    )
                response.raise_for_status()
                assert response.json()["inserted"] == BATCH, response.text[:500]

            # Untimed, side by side so that every API process gets some: each opens its
            # database pool and warms up first, as it would have in service.
            warming = [
                client.post("/v1/batches", content=body, headers={**headers, "X-Batch-Id": f"w{i}"})
                for i, body in enumerate(warmup)
            ]
            for response in await asyncio.gather(*warming):
                response.raise_for_status()
            started = time.perf_counter()
            await asyncio.gather(*(send(i, body) for i, body in enumerate(bodies)))
            return time.perf_counter() - started

    result.put(asyncio.run(run()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=2, help="API processes (one per core)")
    parser.add_argument("--new-payers", action="store_true", help=NEW_PAYERS_HELP)
    args = parser.parse_args()
    home = temp_home()
    with served(home, args.workers) as (base, env):
        admin = cli(env, "tokens", "create", "--role", "admin")
        token = cli(env, "tokens", "create", "--role", "provider", "--provider", "bench")
        merchants = register_merchants(base, admin, "bench", 400)
        records = standard_records(args.records, merchants, new_payers=args.new_payers)
        bodies = [orjson.dumps(records[i : i + BATCH]) for i in range(0, len(records), BATCH)]
        warm = standard_records(IN_FLIGHT * 100, merchants, prefix="W")
        warmup = [orjson.dumps(warm[i : i + 100]) for i in range(0, len(warm), 100)]
        warm_wal(home, args.records)
        queue: multiprocessing.Queue[float] = multiprocessing.Queue()
        client = multiprocessing.Process(target=push_all, args=(base, token, warmup, bodies, queue))
        client.start()
        elapsed = queue.get()
        client.join()
        rate = args.records / elapsed
        print(f"pushed {args.records} records in {len(bodies)} batches in {elapsed:.2f} s")
        limit = copy_rate(home)
    ratio = rate / limit
    print(
        f"ingest_http records_per_s={rate:.0f} copy_records_per_s={limit:.0f} ratio={ratio:.2f} "
        f"payers={'new' if args.new_payers else 'usual'}"
    )


if __name__ == "__main__":
    main()
