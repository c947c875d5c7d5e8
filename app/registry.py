"""`POST /v1/registry/...`: cities, enterprises, merchant accounts, activities,
policies (JSON or CSV), each call all or nothing."""

from typing import Any

from fastapi import APIRouter, Request

from app.deps import Admin, Conn
from campaign.registry import REGISTRATIONS, parse_rows, register
from schemas.api import Registered

router = APIRouter(prefix="/v1/registry", tags=["registry"])


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").partition(";")[0].strip().lower()


def _route(kind: str) -> None:
    model, _ = REGISTRATIONS[kind]

    async def endpoint(request: Request, conn: Conn, who: Admin) -> Any:
        rows = parse_rows(model, await request.body(), media_type(request))
        return {"registered": await register(conn, kind, rows, who)}

    router.add_api_route(
        f"/{kind}",
        endpoint,
        methods=["POST"],
        response_model=Registered,
        summary=f"Register {kind.replace('-', ' ')} (upsert, all or nothing)",
        description=f"JSON (one object or an array) or CSV with a header of the fields of "
        f"`{model.__name__}`. A broken rule answers 422 naming the rule and its numbers. "
        "A regional admin registers within its region only: a row outside it, or one that "
        "would change a row outside it, is 403 `out_of_scope` and nothing is applied.",
        openapi_extra={
            "requestBody": {
                "content": {
                    "application/json": {"schema": model.model_json_schema()},
                    "text/csv": {"schema": {"type": "string"}},
                }
            }
        },
    )


for _kind in REGISTRATIONS:
    _route(_kind)
