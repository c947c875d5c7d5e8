"""The API's own description: a valid OpenAPI document that lists the errors each
route really gives (with the JSON error body), the bearer scheme, request bodies
with their content types and an example each; Swagger UI and ReDoc served by
payfeed itself, so `/docs` works with no network at all."""

from pathlib import Path
from typing import Any

import httpx
from openapi_spec_validator import validate

from tests.test_public_page import CHROMIUM, chromium, page_requests, serving

ERROR_REF = {"$ref": "#/components/schemas/ErrorAnswer"}


async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    answer = await client.get("/openapi.json")
    assert answer.status_code == 200
    found: dict[str, Any] = answer.json()
    return found


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
    ]


async def test_the_document_validates_and_documents_real_errors(client: httpx.AsyncClient) -> None:
    doc = await document(client)
    validate(doc)
    assert doc["components"]["securitySchemes"] == {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": doc["components"]["securitySchemes"]["bearer"]["description"],
        }
    }
    for method, path, op in operations(doc):
        responses = op["responses"]
        where = f"{method} {path}"
        assert "400" in responses, where  # an unknown query parameter, everywhere
        for status, response in responses.items():
            if int(status) >= 400 and (path, status) != ("/readyz", "503"):
                assert response["content"]["application/json"]["schema"] == ERROR_REF, where
        if path.startswith(("/v1/public", "/healthz", "/readyz", "/metrics")) or path == "/":
            assert "security" not in op, where
        else:
            assert op["security"] == [{"bearer": []}], where
            assert {"401", "403", "503"} <= set(responses), where
        assert "422" not in responses or path.startswith(("/v1/registry", "/v1/campaigns")), where
    push = doc["paths"]["/v1/batches"]["post"]
    assert {"409", "413", "415"} <= set(push["responses"])
    assert {"404"} <= set(doc["paths"]["/v1/batches/{batch_id}"]["get"]["responses"])


async def test_every_reference_resolves_to_a_component(client: httpx.AsyncClient) -> None:
    """A `$ref` into a body schema's own `$defs` dangles once the schema sits in the
    document: generated clients and schema fuzzers then cannot read that body."""
    doc = await document(client)
    components = doc["components"]["schemas"]
    refs: list[str] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            refs.extend([node["$ref"]] if isinstance(node.get("$ref"), str) else [])
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(doc)
    assert refs
    dangling = [
        ref
        for ref in refs
        if not ref.startswith("#/components/schemas/")
        or ref.removeprefix("#/components/schemas/") not in components
    ]
    assert dangling == []


async def test_every_json_answer_has_a_declared_model(client: httpx.AsyncClient) -> None:
    doc = await document(client)
    untyped = []
    for method, path, op in operations(doc):
        for status, response in op["responses"].items():
            schema = response.get("content", {}).get("application/json", {}).get("schema")
            if status.startswith("2") and path != "/metrics":
                named = schema is not None and (
                    "$ref" in schema or "$ref" in schema.get("items", {})
                )
                if not named:
                    untyped.append(f"{method} {path} {status}")
    assert untyped == []


async def test_every_request_body_has_content_types_with_an_example(
    client: httpx.AsyncClient,
) -> None:
    doc = await document(client)
    schemas = doc["components"]["schemas"]
    bodies = 0
    for method, path, op in operations(doc):
        body = op.get("requestBody")
        if body is None:
            continue
        bodies += 1
        assert body["content"], f"{method} {path}"
        for media, content in body["content"].items():
            found = [content.get("schema", {})]
            found += found[0].get("anyOf", [])
            found += [schemas[s["$ref"].rsplit("/", 1)[1]] for s in found if "$ref" in s]
            has_example = "example" in content or any("examples" in s for s in found)
            assert has_example, f"{method} {path} {media}"
    assert bodies >= 8
    push = doc["paths"]["/v1/batches"]["post"]["requestBody"]["content"]
    assert {"application/json", "application/x-ndjson", "text/csv", "text/plain"} <= set(push)
    assert "application/zip" in push and "application/gzip" in push


async def test_an_unknown_query_parameter_is_a_400_naming_it(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    for url in (
        "/v1/rollups?dims=city&provder=cmb",
        "/v1/quarantine?limt=5",
        "/v1/campaigns/2023/summary?as_of=today",
        "/healthz?x=1",
    ):
        answer = await client.get(url, headers=admin)
        assert answer.status_code == 400, url
        error = answer.json()["error"]
        assert error["code"] == "unknown_parameter", url
        wrong = url.split("?")[1].split("&")[-1].split("=")[0]
        assert wrong in error["message"], url
    answer = await client.get("/v1/rollups?dims=city&provder=cmb&colour=red", headers=admin)
    assert answer.json()["error"]["message"].startswith(
        "unknown query parameters colour, provder for GET /v1/rollups; it takes "
    )


def test_docs_render_offline_in_chromium_with_the_authorize_button(
    database_url: str, tmp_path: Path, artifacts: Path
) -> None:
    assert CHROMIUM is not None, "no chromium found (Debian: apt-get install -y chromium)"
    netlog = tmp_path / "netlog.json"
    screenshot = artifacts / "api_docs.png"
    screenshot.unlink(missing_ok=True)
    wait = "--virtual-time-budget=15000"
    with serving(database_url, tmp_path / "home") as base:
        dom = chromium(
            tmp_path / "p1", f"--log-net-log={netlog}", wait, "--dump-dom", f"{base}/docs"
        )
        shot = chromium(
            tmp_path / "p2",
            wait,
            f"--screenshot={screenshot}",
            "--window-size=1280,1600",
            f"{base}/docs",
        )
        redoc = chromium(tmp_path / "p3", wait, "--dump-dom", f"{base}/redoc")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "Authorize" in dom.stdout and "/v1/batches" in dom.stdout
    assert "swagger-ui" in dom.stdout
    requested = page_requests(netlog, base)
    assert f"{base}/openapi.json" in requested
    assert all(url.startswith(f"{base}/") for url in requested), sorted(requested)
    assert shot.returncode == 0 and screenshot.stat().st_size > 20_000, shot.stderr[-2000:]
    assert redoc.returncode == 0 and "Push a batch of records" in redoc.stdout
