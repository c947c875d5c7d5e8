"""Backfill throughput and memory against the physical limit, in one run.

Generates a standard CSV of N rows and a WeChat Pay bill of N rows, backfills
both with `payfeed backfill` (one command per provider, run side by side) into
a fresh embedded database (its WAL written once before, see `warm_wal`), then
COPYs the same stored rows into an empty table with the same indexes.

Payer references: one of 70,000 in turn per file (customers come back, as in the
bills seen so far: most HMACs are cache hits); `--new-payers`, the worst case,
makes every reference new. Last line:
`backfill records_per_s=<n> copy_records_per_s=<n> ratio=<x> peak_rss_mb=<m> payers=usual|new`
(peak RSS of the backfill processes).
"""

import argparse
import csv
import resource
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    CITIES,
    NEW_PAYERS_HELP,
    PAYFEED,
    bench_env,
    cli,
    copy_rate,
    temp_home,
    uscc_for,
    warm_wal,
)

MERCHANTS = 400
BILL_PAYERS = 70_000
"""Payer references repeat every this many rows of each file in the usual case."""


def write_inputs(home: Path, n: int, new_payers: bool) -> tuple[Path, Path, Path]:
    payers = n if new_payers else BILL_PAYERS
    from demo import samples

    registry = home / "accounts.csv"
    with registry.open("w", newline="") as out:
        out.write("provider,merchant_id,uscc\n")
        for i in range(MERCHANTS):
            out.write(f"bank,M{i:05d},{uscc_for(i)}\nwechat,W{i:08d},{uscc_for(i)}\n")
    start = datetime(2023, 9, 9)
    standard = home / "standard.csv"
    with standard.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(
            [
                "txn_id",
                "kind",
                "amount_fen",
                "currency",
                "occurred_at",
                "merchant_id",
                "channel",
                "mcc",
                "payer_ref",
            ]
        )
        for i in range(n):
            at = start + timedelta(seconds=i * 20 * 86400 // n)
            writer.writerow(
                [
                    f"S{i:010d}",
                    "payment",
                    100 + i % 50000,
                    "CNY",
                    at.isoformat() + "+08:00",
                    f"M{i % MERCHANTS:05d}",
                    "offline",
                    "5812",
                    f"p{i % payers}",
                ]
            )
    bill = home / "wechat.csv"
    with bill.open("wb") as out:
        block = 100_000
        order_fen = 0
        for first in range(0, n, block):
            records = [
                {
                    "txn_id": f"42000{i:015d}",
                    "kind": "payment",
                    "amount_fen": 100 + i % 50000,
                    "local_time": start + timedelta(seconds=i * 20 * 86400 // n),
                    "merchant_id": f"W{i % MERCHANTS:08d}",
                    "channel": "online",
                    "payer_ref": f"o{i % payers}",
                }
                for i in range(first, min(n, first + block))
            ]
            order_fen += sum(r["amount_fen"] for r in records)
            lines = samples.wechatpay_bill("1900000109", records).split(b"\r\n")
            # The header once, then the data rows of every block; one summary at the end.
            out.write(b"\r\n".join(lines[0 if first == 0 else 1 : -3]) + b"\r\n")
        summary = [str(n), samples.yuan(order_fen), "0.00", "0.00", "0.00000"]
        summary += [samples.yuan(order_fen), "0.00"]
        out.write(lines[-3] + b"\r\n" + ",".join("`" + v for v in summary).encode() + b"\r\n")
    return registry, standard, bill


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--new-payers", action="store_true", help=NEW_PAYERS_HELP)
    args = parser.parse_args()
    home = temp_home()
    env = bench_env(home)
    registry, standard, bill = write_inputs(home, args.records, args.new_payers)
    cli(env, "migrate")
    enterprises = home / "enterprises.csv"
    enterprises.write_text(
        "uscc,name,city,kind\n"
        + "".join(
            f"{uscc_for(i)},商户{i},{CITIES[i % len(CITIES)]},retail\n" for i in range(MERCHANTS)
        )
    )
    cli(env, "registry", "import", "--kind", "enterprises", str(enterprises))
    cli(env, "registry", "import", "--kind", "merchant-accounts", str(registry))
    warm_wal(home, 2 * args.records)
    started = time.perf_counter()
    # The two providers' files are loaded side by side, as ops would run them.
    loads = [
        subprocess.Popen(
            [PAYFEED, "backfill", "--provider", provider, "--format", fmt, str(path)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for provider, fmt, path in (("bank", "standard", standard), ("wechat", "wechatpay", bill))
    ]
    for load in loads:
        out, _ = load.communicate()
        if load.returncode:
            raise SystemExit(f"payfeed backfill failed: {out}")
        print(out.strip())
    elapsed = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    rate = 2 * args.records / elapsed
    limit = copy_rate(home)
    print(
        f"backfill records_per_s={rate:.0f} copy_records_per_s={limit:.0f} "
        f"ratio={rate / limit:.2f} peak_rss_mb={peak_mb:.0f} "
        f"payers={'new' if args.new_payers else 'usual'}"
    )


if __name__ == "__main__":
    main()
