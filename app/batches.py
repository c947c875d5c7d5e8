"""`POST /v1/batches` and `GET /v1/batches/{batch_id}`."""

import asyncio
from dataclasses import replace
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Path, Query, Request, Response

from app.deps import AnyCaller, Conn, PipelineDep, SettingsDep, UploadingProvider, transaction
from app.large_bodies import LargeBodyGate
from app.openapi import errors
from ingest.adapters import FORMATS, ReadOptions
from ingest.batches import read_batch, store_batch, stored_answer
from schemas.api import BatchAnswer
from schemas.records import Role
from schemas.text import BATCH_ID_PATTERN
from store.audit import record_change
from store.errors import BadRequest, Forbidden, NotFound, TooLarge, UnsupportedMediaType

router = APIRouter(prefix="/v1/batches", tags=["batches"])

MEDIA_TYPES = {
    "application/json",
    "application/x-ndjson",
    "text/csv",
    "text/plain",
    "application/gzip",
    "application/x-gzip",
    "application/zip",
    "application/octet-stream",
}


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise TooLarge("body_too_large", f"body is larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge("body_too_large", f"body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def read_options(content_type: str, query: dict[str, str]) -> ReadOptions:
    media, _, rest = content_type.partition(";")
    media = media.strip().lower()
    if media not in MEDIA_TYPES:
        raise UnsupportedMediaType(
            "unsupported_media_type", f"content type {media or '(none)'} is not accepted"
        )
    charset = None
    for part in rest.split(";"):
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            charset = value.strip('"')
    return ReadOptions(charset=charset, content_type=media, params=query)


STANDARD_EXAMPLE = [
    {
        "txn_id": "T1",
        "kind": "payment",
        "amount_fen": 12345,
        "currency": "CNY",
        "occurred_at": "2023-09-09T20:15:00+08:00",
        "merchant_id": "M001",
        "channel": "offline",
        "mcc": "5311",
    },
    {
        "txn_id": "T2",
        "kind": "refund",
        "amount_fen": 2345,
        "currency": "CNY",
        "occurred_at": "2023-09-10T09:00:00+08:00",
        "merchant_id": "M001",
        "channel": "offline",
        "original_txn_id": "T1",
    },
]
BINARY = {"schema": {"type": "string", "format": "binary"}}
BATCH_BODY = {
    "required": True,
    "description": "`format=standard`: records of the data standard as JSON (an array), "
    "NDJSON, CSV with a header of the field names, or Parquet; `unionpay`, `alipay`, "
    "`wechatpay`: the provider's own file as downloaded, plain, gzipped or zipped.",
    "content": {
        "application/json": {"schema": {"type": "array", "items": {}}, "example": STANDARD_EXAMPLE},
        "application/x-ndjson": {
            "schema": {"type": "string"},
            "example": "\n".join(orjson.dumps(r).decode() for r in STANDARD_EXAMPLE) + "\n",
        },
        "text/csv": {
            "schema": {"type": "string"},
            "example": "txn_id,kind,amount_fen,currency,occurred_at,merchant_id,channel,mcc\n"
            "T1,payment,12345,CNY,2023-09-09T20:15:00+08:00,M001,offline,5311\n",
        },
        "text/plain": {
            "schema": {"type": "string"},
            "example": "(a UnionPay ZM file, GBK; with settle_date=YYYY-MM-DD)",
        },
        "application/gzip": {**BINARY, "example": "(a gzipped file of one of the above)"},
        "application/zip": {**BINARY, "example": "(a zip as the provider's download gives)"},
        "application/octet-stream": {**BINARY, "example": "(Parquet records of the standard)"},
    },
}


@router.post(
    "",
    response_model=BatchAnswer,
    responses=errors(409, 413, 415),
    openapi_extra={"requestBody": BATCH_BODY},
    summary="Push a batch of records",
    description="Atomic and idempotent by `X-Batch-Id`: a retry with the same body returns "
    "the stored answer with `replayed: true`; a different body under the same id is a 409.",
)
async def push_batch(
    request: Request,
    response: Response,
    who: UploadingProvider,
    settings: SettingsDep,
    pipeline: PipelineDep,
    x_batch_id: Annotated[
        str, Header(pattern=BATCH_ID_PATTERN, description="letters, digits and . _ : -")
    ],
    format: Annotated[str, Query(examples=["standard"])] = "standard",
    settle_date: Annotated[
        str | None,
        Query(
            examples=["2023-09-10"],
            description="`format=unionpay`: the settlement day of the ZM file, YYYY-MM-DD "
            "(it gives the file's times their year)",
        ),
    ] = None,
) -> Any:
    if format not in FORMATS:
        raise BadRequest("unknown_format", f"unknown format {format!r}")
    # Each batch on a connection of its own, so that each is taken by whichever API
    # process is free: a kept-alive connection stays with the process that accepted
    # it, and one process accepts every connection pending at that moment, so a
    # sender that opens its connections together would land them all on one
    # process while the others idle. A batch is milliseconds to seconds of work; a
    # new connection costs a fraction of a millisecond.
    response.headers["Connection"] = "close"
    # `settle_date` reaches the adapter with the other query parameters.
    options = read_options(request.headers.get("content-type", ""), dict(request.query_params))
    options = replace(options, max_unpacked=settings.max_unpacked_bytes)
    # The body is read and parsed before a connection is taken: a slow sender
    # holds no connection of the pool.
    body = await read_body(request, settings.max_batch_bytes)
    gate: LargeBodyGate = request.app.state.large_bodies
    async with gate.passage(body):
        read = await asyncio.to_thread(
            read_batch, format, body, options, settings.max_batch_records
        )
    del body
    assert who.provider is not None
    async with transaction(request) as conn:
        answer = await store_batch(
            conn, pipeline, provider=who.provider, batch_id=x_batch_id, read=read
        )
        # In the batch's transaction: the audit row commits with the batch or not at all.
        await record_change(conn, who, "batch.push", f"batch {x_batch_id}", answer["inserted"])
        return answer


@router.get(
    "/{batch_id}",
    response_model=BatchAnswer,
    responses=errors(404),
    summary="The stored answer of a batch",
)
async def read_stored_batch(
    batch_id: Annotated[str, Path(pattern=BATCH_ID_PATTERN)], conn: Conn, who: AnyCaller
) -> Any:
    if who.role == Role.VIEWER or (who.role == Role.ADMIN and not who.scope.national):
        raise Forbidden(
            "forbidden",
            "batches are read by their provider or a national admin: they hold "
            "records of every region",
        )
    found = await stored_answer(conn, batch_id)
    if found is None:
        raise NotFound("unknown_batch", f"no batch {batch_id}")
    provider, answer = found
    if who.role == Role.PROVIDER and provider != who.provider:
        raise Forbidden("forbidden", "this batch belongs to another provider")
    return answer
