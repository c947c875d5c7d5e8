"""Dashboard answers that cost nothing when nothing changed.

An answer's ETag is the data version (`store.data_version`) and a digest of what
was asked: the path, the query and the caller's scope (the principal without its
token id, so that a regional token's answer is never handed to another region),
and of what else it depends on (`Rendered.vary`). Rendered answers are kept in
this process's `AnswerCache` under the version and what was asked, so a dashboard
that polls is answered from memory (`CachedAnswers`, before any routing: its
caller authenticated and the version read on one connection, nothing else) until
a write moves the version; `If-None-Match` with the current ETag is then
answered `304`.
Read-your-writes holds: a batch's commit bumps the version before its answer is
sent, so the next read misses the cache.

Every API process keeps its own cache (`serve --workers N`): each renders a
version's answer once and computes the same ETag for it, so the ETags agree
across processes.
"""

import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from fastapi import Request, Response
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from app.deps import (
    DatabaseUnavailable,
    outside_transaction,
    read_engine_of,
    read_transaction,
    unavailable_as_503,
)
from store.data_version import DataVersion, current_version, latest_version
from store.principal import Principal
from store.tokens import authenticate

AS_OF_HEADER = "X-Data-As-Of"
"""When the answer's data was current (`DataVersion.as_of`), ISO 8601."""


@dataclass(frozen=True)
class Rendered:
    body: bytes
    media_type: str
    headers: dict[str, str] = field(default_factory=dict)
    vary: str = ""
    """What else than the data the answer depends on (answers that carry the
    feeds' coverage: the moment of `campaign.coverage.coverage_clock`)."""
    fresh_until: datetime | None = None
    """When the answer may change without the data changing (the clock's next
    moment); None for never."""
    etag: str = ""
    """Set when the answer is kept: `etag_of` its version, request and `vary`."""

    def fresh(self, now: datetime) -> bool:
        return self.fresh_until is None or now < self.fresh_until

    def on_the_clock(self, clock: tuple[datetime, datetime]) -> "Rendered":
        """This answer as one that carries coverage: `clock` is what
        `campaign.coverage.coverage_clock` gave when it was rendered."""
        return replace(self, vary=clock[0].isoformat(), fresh_until=clock[1])


class AnswerCache:
    """Rendered answers of the newest data version seen, by what was asked
    (`asked_of`); a newer version empties it, an answer of an older one (a slower
    concurrent read) is not kept, one past its `fresh_until` is not handed out. At most
    `capacity` answers, least recently used dropped first. Used from the event
    loop only."""

    def __init__(self, capacity: int = 512) -> None:
        self.capacity = capacity
        self.version = -1
        self.entries: OrderedDict[str, Rendered] = OrderedDict()
        self.paths: set[str] = set()
        """The paths of the answers kept: what `CachedAnswers` looks at."""

    def get(self, version: int, asked: str, now: datetime) -> Rendered | None:
        if version != self.version:
            return None
        found = self.entries.get(asked)
        if found is None or not found.fresh(now):
            return None
        self.entries.move_to_end(asked)
        return found

    def put(self, version: int, asked: str, rendered: Rendered, path: str) -> None:
        if version < self.version:
            return
        if version > self.version:
            self.version = version
            self.entries.clear()
            self.paths.clear()
        self.entries[asked] = rendered
        self.paths.add(path)
        while len(self.entries) > self.capacity:
            self.entries.popitem(last=False)


def asked_of(request: Request, who: Principal | None) -> str:
    """What was asked, and by whom as far as the answer can differ: a digest."""
    scope = replace(who, token_id=0) if who is not None else None
    asked = repr((request.url.path, sorted(request.query_params.multi_items()), scope))
    return hashlib.sha256(asked.encode()).hexdigest()[:32]


def etag_of(version: int, asked: str, vary: str) -> str:
    tail = hashlib.sha256(f"{asked} {vary}".encode()).hexdigest()[:32] if vary else asked
    return f'"{version}-{tail}"'


