"""The public endpoints under load against a health check, in one run.

Starts `payfeed serve` on a fresh embedded database, registers merchants, writes
`--records` records (default 1,000,000) straight into the records table with one
set-based INSERT, rebuilds the rollups and publishes once; then a concurrent
client loads `GET /v1/public/summary`, `GET /` and `GET /healthz`, each for
`--seconds`. Last line:
`public rps_summary=<n> rps_page=<n> rps_healthz=<n> ratio=<summary/healthz>`.
"""

import argparse
import asyncio
import sys
import time
from pathlib import Path

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import cli, register_merchants, served, temp_home  # noqa: E402

CONCURRENCY = 32
MERCHANTS = 400

GENERATE = """
WITH m AS (
    SELECT (row_number() OVER (ORDER BY ma.merchant_id)) - 1 AS n, ma.merchant_id,
           e.uscc, e.city
    FROM merchant_accounts ma JOIN enterprises e USING (uscc)
), r AS (
    SELECT i, timestamptz '2023-08-10 00:00:00+08' + (i * (60 * 86400::bigint) / $1::bigint)
               * interval '1 second' AS occurred_at
    FROM generate_series(0::bigint, $1::bigint - 1) AS i
)
INSERT INTO records (provider, txn_id, kind, amount_fen, occurred_at, day, merchant_id,
                     channel, enterprise, city, category)
SELECT 'cmb', 'P' || r.i, CASE WHEN r.i % 20 = 0 THEN 'refund' ELSE 'payment' END,
       100 + (r.i * 7919) % 500000, r.occurred_at,
       (r.occurred_at AT TIME ZONE 'Asia/Shanghai')::date, m.merchant_id,
       CASE WHEN r.i % 3 = 0 THEN 'online' ELSE 'offline' END, m.uscc, m.city, 'other'
FROM r JOIN m ON m.n = r.i % (SELECT count(*) FROM m)
"""


async def generate(url: str, records: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(GENERATE, records)
    finally:
        await conn.close()


async def load(base: str, path: str, seconds: float) -> float:
    """Requests per second of `CONCURRENCY` clients, each sending one request
    after another until `seconds` have passed."""
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        (await client.get(path)).raise_for_status()
        done = 0
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                (await client.get(path)).raise_for_status()
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    home = temp_home()
    with served(home) as (base, env):
        admin = cli(env, "tokens", "create", "--role", "admin")
        register_merchants(base, admin, "cmb", MERCHANTS)
        from store.db import embedded_url
        from store.settings import Settings

        started = time.perf_counter()
        asyncio.run(generate(embedded_url(Settings(home=home)), args.records))
        cli(env, "rollups", "rebuild")
        print(f"loaded {args.records} records in {time.perf_counter() - started:.1f}s")
        print(cli(env, "publish", "--campaign", "2023", "--note", "bench"))
        rps = {
            name: asyncio.run(load(base, path, args.seconds))
            for name, path in (
                ("summary", "/v1/public/summary"),
                ("page", "/"),
                ("healthz", "/healthz"),
            )
        }
    print(
        f"public rps_summary={rps['summary']:.0f} rps_page={rps['page']:.0f} "
        f"rps_healthz={rps['healthz']:.0f} ratio={rps['summary'] / rps['healthz']:.2f}"
    )


if __name__ == "__main__":
    main()
