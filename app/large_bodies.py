"""A process-wide gate for large bodies, so that several at once cannot take the
memory of the machine: each may need about twice its unpacked size while read.

A body is large when it is over `LARGE_BODY_BYTES` or compressed (what a gzip or
zip unpacks to is known only once it is unpacked). At most `slots` large bodies
are read at a time; the next waits up to `WAIT_SECONDS` for a slot, then gets a
503 with `Retry-After`. Small bodies never wait.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ingest.adapters.base import is_packed
from store.errors import PayfeedError

LARGE_BODY_BYTES = 16 * 1024 * 1024
WAIT_SECONDS = 10.0


class Busy(PayfeedError):
    status = 503


class LargeBodyGate:
    def __init__(self, slots: int, wait_seconds: float = WAIT_SECONDS) -> None:
        self._slots = asyncio.Semaphore(slots)
        self._wait_seconds = wait_seconds

    @asynccontextmanager
    async def passage(self, body: bytes) -> AsyncIterator[None]:
        """Hold a slot while a large `body` is read; a small one passes at once."""
        if len(body) <= LARGE_BODY_BYTES and not is_packed(body):
            yield
            return
        try:
            await asyncio.wait_for(self._slots.acquire(), self._wait_seconds)
        except TimeoutError:
            raise Busy("busy", "too many large bodies are being read; retry shortly") from None
        try:
            yield
        finally:
            self._slots.release()
