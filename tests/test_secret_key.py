"""The generated payer-hash secret: processes that start at once on a new home
(`payfeed serve --workers 2`) all hash with the one key that is kept, never
each with its own."""

import secrets
import threading
from pathlib import Path

import pytest

from store.settings import Settings


def test_processes_starting_at_once_share_the_kept_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    both_missing = threading.Barrier(2, timeout=30)
    first_done = threading.Event()

    def token_hex(nbytes: int) -> str:
        """Both starters have found no key; the second writes its own only once
        the first has written and read back its key."""
        both_missing.wait()
        if threading.current_thread().name == "second":
            assert first_done.wait(30)
            return "b" * 2 * nbytes
        return "a" * 2 * nbytes

    monkeypatch.setattr(secrets, "token_hex", token_hex)
    keys: dict[str, bytes] = {}

    def start(name: str) -> None:
        keys[name] = Settings(home=tmp_path / "home").resolved_secret()
        if name == "first":
            first_done.set()

    threads = [
        threading.Thread(target=start, args=(name,), name=name) for name in ("first", "second")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    kept = (tmp_path / "home" / "secret.key").read_text().strip().encode()
    assert keys == {"first": kept, "second": kept}
    assert oct((tmp_path / "home" / "secret.key").stat().st_mode & 0o777) == "0o600"
