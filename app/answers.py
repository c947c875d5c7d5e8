"""Dashboard answers that cost nothing when nothing changed.

An answer's ETag is the data version (`store.data_version`) and a digest of what
was asked: the path, the query and the caller's scope (the principal without its
token id, so that a regional token's answer is never handed to another region).
`If-None-Match` with the current ETag is answered `304` after one tiny query;
otherwise the rendered bytes are kept in this process's `AnswerCache` under the
ETag, so a dashboard that polls is answered from memory until a write moves the
version. Read-your-writes holds: a batch's commit bumps the version before its
answer is sent, so the next read misses the cache.

Every API process keeps its own cache (`serve --workers N`): each revalidates
with the same one-row-per-slot query, so the ETags agree across processes.
"""

import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

from fastapi import Request, Response
from sqlalchemy.ext.asyncio import AsyncConnection

from store.data_version import current_version
from store.principal import Principal

AS_OF_HEADER = "X-Data-As-Of"
"""When the answer's data was current (`DataVersion.as_of`), ISO 8601."""


@dataclass(frozen=True)
class Rendered:
    body: bytes
    media_type: str
    headers: dict[str, str] = field(default_factory=dict)


class AnswerCache:
    """Rendered answers of the newest data version seen; a newer version empties
    it, an answer of an older one (a slower concurrent read) is not kept. At most
    `capacity` answers, least recently used dropped first. Used from the event
    loop only."""

    def __init__(self, capacity: int = 512) -> None:
        self.capacity = capacity
        self.version = -1
        self.entries: OrderedDict[str, Rendered] = OrderedDict()

    def get(self, version: int, etag: str) -> Rendered | None:
        if version != self.version:
            return None
        found = self.entries.get(etag)
        if found is not None:
            self.entries.move_to_end(etag)
        return found

    def put(self, version: int, etag: str, rendered: Rendered) -> None:
        if version < self.version:
            return
        if version > self.version:
            self.version = version
            self.entries.clear()
        self.entries[etag] = rendered
        while len(self.entries) > self.capacity:
            self.entries.popitem(last=False)


def etag_of(version: int, request: Request, who: Principal | None, vary: str = "") -> str:
    scope = replace(who, token_id=0) if who is not None else None
    asked = repr((request.url.path, sorted(request.query_params.multi_items()), scope, vary))
    return f'"{version}-{hashlib.sha256(asked.encode()).hexdigest()[:32]}"'


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


async def answer(
    request: Request,
    conn: AsyncConnection,
    who: Principal | None,
    render: Callable[[], Awaitable[Rendered]],
    vary: str = "",
) -> Response:
    """`render`'s answer for the current data version: `304` when the caller has
    it, from the cache when this process has it, else rendered (reading through
    `conn`, in the same snapshot as the version) and kept. `vary` is what else the
    answer depends on (the feeds' coverage moves with the clock as days fall due:
    `campaign.coverage.coverage_clock`)."""
    current = await current_version(conn)
    etag = etag_of(current.version, request, who, vary)
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if current.as_of is not None:
        headers[AS_OF_HEADER] = current.as_of.isoformat()
    if_none_match = request.headers.get("if-none-match")
    if matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    cache: AnswerCache = request.app.state.answers
    rendered = cache.get(current.version, etag)
    if rendered is None:
        rendered = await render()
        cache.put(current.version, etag, rendered)
    if asks_for_any(if_none_match):
        return Response(status_code=304, headers=headers)
    return Response(
        rendered.body, media_type=rendered.media_type, headers={**rendered.headers, **headers}
    )
