"""Holding threads inside the payer-hash cache: the race of batches that meet the
same new payer reference, made to happen every time rather than by chance."""

import threading
from typing import Any

import polars as pl
import pytest

NEW_PAYER = "P-NEVER-SEEN"


class HeldCache:
    """Instruments a payer-hash cache so that the first `parties` lookups of
    `NEW_PAYER` all find it missing (they meet at a barrier while hashing it),
    then finish one after the other: the second adds its hash after the first
    has added the same one, which is how a reference came to be cached twice."""

    def __init__(self, cache: Any, parties: int, monkeypatch: pytest.MonkeyPatch) -> None:
        self._hash = cache._digest
        self._of = cache.of
        self._barrier = threading.Barrier(parties, timeout=30)
        self._finished = [threading.Event() for _ in range(parties)]
        self._tickets = 0
        self._lock = threading.Lock()
        self._mine = threading.local()
        monkeypatch.setattr(cache, "_digest", self._digest)
        monkeypatch.setattr(cache, "of", self.of)

    def _digest(self, message: bytes) -> bytes:
        if message == NEW_PAYER.encode():
            with self._lock:
                ticket = self._tickets
                self._tickets += 1
            if ticket < len(self._finished):
                self._mine.ticket = ticket
                self._barrier.wait()
                if ticket:
                    assert self._finished[ticket - 1].wait(30), "the previous lookup never ended"
        digest: bytes = self._hash(message)
        return digest

    def of(self, refs: pl.Series) -> pl.DataFrame:
        self._mine.ticket = None
        try:
            found: pl.DataFrame = self._of(refs)
            return found
        finally:
            if self._mine.ticket is not None:
                self._finished[self._mine.ticket].set()
