"""The public page at `/` and the public summary once publications exist: the
latest publication's figures, the revisions, a chart drawn by the server; a real
headless Chromium loads it from `payfeed serve` and fetches nothing elsewhere."""

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from app.public_page import money
from tests.factories import enterprise_with_account, push, record, register
from tests.served import free_port

CHROMIUM = next(
    (p for p in (shutil.which("chromium"), shutil.which("chromium-browser")) if p), None
)
EXTERNAL = re.compile(r"""(?:src|href|action)\s*=\s*["']?(?:https?:)?//|url\(|@import|<script""")


async def load(client: httpx.AsyncClient, admin: dict[str, str], provider_token: Any) -> None:
    cities = [{"city": c} for c in ("330100", "330200", "320100")]
    assert (await register(client, admin, "cities", cities)).status_code == 200
    for merchant, city in (("M1", "330100"), ("M2", "330200"), ("M3", "320100")):
        await enterprise_with_account(
            client, admin, provider="cmb", merchant_id=merchant, city=city
        )
    activity = {
        "city": "330100",
        "theme": "启动仪式",
        "title": "杭州启动仪式",
        "first_day": "2023-09-09",
        "last_day": "2023-09-09",
        "sessions": 2,
    }
    assert (await register(client, admin, "activities", [activity])).status_code == 200
    policy = {"unit": "33", "title": "浙江省促消费十条", "issued_on": "2023-09-01"}
    assert (await register(client, admin, "policies", [policy])).status_code == 200
    cmb = await provider_token("cmb")
    records = [
        record(
            "B1", merchant_id="M1", amount_fen=90_000_000, occurred_at="2023-08-20T10:00:00+08:00"
        ),
        record("T1", merchant_id="M1", amount_fen=123_456_789),
        record(
            "T2", merchant_id="M2", amount_fen=45_000_000, occurred_at="2023-09-25T10:00:00+08:00"
        ),
        record(
            "T3", merchant_id="M3", amount_fen=7_000_000, occurred_at="2023-10-01T10:00:00+08:00"
        ),
    ]
    assert (await push(client, cmb, "b1", records)).json()["inserted"] == 4


async def test_page_and_summary_show_the_latest_publication(
    client: httpx.AsyncClient, app: FastAPI, admin: dict[str, str], provider_token: Any
) -> None:
    await load(client, admin, provider_token)
    live = await client.get("/")
    assert live.status_code == 200 and "实时统计（尚未正式发布）" in live.text
    assert "publication" not in (await client.get("/v1/public/summary")).json()

    posted = await client.post(
        "/v1/campaigns/2023/publications", json={"note": "首次发布"}, headers=admin
    )
    first = posted.json()
    cmb = await provider_token("cmb")
    await push(client, cmb, "b2", [record("T4", merchant_id="M2", amount_fen=1_000_000)])
    second = (
        await client.post("/v1/campaigns/2023/publications", json={"note": "补录"}, headers=admin)
    ).json()
    app.state.public_caches.clear()

    summary = (await client.get("/v1/public/summary")).json()
    assert (summary["publication"], summary["published_at"]) == (2, summary["as_of"])
    assert summary["measures"] == second["measures"]
    assert summary["measures"]["net_fen"] == first["measures"]["net_fen"] + 1_000_000
    assert summary["top_cities"][0] == {"city": "330100", "name": "杭州市", "net_fen": 123_456_789}
    await push(client, cmb, "b3", [record("T5", merchant_id="M2", amount_fen=5)])
    app.state.public_caches.clear()
    assert (await client.get("/v1/public/summary")).json() == summary  # publications only

    page = (await client.get("/")).text
    assert "第 2 次发布" in page and "补录" in page and "首次发布" in page
    assert "较第 1 次修订：合计 活动期销售额 +" in page
    assert money(second["reports"]["city"]["total"]["net_fen"]) in page
    assert 'title="1,764,567.89 元（176456789 分）"' in page
    assert 'id="daily-chart"' in page and page.count("<rect ") == 30
    assert not EXTERNAL.search(page) and "http" not in page


@contextmanager
def serving(database_url: str, home: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "PAYFEED_DATABASE_URL": database_url,
        "PAYFEED_HOME": str(home),
        "PAYFEED_SECRET_KEY": "test-secret",
        "PAYFEED_LOG_LEVEL": "WARNING",
    }
    command = [
        sys.executable,
        "-c",
        "from app.cli import main; main()",
        "serve",
        "--port",
        str(port),
    ]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            assert time.monotonic() < deadline, "payfeed serve did not become ready"
            time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        server.wait(30)


def page_requests(netlog: Path, base: str) -> set[str]:
    """Every URL the page asked for: requests made for the page's site (its frame,
    or any subresource it loads, wherever from), not the browser's own."""
    log = netlog.read_text().rstrip().rstrip(",")
    events = json.loads(log if log.endswith("}") else log + "]}")
    start = events["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    started = [e["params"] for e in events["events"] if e["type"] == start and "params" in e]
    return {
        p["url"]
        for p in started
        if p.get("network_isolation_key", "").startswith("http://127.0.0.1 ")
        or p.get("initiator") == base
    }


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--proxy-server=127.0.0.1:9",  # anything not on loopback would fail
        f"--user-data-dir={profile}",
    ]
    return subprocess.run(
        [CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=60, check=False
    )


def phone_screenshot(profile: Path, screenshot: Path, url: str) -> subprocess.CompletedProcess[str]:
    """`url` as a phone's screen shows it (412 × 915 CSS pixels), saved to `screenshot`."""
    return chromium(
        profile, f"--screenshot={screenshot}", "--window-size=412,915", "--hide-scrollbars", url
    )


async def test_chromium_renders_the_page_from_payfeed_serve(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    provider_token: Any,
    database_url: str,
    tmp_path: Path,
    artifacts: Path,
) -> None:
    assert CHROMIUM is not None, "no chromium found (Debian: apt-get install -y chromium)"
    await load(client, admin, provider_token)
    posted = await client.post(
        "/v1/campaigns/2023/publications", json={"note": "首次发布"}, headers=admin
    )
    net_fen = posted.json()["reports"]["city"]["total"]["net_fen"]
    netlog = tmp_path / "netlog.json"
    screenshot = artifacts / "public_page.png"
    screenshot.unlink(missing_ok=True)
    with serving(database_url, tmp_path / "home") as base:
        html = (await asyncio.to_thread(httpx.get, f"{base}/")).text
        dom = chromium(tmp_path / "profile", f"--log-net-log={netlog}", "--dump-dom", f"{base}/")
        shot = phone_screenshot(tmp_path / "profile-shot", screenshot, f"{base}/")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'id="national-net"' in dom.stdout and money(net_fen) in dom.stdout
    assert 'id="daily-chart"' in dom.stdout and "<rect" in dom.stdout
    assert "第 1 次发布" in dom.stdout
    assert not EXTERNAL.search(html) and "http" not in html

    requested = page_requests(netlog, base)
    assert f"{base}/" in requested and all(url.startswith(f"{base}/") for url in requested), sorted(
        requested
    )

    assert shot.returncode == 0 and screenshot.stat().st_size > 10_000, shot.stderr[-2000:]
