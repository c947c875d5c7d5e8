"""Concurrent providers meeting the same new payers: no 5xx, rollups exact.

Starts `payfeed serve --workers 2` on a fresh embedded database, registers
merchants, then has 8 clients push batches for `--seconds` (60 by default), each
batch of 500 records whose payer references are new every half second and the
same for every client in that half second: the batches that meet them run at
once in both API processes' threads. Any answer but 200 is counted and fails
the run. Then `payfeed rollups verify` must find the rollups equal to a recount
of the records. Last line:
`soak clients=<n> seconds=<s> batches=<n> records=<n> errors=<n> verify=clean|DIFFERS`;
exit 1 unless every batch was stored and the rollups are clean.
"""

import argparse
import asyncio
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PAYFEED, cli, register_merchants, served, temp_home  # noqa: E402

CLIENTS = 8
BATCH = 500
SHARED_PAYERS = 200
"""New payer references per half second, shared by every client's batches."""


def batch(client: int, serial: int, merchants: list[str]) -> bytes:
    payers = int(time.monotonic() * 2)
    records = [
        {
            "txn_id": f"c{client}-{serial}-{i}",
            "kind": "refund" if i % 17 == 0 else "payment",
            "amount_fen": 100 + (client * 7919 + serial * 31 + i) % 90_000,
            "currency": "CNY",
            "occurred_at": f"2023-09-{10 + (serial + i) % 20:02d}T12:{i % 60:02d}:00+08:00",
            "merchant_id": merchants[(client + i) % len(merchants)],
            "channel": "online" if i % 3 else "offline",
            "payer_ref": f"soak-{payers}-{i % SHARED_PAYERS}",
        }
        for i in range(BATCH)
    ]
    return orjson.dumps(records)


async def push_for(base: str, token: str, merchants: list[str], seconds: float) -> Counter[int]:
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + seconds
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    async def client(n: int) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=120) as http:
            serial = 0
            while time.monotonic() < deadline:
                response = await http.post(
                    "/v1/batches",
                    content=batch(n, serial, merchants),
                    headers={**headers, "X-Batch-Id": f"soak-{n}-{serial}"},
                )
                statuses[response.status_code] += 1
                if response.status_code != 200:
                    print(
                        f"client {n} batch {serial}: {response.status_code} {response.text[:300]}"
                    )
                serial += 1

    await asyncio.gather(*(client(n) for n in range(CLIENTS)))
    return statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    home = temp_home()
    with served(home, workers=2) as (base, env):
        admin = cli(env, "tokens", "create", "--role", "admin")
        token = cli(env, "tokens", "create", "--role", "provider", "--provider", "soak")
        merchants = register_merchants(base, admin, "soak", 40)
        statuses = asyncio.run(push_for(base, token, merchants, args.seconds))
        verify = subprocess.run(
            [PAYFEED, "rollups", "verify"], env=env, capture_output=True, text=True
        )
    print(verify.stdout.strip()[-2000:])
    batches = sum(statuses.values())
    errors = batches - statuses[200]
    clean = verify.returncode == 0
    print(f"answers by status: {dict(sorted(statuses.items()))}")
    print(
        f"soak clients={CLIENTS} seconds={args.seconds:.0f} batches={batches} "
        f"records={statuses[200] * BATCH} errors={errors} verify={'clean' if clean else 'DIFFERS'}"
    )
    raise SystemExit(0 if clean and not errors and batches else 1)


if __name__ == "__main__":
    main()
