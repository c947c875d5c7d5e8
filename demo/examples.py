"""The files in `examples/`: small, in each provider's real format, for trying
the commands in the README against the demo campaign.

They are written by code (`python -m demo.examples examples`) so that they are
the formats the adapters read, and byte for byte reproducible (a test compares
the committed files with a fresh run): fixed timestamps inside the .gz and the
.zip, records drawn from a fixed seed.

The registry files add one enterprise in Hangzhou (a demo city) with an account
at each of the demo's providers; the provider files hold sales of the demo's
own shops and of that enterprise during the campaign, with transaction ids of
their own, so that loading them after the demo inserts every record once.
"""

import csv
import gzip
import io
import random
import sys
import zipfile
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from demo import samples
from demo.campaign import WECHAT_SERVICE_PROVIDER, demo_shops
from schemas.records import STANDARD_FIELDS
from schemas.uscc import uscc_check_char

NEW_USCC = "91330100MA2H00001" + uscc_check_char("91330100MA2H00001")
NEW_ACCOUNTS = {
    "unionpay": "898330199990001",
    "alipay": "2088999900000001",
    "wechatpay": "1999990001",
    "cmb": "CMB99001",
}
DAY = date(2023, 10, 1)
"""The day of the sales: in the campaign, a settlement day of the ZM file."""


def _registry() -> dict[str, list[dict[str, Any]]]:
    return {
        "cities": [{"city": "330100"}, {"city": "330200", "last_day": "2023-10-15"}],
        "enterprises": [
            {
                "uscc": NEW_USCC,
                "name": "杭州湖滨家电城",
                "city": "330100",
                "kind": "retail",
                "category": "appliance",
            }
        ],
        "merchant-accounts": [
            {"provider": p, "merchant_id": m, "uscc": NEW_USCC} for p, m in NEW_ACCOUNTS.items()
        ],
        "activities": [
            {
                "city": "330100",
                "theme": "家电以旧换新",
                "title": "杭州家电以旧换新周",
                "first_day": "2023-10-01",
                "last_day": "2023-10-07",
                "sessions": 7,
            }
        ],
        "policies": [{"unit": "330100", "title": "杭州市家电消费补贴", "issued_on": "2023-09-20"}],
    }


def _sales(provider: str, n: int) -> list[dict[str, Any]]:
    """`n` sales (and a refund of the first) on `DAY`: the new enterprise's and the
    demo shops' accounts at `provider` in turn."""
    rng = random.Random(f"examples-{provider}")
    accounts = [NEW_ACCOUNTS[provider]] + [s["accounts"][provider] for s in demo_shops()]
    records = []
    for i in range(n):
        local = datetime(DAY.year, DAY.month, DAY.day, 9) + timedelta(minutes=37 * i)
        records.append(
            {
                "txn_id": f"EX{provider[:2].upper()}{DAY:%Y%m%d}{i:06d}",
                "kind": "payment",
                "amount_fen": rng.randrange(500, 200_000),
                "local_time": local,
                "merchant_id": accounts[i % len(accounts)],
                "channel": ("offline", "online")[i % 2],
                "mcc": "5722",
                "payer_ref": f"example-payer-{rng.randrange(40)}",
            }
        )
    first = records[0]
    records.append(
        {
            **first,
            "txn_id": first["txn_id"] + "R",
            "kind": "refund",
            "amount_fen": first["amount_fen"] // 2,
            "local_time": first["local_time"] + timedelta(hours=2),
            "original_txn_id": first["txn_id"],
        }
    )
    return records


def _standard_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [samples.standard_row(r) for r in records]


def _csv(rows: list[dict[str, Any]], header: list[str]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, header, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
    return out.getvalue().encode()


def _gzip(body: bytes, name: str) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(filename=name, mode="wb", fileobj=out, mtime=0) as packed:
        packed.write(body)
    return out.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as packed:
        for name, body in members.items():
            info = zipfile.ZipInfo(name, date_time=(2023, 10, 2, 9, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            packed.writestr(info, body)
    return out.getvalue()


def _parquet(rows: list[dict[str, Any]]) -> bytes:
    out = io.BytesIO()
    table = pa.Table.from_pylist(rows)
    pq.write_table(table, out, compression="zstd")
    return out.getvalue()


SUMMARY = "#支付宝业务明细汇总\r\n"
"""The summary file beside the bill in Alipay's download, which backfill passes over."""


def example_files() -> dict[str, bytes]:
    """Every example file by its path under `examples/`."""
    files = {
        f"registry/{kind}.csv": _csv(rows, list(dict.fromkeys(k for r in rows for k in r)))
        for kind, rows in _registry().items()
    }
    zm_name = f"INN{DAY:%y%m%d}88ZM_898330199990001"
    files[f"unionpay/{zm_name}"] = samples.unionpay_zm(_sales("unionpay", 12))
    alipay = samples.alipay_bill("20889999000000010156", _sales("alipay", 12), DAY, DAY)
    files["alipay/20889999000000010156_20231001.csv.zip"] = _zip(
        {
            "20889999000000010156_20231001_业务明细.csv": alipay,
            "20889999000000010156_20231001_业务明细(汇总).csv": SUMMARY.encode("gbk"),
        }
    )
    wechat = samples.wechatpay_bill(WECHAT_SERVICE_PROVIDER, _sales("wechatpay", 12))
    files["wechatpay/bill-2023-10-01.csv.gz"] = _gzip(wechat, "bill-2023-10-01.csv")
    standard = _standard_rows(_sales("cmb", 16))
    files["standard/records-2023-10-01.csv"] = _csv(standard[:9], list(STANDARD_FIELDS))
    files["standard/records-2023-10-01.parquet"] = _parquet(standard[9:])
    return files


def write_examples(root: Path) -> list[Path]:
    written = []
    for name, body in example_files().items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_examples(Path(sys.argv[1] if len(sys.argv) > 1 else "examples")):
        print(path)
