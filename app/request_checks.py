"""Checks every request passes before any route sees it, whatever the route.

- No path segment, query parameter name or value holds a control character
  (NUL included): a 400 naming the parameter, so that no route hands one to
  PostgreSQL (which refuses NUL) or to an export.
- No body is larger than `PAYFEED_MAX_BATCH_BYTES`: a declared length over it is
  refused before a byte is read, an undeclared one as soon as it passes it.
- No JSON body gives a key twice in one object (a 400 `duplicate_key`): which
  value was meant cannot be told. Batches are left to their adapter, which makes
  such a record `malformed` and must not have its body held here.

Done once here, for every route present and future, instead of in each route.
"""

from urllib.parse import parse_qsl

from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import error_body
from schemas.json_objects import RepeatedKey, load_marking_repeats
from schemas.text import control_character_in
from store.errors import TooLarge


def control_character_at(scope: Scope) -> str | None:
    """Where a control character is in the request's path or query, or None."""
    for position, segment in enumerate(scope["path"].split("/")):
        if control_character_in(segment) is not None:
            return f"path segment {position} holds a control character"
    query = scope.get("query_string", b"").decode("latin-1")
    for name, value in parse_qsl(query, keep_blank_values=True, errors="replace"):
        if control_character_in(name) is not None:
            return "a query parameter's name holds a control character"
        if control_character_in(value) is not None:
            return f"query parameter {name} holds a control character"
    return None


class RequestChecks:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = control_character_at(scope)
        if problem is not None:
            await JSONResponse(error_body("invalid_parameter", problem), 400)(scope, receive, send)
            return
        limit = self.max_body_bytes
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            too_large = error_body("body_too_large", f"body is larger than {limit} bytes")
            await JSONResponse(too_large, 413)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise TooLarge("body_too_large", f"body is larger than {limit} bytes")
            return message

        if not _is_json(scope) or scope["path"].startswith(BATCHES):
            await self.app(scope, counted, send)
            return
        try:
            body = await _whole_body(counted)
        except TooLarge as exc:
            await JSONResponse(error_body(exc.code, exc.message), 413)(scope, receive, send)
            return
        except ClientDisconnect:
            return
        repeated = repeated_key(body)
        if repeated is not None:
            message = f"key {repeated!r} appears twice in one object"
            await JSONResponse(error_body("duplicate_key", message), 400)(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


BATCHES = "/v1/batches"


def _is_json(scope: Scope) -> bool:
    headers: dict[bytes, bytes] = dict(scope["headers"])
    media = headers.get(b"content-type", b"").partition(b";")[0]
    return media.strip().lower() == b"application/json"


async def _whole_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def repeated_key(body: bytes) -> str | None:
    """The first key given twice in one object of a JSON body; None when there is
    none or the body is not JSON (the route then says what is wrong with it)."""
    try:
        value = load_marking_repeats(body)
    except ValueError:
        return None
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, RepeatedKey):
            return item.key
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return None
