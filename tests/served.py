"""A real `payfeed serve` on loopback, for what only a real server shows: its
memory (psutil), its connection pool under slow clients, its OpenAPI for fuzzing.

It serves the test session's database (`PAYFEED_DATABASE_URL`), so that no second
PostgreSQL is started (or, given none, an embedded one under its home), and is
stopped (SIGTERM, then SIGKILL) however the test ends.
"""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

PAYFEED = [sys.executable, "-c", "from app.cli import main; main()"]


@dataclass(frozen=True)
class Served:
    url: str
    process: subprocess.Popen[bytes]
    env: dict[str, str]

    def token(self, *args: str) -> str:
        """A new token (`payfeed tokens create ARGS`), as the header value."""
        done = subprocess.run(
            [*PAYFEED, "tokens", "create", *args],
            env=self.env,
            capture_output=True,
            check=True,
            timeout=60,
        )
        return "Bearer " + done.stdout.decode().strip().splitlines()[-1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def payfeed_serve(database_url: str | None, home: Path, **settings: str) -> Iterator[Served]:
    """`payfeed serve` with `PAYFEED_<NAME>` from `settings`, ready when yielded."""
    port = free_port()
    env = {
        **os.environ,
        **({"PAYFEED_DATABASE_URL": database_url} if database_url else {}),
        "PAYFEED_HOME": str(home),
        "PAYFEED_SECRET_KEY": "test-secret",
        "PAYFEED_LOG_LEVEL": "WARNING",
        **{f"PAYFEED_{name.upper()}": value for name, value in settings.items()},
    }
    log = (home / "serve.log").open("wb")
    process = subprocess.Popen(
        [*PAYFEED, "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (home / "serve.log").read_text()
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "payfeed serve did not start in 60 s"
            time.sleep(0.1)
        yield Served(url, process, env)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
