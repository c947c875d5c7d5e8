"""Every shell block of the README runs as written, in order, against a fresh
home — the newcomer's first hour — so that the README cannot drift from what
payfeed does. `make run` is the one block not run literally (it would build a
virtualenv); the test starts what it runs, `payfeed serve --demo`, instead.

Only the port changes (8000 may be taken). Every command's exit status is
checked, and `curl` fails on an HTTP error status, except in a command whose
comment shows the error it answers (`# {"error": ...}`): that one must fail."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.served import free_port
from tests.test_embedded_lifecycle import _postgres_of

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"^```sh\n(.*?)^```", flags=re.MULTILINE | re.DOTALL)
PRELUDE = """set -euo pipefail
curl() {
    if [ -n "${EXPECT_ERROR:-}" ]; then
        local status
        status=$(command curl --show-error --output "$ANSWER" --write-out '%{http_code}' "$@")
        cat "$ANSWER"
        [ "$status" -ge 400 ]
    else
        command curl --fail-with-body --show-error "$@"
    fi
}
"""


def marked(block: str) -> str:
    """The block with `EXPECT_ERROR=1` before each command (its continued lines
    joined) whose comment shows an error answer."""
    commands: list[list[str]] = [[]]
    for line in block.splitlines():
        commands[-1].append(line)
        if not line.split("#")[0].rstrip().endswith("\\"):
            commands.append([])
    return "\n".join(
        ("EXPECT_ERROR=1 " if '# {"error"' in lines[-1] else "") + "\n".join(lines)
        for lines in commands
        if lines
    )


def readme_blocks() -> list[str]:
    return BLOCK.findall((ROOT / "README.md").read_text())


def test_every_readme_block_runs_as_written(tmp_path: Path) -> None:
    blocks = readme_blocks()
    first, rest = blocks[0], blocks[1:]
    assert [line.split("#")[0].strip() for line in first.splitlines()] == ["make run", "make test"]
    assert len(rest) >= 4
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    (work / ".venv").symlink_to(Path(sys.executable).parent.parent)
    (work / "examples").symlink_to(ROOT / "examples")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYFEED_")}
    env |= {"PAYFEED_HOME": str(home), "PAYFEED_LOG_LEVEL": "WARNING"}
    env["ANSWER"] = str(tmp_path / "answer")
    server = subprocess.Popen(
        [sys.executable, "-c", "from app.cli import main; main()", "serve", "--demo"]
        + ["--port", str(port)],
        env=env,
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        while "logs:" not in (line := server.stdout.readline()):
            assert line, "payfeed serve --demo stopped"
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError("payfeed serve --demo never became ready")
        script = PRELUDE + "\n".join(
            f"echo '=== README block {n}' >&2\n{marked(block)}" for n, block in enumerate(rest, 2)
        )
        script = script.replace("localhost:8000", f"localhost:{port}")
        done = subprocess.run(
            ["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=600
        )
        failed = done.stderr.rsplit("=== README block", 1)[-1]
        assert done.returncode == 0, f"block{failed}\n{done.stdout[-3000:]}"
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(60)
    # The UnionPay file pushed over HTTP after its backfill: every record a duplicate.
    zm = re.search(
        r'"batch_id":"zm-20231001"[^{}]*?"inserted":(\d+),"duplicates":(\d+)', done.stdout
    )
    assert zm is not None and zm.group(1) == "0" and int(zm.group(2)) > 0
    assert "every publication matches its checksum" in done.stdout
    assert "rollups equal a recount of the records" in done.stdout
    assert _postgres_of(home) == []
