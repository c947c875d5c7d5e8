"""Backfill: exact summaries, idempotent reruns, resumption after a crash, the
same rollups as HTTP, and a non-zero exit for an unreadable file."""

import gzip
import os
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from demo import samples
from ingest.backfill import backfill_file
from ingest.pipeline import Pipeline
from ingest.rollups import verify_rollups
from tests.cli import run_payfeed
from tests.factories import enterprise_with_account, record

SECRET = b"test-secret"


def wechat_records(n: int) -> list[dict[str, Any]]:
    start = datetime(2023, 9, 9, 23, 0)
    records = []
    for i in range(n):
        records.append(
            {
                "txn_id": f"4200{i:016d}",
                "kind": "payment",
                "amount_fen": 1000 + i,
                "local_time": start + timedelta(minutes=7 * i),
                "merchant_id": "1900000321",
                "channel": ["offline", "online"][i % 2],
                "payer_ref": f"o{i % 13}",
            }
        )
        if i % 10 == 0:
            records.append(
                {
                    **records[-1],
                    "txn_id": f"5030{i:016d}",
                    "kind": "refund",
                    "amount_fen": 500,
                    "original_txn_id": records[-1]["txn_id"],
                }
            )
    return records


async def rollup_rows(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT * FROM rollup_enterprise_day ORDER BY 1, 2, 3, 4, 5, 6")
        )
        return [tuple(r) for r in rows]


@pytest.fixture
async def wechat_merchant(client: httpx.AsyncClient, admin: dict[str, str]) -> str:
    return await enterprise_with_account(client, admin, provider="wx", merchant_id="1900000321")


async def test_backfill_counts_skips_a_loaded_file_and_matches_http(
    engine: AsyncEngine,
    pipeline: Pipeline,
    client: httpx.AsyncClient,
    provider_token: Any,
    wechat_merchant: str,
    tmp_path: Path,
) -> None:
    body = samples.wechatpay_bill("1900000109", wechat_records(200))
    path = tmp_path / "bill.csv.gz"
    path.write_bytes(gzip.compress(body))

    seen: list[tuple[int, int, int]] = []
    summary = await backfill_file(
        engine,
        pipeline,
        path,
        provider="wx",
        fmt="wechatpay",
        chunk_rows=37,
        progress=lambda *at: seen.append(at),
    )
    assert summary.error is None and not summary.skipped
    # a .gz file's progress is its compressed bytes read, so a bar has a percent and an ETA
    assert [rows for rows, _, _ in seen] == [37, 74, 111, 148, 185, 220]
    assert {total for _, _, total in seen} == {path.stat().st_size}
    assert seen[-1][1] == path.stat().st_size
    assert summary.counts == {
        "received": 220,
        "inserted": 220,
        "duplicates": 0,
        "rejected": 0,
        "quarantined": 0,
    }
    assert summary.control_totals is not None and summary.control_totals["match"] is True
    assert summary.rows_done == 220
    by_backfill = await rollup_rows(engine)

    again = await backfill_file(engine, pipeline, path, provider="wx", fmt="wechatpay")
    assert again.skipped and again.counts["inserted"] == 220  # the stored summary, nothing new

    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE records, rollup_city_day, rollup_enterprise_day"))
    token = await provider_token("wx")
    response = await client.post(
        "/v1/batches?format=wechatpay",
        content=body,
        headers={**token, "X-Batch-Id": "wx-1", "Content-Type": "text/csv"},
    )
    assert response.json()["inserted"] == 220
    assert response.json()["control_totals"] == summary.control_totals
    assert await rollup_rows(engine) == by_backfill


