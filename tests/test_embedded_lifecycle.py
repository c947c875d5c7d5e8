"""The embedded PostgreSQL under a home of its own: started by the first payfeed
process, shared by every other, stopped when the last one exits cleanly — even
when the process that started it was killed hard and another one adopted it —
and no platformdirs warning on the way when `XDG_RUNTIME_DIR` is unset; its
checkpoints set for campaign-scale ingest."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx
import psutil

from store.db import EMBEDDED_SETTINGS, embedded_url, leave_embedded
from store.settings import Settings
from tests.served import free_port

PAYFEED = [sys.executable, "-c", "from app.cli import main; main()"]


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYFEED_")}
    env.pop("XDG_RUNTIME_DIR", None)
    return {**env, "PAYFEED_HOME": str(home), "PAYFEED_LOG_LEVEL": "WARNING"}


def _postgres_of(home: Path) -> list[psutil.Process]:
    pgdata = str((home / "pgdata").resolve())
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.info["name"] == "postgres" and pgdata in (proc.info["cmdline"] or []):
            found.append(proc)
    return found


def _serve(home: Path, port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [*PAYFEED, "serve", "--port", str(port)],
        env=_env(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        assert server.poll() is None, server.stderr.read() if server.stderr else ""
        assert time.monotonic() < deadline, "payfeed serve did not become ready"
        time.sleep(0.2)


def test_the_last_clean_exit_stops_the_database_whoever_started_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = free_port()
    first = _serve(home, port)
    first.kill()  # as an OOM kill would: no clean-up at all
    first.wait(10)
    (postgres,) = _postgres_of(home)  # left running, as it must be

    second = _serve(home, port)
    try:
        assert _postgres_of(home) == [postgres]  # adopted, not started again
        beside = subprocess.run(
            [*PAYFEED, "tokens", "list"], env=_env(home), capture_output=True, timeout=60
        )
        assert beside.returncode == 0 and beside.stderr == b"", beside.stderr
        assert postgres.is_running()  # a command beside serve leaves it alone
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
    finally:
        second.send_signal(signal.SIGINT)
        assert second.wait(30) == 0
    postgres.wait(10)
    assert _postgres_of(home) == []


def test_a_command_alone_starts_and_stops_it_without_warnings(tmp_path: Path) -> None:
    home = tmp_path / "home"
    done = subprocess.run([*PAYFEED, "migrate"], env=_env(home), capture_output=True, timeout=120)
    assert done.returncode == 0
    assert done.stderr == b""  # no RuntimeDirWarning, no log lines
    assert _postgres_of(home) == []
    assert "pg_ctl" in (home / "embedded-postgres.log").read_text()


def test_serve_demo_says_in_a_few_lines_where_it_is_and_how_to_try_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = free_port()
    server = subprocess.Popen(
        [*PAYFEED, "serve", "--demo", "--port", str(port)],
        env={**_env(home), "PAYFEED_LOG_LEVEL": "INFO"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        lines: list[str] = []
        while not any("Uvicorn running on" in line for line in lines):
            line = server.stdout.readline()
            assert line, "".join(lines)
            lines.append(line.rstrip("\n"))
        curls = {line.split()[0]: line[line.index("curl") :] for line in lines if "curl -s" in line}
        # One token per role, and the regional ones: 浙江's viewer, 杭州's admin.
        assert set(curls) == {"viewer", "admin", "provider", "浙江省", "杭州市"}, lines
        assert curls.pop("杭州市").startswith("curl -s -X POST ")  # run in tests/test_demo.py
        for role, curl in curls.items():
            url = curl.split()[2].strip("'")
            token = curl.split("Bearer ")[1].rstrip('"')
            answer = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
            assert answer.status_code == 200, (role, answer.text)
        first_request = server.stdout.readline()
        assert "uvicorn.access" in first_request and "GET /v1/" in first_request
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)
    assert len(lines) <= 18, "\n".join(lines)
    assert "9026 records in 115 provider batches" in lines[1]  # one delivered late
    assert lines[2].startswith("campaign 2023 (2023-09-09 to 2023-10-08): net 1,034,750.30 yuan")
    assert str(home / "pgdata" / "log") in "\n".join(lines)
    assert not any("Warning" in line or "embedded_postgres" in line for line in lines)
    assert _postgres_of(home) == []


def test_its_checkpoints_are_far_enough_apart_for_campaign_scale_ingest(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    url = embedded_url(settings)

    async def shown() -> dict[str, str]:
        conn = await asyncpg.connect(url)
        try:
            return {name: await conn.fetchval(f"SHOW {name}") for name in EMBEDDED_SETTINGS}
        finally:
            await conn.close()

    auto = tmp_path / "home" / "pgdata" / "postgresql.auto.conf"
    try:
        assert asyncio.run(shown()) == {"max_wal_size": "8GB", "checkpoint_timeout": "15min"}
        written = auto.stat().st_mtime_ns
        assert embedded_url(settings) == url
        assert auto.stat().st_mtime_ns == written  # a second user changes nothing
    finally:
        leave_embedded(settings)
    assert _postgres_of(tmp_path / "home") == []
