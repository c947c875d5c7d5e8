"""Run the `payfeed` command against the test database, as ops would."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path


async def run_payfeed(
    database_url: str, home: Path, *args: str
) -> subprocess.CompletedProcess[bytes]:
    env = {
        **os.environ,
        "PAYFEED_DATABASE_URL": database_url,
        "PAYFEED_HOME": str(home),
        "PAYFEED_SECRET_KEY": "test-secret",
    }
    command = [sys.executable, "-c", "from app.cli import main; main()", *args]
    return await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, timeout=120, check=False
    )