async def test_backfill_resumes_after_a_crash_without_counting_twice(
    engine: AsyncEngine, pipeline: Pipeline, wechat_merchant: str, tmp_path: Path
) -> None:
    path = tmp_path / "bill.csv"
    path.write_bytes(samples.wechatpay_bill("1900000109", wechat_records(100)))

    class Crash(Exception):
        pass

    def crash_after_two_chunks(rows: int, position: int, total: int) -> None:
        if rows >= 60:
            raise Crash

    with pytest.raises(Crash):
        await backfill_file(
            engine,
            pipeline,
            path,
            provider="wx",
            fmt="wechatpay",
            chunk_rows=30,
            progress=crash_after_two_chunks,
        )
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM records"))).scalar() == 60
    resumed = await backfill_file(
        engine, pipeline, path, provider="wx", fmt="wechatpay", chunk_rows=30
    )
    assert resumed.counts["inserted"] == 110 and resumed.counts["duplicates"] == 0
    assert resumed.rows_done == 110
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM records"))).scalar() == 110
        assert await verify_rollups(conn, date(2023, 9, 1), date(2023, 10, 31)) == []


async def test_standard_csv_with_bad_rows_keeps_the_rest(
    engine: AsyncEngine,
    pipeline: Pipeline,
    client: httpx.AsyncClient,
    admin: dict[str, str],
    tmp_path: Path,
) -> None:
    await enterprise_with_account(client, admin, provider="cmb", merchant_id="M1")
    path = tmp_path / "records.csv"
    path.write_text(
        "txn_id,kind,amount_fen,currency,occurred_at,merchant_id,channel\n"
        "T1,payment,100,CNY,2023-09-10T10:00:00+08:00,M1,offline\n"
        "T2,payment,abc,CNY,2023-09-10T10:00:00+08:00,M1,offline\n"
        "T3,payment,300,CNY,2023-09-10T10:00:00+08:00,NOPE,offline\n"
        "T4,refund,50,CNY,2023-09-11T10:00:00+08:00,M1,online\n"
    )
    summary = await backfill_file(
        engine, pipeline, path, provider="cmb", fmt="standard", chunk_rows=2
    )
    assert summary.counts == {
        "received": 4,
        "inserted": 2,
        "duplicates": 0,
        "rejected": 2,
        "quarantined": 1,
    }
    assert summary.errors_by_code == {"invalid_field": 1, "unknown_merchant": 1}
    assert [(e["index"], e["code"]) for e in summary.sample_errors] == [
        (1, "invalid_field"),
        (2, "unknown_merchant"),
    ]


def test_cli_exits_non_zero_when_a_file_cannot_be_read(database_url: str, tmp_path: Path) -> None:
    good = tmp_path / "empty.ndjson"
    good.write_text("")
    env = {
        **os.environ,
        "PAYFEED_DATABASE_URL": database_url,
        "PAYFEED_SECRET_KEY": "x",
        "PAYFEED_HOME": str(tmp_path / "home"),
    }
    payfeed = str(Path(sys.executable).with_name("payfeed"))
    done = subprocess.run(
        [payfeed, "backfill", "--provider", "cmb", str(good), str(tmp_path / "missing.csv")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "missing.csv: FAILED" in done.stdout
    assert "empty.ndjson: read 0" in done.stdout


async def test_cli_leaves_its_metrics_for_a_textfile_collector(
    database_url: str, tmp_path: Path
) -> None:
    """A command has no /metrics: `--metrics-file` leaves the run's records by
    outcome, source backfill, where node_exporter's textfile collector reads them."""
    records = tmp_path / "records.ndjson"
    unknown = orjson.dumps(record("M1", merchant_id="NOPE"))
    records.write_bytes(unknown + b"\n" + b'{"txn_id": "M2"}\n')
    metrics = tmp_path / "payfeed.prom"
    done = await run_payfeed(
        database_url,
        tmp_path / "home",
        *("backfill", "--provider", "cmb", "--metrics-file", str(metrics), str(records)),
    )
    assert done.returncode == 0, done.stderr
    lines = metrics.read_text().splitlines()
    for outcome in ("unknown_merchant", "invalid_field"):
        series = f'payfeed_records_total{{outcome="{outcome}",provider="cmb",source="backfill"}}'
        assert f"{series} 1.0" in lines, outcome
