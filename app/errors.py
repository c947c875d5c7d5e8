"""The one place errors become HTTP answers: `{"error": {"code", "message"}}`."""

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from store.errors import PayfeedError


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


async def payfeed_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PayfeedError)
    headers = {"Retry-After": "5"} if exc.status == 503 else None
    return JSONResponse(error_body(exc.code, exc.message), exc.status, headers=headers)


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return JSONResponse(error_body("invalid_request", f"{where}: {first['msg']}"), 400)


def install(app: FastAPI) -> None:
    app.add_exception_handler(PayfeedError, payfeed_error)
    app.add_exception_handler(RequestValidationError, validation_error)
