"""The OpenAPI document as the service really answers, for `/docs` and `/redoc`.

FastAPI documents a 422 validation error that payfeed never sends (its handler
answers 400) and none of the errors routes raise themselves. Here every
operation lists the JSON error body under each status it can really give: 400
(a query parameter it does not take, a malformed value or body); 401 and 403
where a token is needed (its `security`, from the bearer dependency); 503 where
the database is read; and what the route declares with `errors()` (404, 409,
413, 415, 422).
"""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from schemas.api import ErrorAnswer

MEANINGS = {
    400: "Bad request: an unknown query parameter, a malformed value or body",
    401: "No bearer token, or an unknown, expired or revoked one",
    403: "The token's role, region or provider may not do this",
    404: "No such resource",
    409: "Conflicts with what is stored",
    413: "The body is too large",
    415: "The content type is not accepted",
    422: "Breaks a campaign or field rule; nothing was applied",
    503: "The database is unavailable; retry after the Retry-After seconds",
}

NO_DATABASE = {"/healthz", "/metrics"}
"""The only paths answered without reading the database."""


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for the errors a route raises itself, with the JSON error body."""
    return {status: {"model": ErrorAnswer, "description": MEANINGS[status]} for status in statuses}


def _complete(path: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation["responses"]
    validation = responses.get("422", {}).get("content", {}).get("application/json", {})
    if validation.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
        del responses["422"]
    statuses = {400}
    if operation.get("security"):
        statuses |= {401, 403}
    if path not in NO_DATABASE:
        statuses.add(503)
    for status in sorted(statuses | {int(s) for s in responses if int(s) >= 400}):
        described = responses.setdefault(str(status), {"description": MEANINGS[status]})
        described.setdefault(  # a route's own body for the status (/readyz's 503) stays
            "content",
            {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorAnswer"}}},
        )


def _hoist_definitions(operation: dict[str, Any], components: dict[str, Any]) -> None:
    """A request body documented by its model's own JSON schema (a registration
    row, a campaign) keeps its nested models in `$defs`, which its references
    point into; in the document they belong among the components."""
    for media in operation.get("requestBody", {}).get("content", {}).values():
        body = media.get("schema", {})
        for name, definition in body.pop("$defs", {}).items():
            _point_at_components(definition)
            components[name] = definition
        _point_at_components(body)


def _point_at_components(node: Any) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            node["$ref"] = "#/components/schemas/" + ref.removeprefix("#/$defs/")
        for value in node.values():
            _point_at_components(value)
    elif isinstance(node, list):
        for value in node:
            _point_at_components(value)


def install(app: FastAPI) -> None:
    """Replace `app.openapi` with one that documents the real errors."""

    def document() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
        )
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        error_schema = ErrorAnswer.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(error_schema.pop("$defs", {}))
        schemas["ErrorAnswer"] = error_schema
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        for path, item in schema["paths"].items():
            for operation in item.values():
                _complete(path, operation)
                _hoist_definitions(operation, schemas)
        app.openapi_schema = schema
        return schema

    app.openapi = document  # type: ignore[method-assign]