def matches(if_none_match: str | None, etag: str) -> bool:
    """Whether `If-None-Match` names `etag` (weakly compared, as RFC 9110 has it
    for `If-None-Match`). `*` is not a tag: see `answer`."""
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return etag in tags


def asks_for_any(if_none_match: str | None) -> bool:
    """`If-None-Match: *`: any current answer will do, which only a rendered (or
    cached) answer can tell exists: an unknown campaign is a 404, not a 304."""
    return (if_none_match or "").strip() == "*"


async def version_to_answer(request: Request, conn: AsyncConnection) -> DataVersion:
    """The version a cached answer must be of: read on the request's connection
    (the primary's, where the caller was authenticated), or on the replica's
    when dashboards read there, as one statement outside any transaction."""
    engine = read_engine_of(request)
    if engine is request.app.state.engine:
        return await latest_version(conn)
    with unavailable_as_503():
        async with outside_transaction(engine) as replica:
            return await latest_version(replica)


async def answer(
    request: Request,
    conn: AsyncConnection,
    who: Principal | None,
    render: Callable[[AsyncConnection], Awaitable[Rendered]],
) -> Response:
    """`render`'s answer for the current data version: from this process's cache
    when it has it, else rendered in a REPEATABLE READ transaction of the read
    engine (the version read in the same snapshot as the figures) and kept;
    `304` when the caller already has it. `conn` is the request's connection, on
    which the caller was authenticated."""
    asked = asked_of(request, who)
    cache: AnswerCache = request.app.state.answers
    current = await version_to_answer(request, conn)
    rendered = cache.get(current.version, asked, datetime.now(UTC))
    if rendered is None:
        async with read_transaction(request) as snapshot:
            current = await current_version(snapshot)
            rendered = await render(snapshot)
        rendered = replace(rendered, etag=etag_of(current.version, asked, rendered.vary))
        cache.put(current.version, asked, rendered, request.url.path)
    return respond(rendered, current, request.headers.get("if-none-match"))


def respond(rendered: Rendered, current: DataVersion, if_none_match: str | None) -> Response:
    """`rendered` with its ETag and the age of its data, or `304` when the caller
    already has it."""
    headers = {"ETag": rendered.etag, "Cache-Control": "private, no-cache"}
    if current.as_of is not None:
        headers[AS_OF_HEADER] = current.as_of.isoformat()
    if matches(if_none_match, rendered.etag) or asks_for_any(if_none_match):
        return Response(status_code=304, headers=headers)
    return Response(
        rendered.body, media_type=rendered.media_type, headers={**rendered.headers, **headers}
    )


class CachedAnswers:
    """Answers a GET this process holds a current answer for before any routing.

    A hit costs the caller's token and the data version, two statements on one
    connection, and none of the routing and dependency solving that otherwise
    took most of its CPU (1.1 ms a cached answer against 0.3 ms a `/healthz`).
    It is the route's own answer: the cache key holds the path, the query and the
    caller's scope, so the same request was answered by its route, checks
    included, at this very version. Only paths with an answer kept are looked
    at; anything else (a miss, an unknown token, a database that does not
    answer) goes on to the routes, which answer it as always."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            cache: AnswerCache = scope["app"].state.answers
            if scope["path"] in cache.paths:
                response = await self.kept(Request(scope), cache)
                if response is not None:
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def kept(self, request: Request, cache: AnswerCache) -> Response | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        try:
            async with outside_transaction(request.app.state.engine) as conn:
                who = await authenticate(conn, token.strip())
                if who is None:
                    return None
                current = await version_to_answer(request, conn)
        except (OSError, SQLAlchemyError, DatabaseUnavailable):
            return None
        rendered = cache.get(current.version, asked_of(request, who), datetime.now(UTC))
        if rendered is None:
            return None
        return respond(rendered, current, request.headers.get("if-none-match"))
