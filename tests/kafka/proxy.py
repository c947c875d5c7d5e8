"""A TCP proxy in front of the database that a test can cut and restore, to take
the database away from a consumer and give it back while the server runs on."""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from sqlalchemy.engine import make_url

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class CuttableProxy:
    """Forwards 127.0.0.1:`port` to what `connect` opens. `cut()` drops every open
    connection and refuses new ones (closed at once) until `restore()`."""

    def __init__(self, connect: Callable[[], Awaitable[Streams]]) -> None:
        self.connect = connect
        self.open = True
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def cut(self) -> None:
        self.open = False
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()

    def restore(self) -> None:
        self.open = True

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _accept(self, client_in: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        if not self.open:
            client.transport.abort()
            return
        try:
            server_in, server = await self.connect()
        except OSError:
            client.transport.abort()
            return
        self._links.update((client, server))
        await asyncio.gather(self._pipe(client_in, server), self._pipe(server_in, client))

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while chunk := await source.read(65536):
                sink.write(chunk)
                await sink.drain()
        sink.transport.abort()
        self._links.discard(sink)


def database_proxy(url: str) -> tuple[CuttableProxy, Callable[[], str]]:
    """A proxy to the database at `url` (TCP, or the Unix socket of the embedded
    server), and the URL through it once started."""
    parsed = make_url(url)
    socket_dir = parsed.query.get("host")
    port = parsed.port or 5432
    if isinstance(socket_dir, str) and socket_dir.startswith("/"):
        path = f"{socket_dir}/.s.PGSQL.{port}"
        proxy = CuttableProxy(lambda: asyncio.open_unix_connection(path))
    else:
        host = parsed.host or "127.0.0.1"
        proxy = CuttableProxy(lambda: asyncio.open_connection(host, port))
    direct = parsed.difference_update_query(["host"])
    return proxy, lambda: direct.set(host="127.0.0.1", port=proxy.port).render_as_string(
        hide_password=False
    )
