"""`make fuzz`: schemathesis over `/openapi.json` of a real `payfeed serve` on
loopback (an embedded PostgreSQL under a temporary home), as an admin and as a
provider, with the one check that matters here: no answer is a 5xx.

Not part of `make test` (minutes, not seconds). Prints the seed and schemathesis'
own counts; exits non-zero when any 5xx was found.

    .venv/bin/python -m tests.fuzz_api [--seed N] [--max-examples N]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.served import payfeed_serve

SCHEMATHESIS = [sys.executable, "-m", "schemathesis.cli"]
ROOT = str(Path(__file__).resolve().parent.parent)


def _is_error(line: str) -> bool:
    try:
        return bool(json.loads(line).get("level") == "error")
    except ValueError:
        return False  # uvicorn's own start-up lines


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=20261127)
    parser.add_argument("--max-examples", type=int, default=100, help="per operation")
    given = parser.parse_args()
    failed = 0
    with (
        tempfile.TemporaryDirectory(prefix="payfeed-fuzz-") as home,
        payfeed_serve(None, Path(home)) as served,
    ):
        callers = {
            "admin": served.token("--role", "admin"),
            "provider": served.token("--role", "provider", "--provider", "fuzz"),
        }
        for role, token in callers.items():
            print(f"== schemathesis as {role}, seed {given.seed}", flush=True)
            done = subprocess.run(
                [
                    *SCHEMATHESIS,
                    "run",
                    f"{served.url}/openapi.json",
                    "--checks",
                    "not_a_server_error",
                    "--header",
                    f"Authorization: {token}",
                    "--max-examples",
                    str(given.max_examples),
                    "--seed",
                    str(given.seed),
                    "--workers",
                    "1",
                    "--continue-on-failure",
                    "--request-timeout",
                    "30",
                ],
                check=False,
                cwd=home,  # schemathesis keeps its cache in the working directory
                env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.fuzz_hooks", "PYTHONPATH": ROOT},
            )
            failed |= done.returncode
        log = Path(home) / "serve.log"
        errors = [line for line in log.read_text().splitlines() if _is_error(line)]
        print(f"== server log: {len(errors)} error lines", flush=True)
        for line in errors[:20]:
            print(line[:2000])
    return 1 if failed or errors else 0


if __name__ == "__main__":
    sys.exit(main())
