"""The one place errors become HTTP answers: `{"error": {"code", "message"}}`.

Every answer carries an `X-Request-Id`. An error nobody foresaw is still a JSON
body (`{"error": {"code": "internal", "message", "request_id"}}`, 500) and its
traceback is logged once with that id, so that a caller's report finds the log
line. A database that cannot give a connection in time (pool exhausted, server
gone) is a 503 with `Retry-After`, never a 500.
"""

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from store.errors import PayfeedError

log = logging.getLogger(__name__)

RETRY_AFTER = "5"
STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "body_too_large",
    415: "unsupported_media_type",
}


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


def _headers(status: int) -> dict[str, str] | None:
    if status == 503:
        return {"Retry-After": RETRY_AFTER}
    if status == 401:
        return {"WWW-Authenticate": "Bearer"}
    return None


async def payfeed_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PayfeedError)
    return JSONResponse(error_body(exc.code, exc.message), exc.status, headers=_headers(exc.status))


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return JSONResponse(error_body("invalid_request", f"{where}: {first['msg']}"), 400)


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own refusals (no such route, wrong method, a body that could not
    be read) in the same shape; a `PayfeedError` behind one answers as itself."""
    assert isinstance(exc, HTTPException)
    if isinstance(exc.__cause__, PayfeedError):
        return await payfeed_error(request, exc.__cause__)
    code = STATUS_CODES.get(exc.status_code, "bad_request" if exc.status_code < 500 else "error")
    headers = {**(exc.headers or {}), **(_headers(exc.status_code) or {})}
    return JSONResponse(error_body(code, str(exc.detail)), exc.status_code, headers=headers)


async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable: %s", type(exc).__name__)
    return JSONResponse(
        error_body("database_unavailable", "the database is unavailable; retry shortly"),
        503,
        headers=_headers(503),
    )


class UnexpectedErrors:
    """Outermost of our middleware: numbers the request, and answers an exception
    nothing handled with a JSON 500 (when the answer has not begun) instead of
    Starlette's plain text. A client that hangs up mid-upload is not an error."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = False

        async def send_numbered(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_numbered)
        except ClientDisconnect:
            log.info(
                "client disconnected before its request was read",
                extra={"request_id": request_id, "path": scope["path"]},
            )
        except Exception:
            log.exception(
                "unexpected error", extra={"request_id": request_id, "path": scope["path"]}
            )
            if started:
                return
            body = error_body("internal", "an unexpected error; it has been logged")
            body["error"]["request_id"] = request_id
            await JSONResponse(body, 500)(scope, receive, send_numbered)


def install(app: FastAPI) -> None:
    app.add_exception_handler(PayfeedError, payfeed_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    for unavailable in (PoolTimeout, OperationalError, InterfaceError, ConnectionError):
        app.add_exception_handler(unavailable, database_unavailable)
    app.add_middleware(UnexpectedErrors)
