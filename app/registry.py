"""`/v1/registry/...`: register cities, enterprises, merchant accounts, activities,
policies and providers (JSON or CSV, each call all or nothing), and read them back
(filtered, paged, JSON or CSV), within the caller's region."""

from inspect import Parameter, Signature
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, create_model

from app.deps import Admin, Conn, Viewer
from app.files import csv_response
from app.openapi import errors
from app.paging import DEFAULT_PAGE, MAX_PAGE, decode_cursor, encode_cursor
from campaign.registry import REGISTRATIONS, parse_rows, register
from campaign.registry_listing import LISTINGS, list_registry
from schemas.api import (
    ActivityRow,
    CityRow,
    EnterpriseRow,
    MerchantAccountRow,
    PolicyRow,
    ProviderRow,
    Registered,
)

router = APIRouter(prefix="/v1/registry", tags=["registry"])

ROWS: dict[str, type[BaseModel]] = {
    "cities": CityRow,
    "enterprises": EnterpriseRow,
    "merchant-accounts": MerchantAccountRow,
    "activities": ActivityRow,
    "policies": PolicyRow,
    "providers": ProviderRow,
}
assert ROWS.keys() == LISTINGS.keys()

FILTER_HELP = {
    "campaign": "campaign code",
    "province": "two-digit GB/T 2260 province prefix",
    "city": "city code (a county code means its city)",
    "kind": "the enterprise's kind (retail, …) or the provider's (bank, card_network, third_party)",
    "delivery": "how the provider delivers: stream or daily",
    "category": "category",
    "provider": "provider name",
    "uscc": "the enterprise's unified social credit code",
    "theme": "activity theme",
    "unit": "a province prefix or a city code",
}


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").partition(";")[0].strip().lower()


def _register_route(kind: str) -> None:
    model, _ = REGISTRATIONS[kind]

    async def endpoint(request: Request, conn: Conn, who: Admin) -> Any:
        rows = parse_rows(model, await request.body(), media_type(request))
        return {"registered": await register(conn, kind, rows, who)}

    example = REGISTRATION_EXAMPLES.get(kind)
    json_example = {"example": example[0]} if example else {}
    csv_example = {"example": example[1]} if example else {}

    router.add_api_route(
        f"/{kind}",
        endpoint,
        methods=["POST"],
        response_model=Registered,
        responses=errors(415, 422),
        summary=f"Register {kind.replace('-', ' ')} (upsert, all or nothing)",
        description=f"JSON (one object or an array) or CSV with a header of the fields of "
        f"`{model.__name__}`. A broken rule answers 422 naming the rule and its numbers. "
        "A regional admin registers within its region only: a row outside it, or one that "
        "would change a row outside it, is 403 `out_of_scope` and nothing is applied.",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": model.model_json_schema(), **json_example},
                    "text/csv": {"schema": {"type": "string"}, **csv_example},
                },
            }
        },
    )


REGISTRATION_EXAMPLES: dict[str, tuple[Any, str]] = {
    "cities": ([{"city": "330100"}, {"city": "330200"}], "city\n330100\n330200\n"),
    "enterprises": (
        [
            {
                "uscc": "91350100M000100Y43",
                "name": "杭州百货",
                "city": "330100",
                "kind": "retail",
                "category": "department_store",
            }
        ],
        "uscc,name,city,kind,category\n91350100M000100Y43,杭州百货,330100,retail,department_store\n",
    ),
    "merchant-accounts": (
        {"provider": "cmb", "merchant_id": "M001", "uscc": "91350100M000100Y43"},
        "provider,merchant_id,uscc\ncmb,M001,91350100M000100Y43\n",
    ),
    "activities": (
        [
            {
                "city": "330100",
                "theme": "启动仪式",
                "title": "杭州启动仪式",
                "first_day": "2023-09-09",
                "last_day": "2023-09-09",
                "sessions": 2,
            }
        ],
        "city,theme,title,first_day,last_day,sessions\n"
        "330100,启动仪式,杭州启动仪式,2023-09-09,2023-09-09,2\n",
    ),
    "policies": (
        [{"unit": "33", "title": "浙江省促消费十条", "issued_on": "2023-09-01"}],
        "unit,title,issued_on\n33,浙江省促消费十条,2023-09-01\n",
    ),
    "providers": (
        {
            "provider": "cmb",
            "name": "招商银行",
            "kind": "bank",
            "delivery": "daily",
            "due": "10:00",
        },
        "provider,name,kind,delivery,due\ncmb,招商银行,bank,daily,10:00\n",
    ),
}
"""A body for each kind of registration, as JSON and as CSV, shown in the API docs
(a kind without one shows none, which the docs test names)."""


def _list_route(kind: str) -> None:
    listing = LISTINGS[kind]
    row = ROWS[kind]
    page = create_model(
        f"{row.__name__.removesuffix('Row')}Page",
        items=(list[row], ...),  # type: ignore[valid-type]
        next_cursor=(str | None, ...),
    )
    names = listing.filter_names
    seen_by = (
        "A regional token sees the rows of its region only."
        if listing.region is not None
        else "Providers lie in no region: every viewer sees them all."
    )
    key_types = [str] * len(listing.key)

    async def endpoint(conn: Conn, who: Viewer, **given: Any) -> Any:
        filters = {n: given[n] for n in names if given[n] is not None}
        after = decode_cursor(given["cursor"], key_types)
        rows, more = await list_registry(conn, kind, who.scope, filters, given["limit"], after)
        cursor = encode_cursor([rows[-1][k] for k in listing.key]) if more else None
        if given["format"] == "csv":
            headers = {"X-Next-Cursor": cursor} if cursor else {}
            return csv_response(list(row.model_fields), rows, f"{kind}.csv", headers)
        return {"items": rows, "next_cursor": cursor}

    # The filters differ per kind; the signature FastAPI reads declares exactly
    # them, so that each appears in the OpenAPI document and no other is taken.
    keyword = Parameter.KEYWORD_ONLY
    endpoint.__signature__ = Signature(  # type: ignore[attr-defined]
        [
            Parameter("conn", keyword, annotation=Conn),
            Parameter("who", keyword, annotation=Viewer),
            *(
                Parameter(
                    name,
                    keyword,
                    annotation=Annotated[str | None, Query(description=FILTER_HELP[name])],
                    default=None,
                )
                for name in names
            ),
            Parameter(
                "limit",
                keyword,
                annotation=Annotated[int, Query(ge=1, le=MAX_PAGE)],
                default=DEFAULT_PAGE,
            ),
            Parameter(
                "cursor",
                keyword,
                annotation=Annotated[str | None, Query(description="`next_cursor` of a page")],
                default=None,
            ),
            Parameter(
                "format",
                keyword,
                annotation=Annotated[str, Query(pattern="^(json|csv)$")],
                default="json",
            ),
        ]
    )
    router.add_api_route(
        f"/{kind}",
        endpoint,
        methods=["GET"],
        response_model=page,
        summary=f"List {kind.replace('-', ' ')}",
        description=f"In key order ({', '.join(listing.key)}), a page of `limit` rows at "
        "a time: pass `next_cursor` as `cursor` for the next (null on the last). "
        "`format=csv` gives the same page as CSV (the next cursor in `X-Next-Cursor`). " + seen_by,
        responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
    )


for _kind in REGISTRATIONS:
    _register_route(_kind)
for _kind in LISTINGS:
    _list_route(_kind)
