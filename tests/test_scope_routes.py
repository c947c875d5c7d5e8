"""Every route of the application, walked from its own route table (a route added
later is called without editing this file), called with the tokens of one
province (浙江, 33) — and of one city (杭州, 330100) — over a campaign of two
provinces (浙江 and 广东):

- no answer (JSON, CSV, XLSX, errors, headers) holds a figure, name or id of 广东
  (nor, to 杭州, of 宁波 or of 浙江's sums), except on the routes that the
  contract keeps national and public (the public page and summary, publications);
- a filter or path naming a region outside the token's is 403;
- every write naming a region outside is 403 with nothing applied, a regional
  viewer's every write is 403 with nothing applied, and a write that succeeds
  changes nothing outside the region and no national table.
"""

import io
import itertools
import re
import zipfile
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from campaign.figures import DIMENSIONS
from campaign.submissions import submit
from schemas.records import Role
from store.principal import COMMAND_LINE
from store.tables import metadata
from tests.two_provinces import TwoProvinces, seed

NATIONAL_BY_CONTRACT = (
    "/",
    "/v1/public/summary",
    "/v1/campaigns/{code}/publications",
    "/openapi.json",
    "/docs",
    "/redoc",
)
"""SPEC 9: public routes and publications stay national (and their sub-paths); the
API's description and its pages hold examples (city codes among them), no data."""
NATIONAL_TABLES = {"campaigns", "publications"}
"""Tables no regional write may change."""
UNCOMPARED = {"tokens", "data_version"}
"""Tables every request may touch: a token's last use, the data version counter."""
PATH_VALUES = {
    "code": ["2023"],
    "campaign": ["2023"],
    "batch_id": ["two-provinces"],
    "number": ["1"],
    "other": ["1"],
    "province": ["33", "44"],
}
SAMPLE_FIELDS: dict[str, Any] = {
    "campaign": "2023",
    "provider": "cmb",
    "merchant_id": "M-new",
    "name": "新企业",
    "kind": "retail",
    "category": "other",
    "theme": "消费节",
    "title": "新活动",
    "first_day": "2023-09-09",
    "last_day": "2023-10-08",
    "issued_on": "2023-09-01",
    "sessions": 1,
    "note": "x",
    "final": False,
}


REGIONS = ("33", "330100")


def outside_values(seeded: TwoProvinces, region: str) -> dict[str, list[Any]]:
    """Values naming a region outside `region`, by parameter or field name."""
    guangzhou, ningbo = seeded.usccs["440100"], seeded.usccs["330200"]
    outside: dict[str, list[Any]] = {
        "province": ["44"],
        "city": ["440100", "440106"],
        "enterprise": [guangzhou],
        "uscc": [guangzhou],
        "unit": ["44", "440300"],
        "ids": [seeded.quarantined["44"] + seeded.quarantined["unresolved"]],
    }
    if region == "330100":
        outside["city"].append("330200")
        outside["enterprise"].append(ningbo)
        outside["uscc"].append(ningbo)
        outside["unit"] += ["33", "330200"]
    return outside


def own_values(seeded: TwoProvinces, region: str) -> dict[str, list[str]]:
    """Region-naming values within `region`."""
    if region == "330100":
        return {
            "province": ["33"],
            "city": ["330100", "330106"],
            "enterprise": [seeded.usccs["330100"]],
            "unit": ["330100"],
        }
    return {
        "province": ["33"],
        "city": ["330100", "330206"],
        "enterprise": [seeded.usccs["330100"]],
        "unit": ["33", "330200"],
    }


def forbidden_to(seeded: TwoProvinces, region: str) -> set[str]:
    return seeded.forbidden_to_hangzhou if region == "330100" else seeded.forbidden


def query_values(seeded: TwoProvinces, region: str) -> dict[str, list[str]]:
    """Values to call each known query parameter with: valid ones within `region`,
    then those naming a region outside it."""
    outside = outside_values(seeded, region)
    own = {
        **own_values(seeded, region),
        "dims": ["", *DIMENSIONS, ",".join(DIMENSIONS)],
        "format": ["json", "csv", "xlsx"],
        "level": ["province", "city"],
        "from": ["2023-08-01"],
        "to": ["2023-10-31"],
        "code": ["unknown_merchant", "conflict"],
        "provider": ["cmb"],
        "category": ["other"],
        "channel": ["offline"],
        "limit": ["1"],
        "action": ["registry."],
    }
    return {
        name: [*values, *(str(v) for v in outside.get(name, []))] for name, values in own.items()
    }


def texts_of(response: httpx.Response) -> str:
    """Everything an answer says: headers, and its body as text (an XLSX unzipped)."""
    parts = [f"{k}: {v}" for k, v in response.headers.items()]
    if response.content.startswith(b"PK"):
        with zipfile.ZipFile(io.BytesIO(response.content)) as book:
            parts += [book.read(name).decode("utf-8", "replace") for name in book.namelist()]
    else:
        parts.append(response.content.decode("utf-8", "replace"))
    return "\n".join(parts)


def leaks(response: httpx.Response, forbidden: set[str]) -> list[str]:
    said = texts_of(response)
    return sorted(word for word in forbidden if word in said)


def national(path: str) -> bool:
    return any(
        path == prefix or (prefix != "/" and path.startswith(prefix + "/"))
        for prefix in NATIONAL_BY_CONTRACT
    )


def resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return resolve(document["components"]["schemas"][schema["$ref"].split("/")[-1]], document)
    for option in schema.get("anyOf", []):
        if option.get("type") != "null":
            return resolve(option, document)
    return schema


def body_for(schema: dict[str, Any], document: dict[str, Any], outside: dict[str, Any]) -> Any:
    """A JSON body of the operation's schema whose region fields name 广东."""
    schema = resolve(schema, document)
    if schema.get("type") == "array":
        return [body_for(schema.get("items", {}), document, outside)]
    properties = schema.get("properties", {})
    body: dict[str, Any] = {}
    for name, field in properties.items():
        if name in outside:
            body[name] = outside[name][0]
        elif name in SAMPLE_FIELDS:
            body[name] = SAMPLE_FIELDS[name]
        elif name in schema.get("required", []):
            kind = resolve(field, document).get("type")
            body[name] = {"integer": 1, "number": 1, "boolean": False, "array": []}.get(kind, "x")
    return body


async def database_rows(engine: AsyncEngine) -> dict[str, set[str]]:
    async with engine.connect() as conn:
        return {
            table.name: set(
                (await conn.execute(text(f"SELECT t::text FROM {table.name} t"))).scalars()
            )
            for table in metadata.sorted_tables
            if table.name not in UNCOMPARED
        }


def changes(before: dict[str, set[str]], after: dict[str, set[str]]) -> dict[str, set[str]]:
    return {name: before[name] ^ after[name] for name in before if before[name] != after[name]}


def routes(app: FastAPI) -> list[tuple[str, str]]:
    """`(method, path)` of every route the application serves, its own included."""
    found = [
        (method, context.path_format)
        for context in iter_route_contexts(app.routes)
        for method in sorted((context.methods or set()) - {"HEAD"})
    ]
    assert len(found) > 20, found
    return found


def paths_of(path: str, region: str) -> list[tuple[str, bool]]:
    """Every way to fill the path's parameters, and whether it names a province
    that `region` does not cover (a city covers none)."""
    names = re.findall(r"{(\w+)}", path)
    missing = [n for n in names if n not in PATH_VALUES]
    assert not missing, f"no sample value for path parameter {missing} of {path}"
    filled = []
    for values in itertools.product(*(PATH_VALUES[n] for n in names)):
        concrete = path
        for name, value in zip(names, values, strict=True):
            concrete = concrete.replace("{" + name + "}", value)
        provinces = [v for n, v in zip(names, values, strict=True) if n == "province"]
        filled.append((concrete, any(p != region for p in provinces)))
    return filled


def queries_of(
    operation: dict[str, Any], seeded: TwoProvinces, region: str
) -> list[tuple[dict[str, str], bool]]:
    """Query strings for an operation: its required parameters, then the product
    of `format`, `level` and `dims`, then every other known parameter alone; with
    whether a value names a region outside `region`."""
    values = query_values(seeded, region)
    outside = {(k, str(v)) for k, vs in outside_values(seeded, region).items() for v in vs}
    parameters = [p for p in operation.get("parameters", []) if p["in"] == "query"]
    required = {}
    for parameter in parameters:
        if parameter.get("required"):
            name = parameter["name"]
            assert name in values, f"no sample value for required query parameter {name}"
            required[name] = values[name][0]
    known = [p["name"] for p in parameters if p["name"] in values]
    shaping = [n for n in known if n in ("format", "level", "dims")]
    calls = []
    for combination in itertools.product(*(values[n] for n in shaping)):
        calls.append({**required, **dict(zip(shaping, combination, strict=True))})
    for name in known:
        if name not in shaping:
            calls += [{**required, name: value} for value in values[name]]
    return [(query, any(item in outside for item in query.items())) for query in calls]


async def zhejiang_and_guangdong(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    provider_token: Any,
    engine: AsyncEngine,
) -> TwoProvinces:
    seeded = await seed(client, admin, provider_token)
    published = await client.post("/v1/campaigns/2023/publications", json={}, headers=admin)
    assert published.status_code == 201
    async with engine.begin() as conn:
        for province in ("33", "44"):
            await submit(conn, "2023", province, COMMAND_LINE, "", datetime.now(UTC))
    return seeded


@pytest.mark.parametrize("region", REGIONS)
async def test_every_read_of_a_regional_token_stays_in_its_region(
    region: str,
    app: FastAPI,
    client: httpx.AsyncClient,
    admin: dict[str, str],
    provider_token: Any,
    regional_token: Any,
    engine: AsyncEngine,
) -> None:
    seeded = await zhejiang_and_guangdong(client, admin, provider_token, engine)
    forbidden = forbidden_to(seeded, region)
    document = app.openapi()
    tokens = {
        "viewer": await regional_token(Role.VIEWER, region),
        "admin": await regional_token(Role.ADMIN, region),
    }
    called = 0
    for method, path in routes(app):
        if method != "GET":
            continue
        operation = document["paths"].get(path, {}).get("get", {})
        for concrete, path_outside in paths_of(path, region):
            for query, query_outside in queries_of(operation, seeded, region):
                for role, headers in tokens.items():
                    answer = await client.get(concrete, params=query, headers=headers)
                    called += 1
                    where = f"{role} GET {concrete} {query}: {answer.status_code}"
                    assert answer.status_code < 500, where
                    if path_outside or query_outside:
                        assert answer.status_code == 403, where
                    if not national(path):
                        assert leaks(answer, forbidden) == [], where
    assert called > 100


@pytest.mark.parametrize("region", REGIONS)
async def test_every_write_of_a_regional_token_outside_its_region_is_refused(
    region: str,
    app: FastAPI,
    client: httpx.AsyncClient,
    admin: dict[str, str],
    provider_token: Any,
    regional_token: Any,
    engine: AsyncEngine,
) -> None:
    seeded = await zhejiang_and_guangdong(client, admin, provider_token, engine)
    forbidden = forbidden_to(seeded, region)
    document = app.openapi()
    outside = outside_values(seeded, region)
    tokens = {
        "viewer": await regional_token(Role.VIEWER, region),
        "admin": await regional_token(Role.ADMIN, region),
    }
    writes = 0
    for method, path in routes(app):
        if method == "GET":
            continue
        operation = document["paths"].get(path, {}).get(method.lower(), {})
        schema = (
            operation.get("requestBody", {})
            .get("content", {})
            .get("application/json", {})
            .get("schema")
        )
        bodies: list[tuple[Any, bool]] = [({}, False), (None, False)]
        if schema is not None:
            named = body_for(schema, document, outside)
            names_outside = any(
                key in outside
                for row in (named if isinstance(named, list) else [named])
                for key in row
            )
            bodies.insert(0, (named, names_outside))
        for concrete, path_outside in paths_of(path, region):
            for body, body_outside in bodies:
                for role, headers in tokens.items():
                    before = await database_rows(engine)
                    answer = await client.request(method, concrete, json=body, headers=headers)
                    after = await database_rows(engine)
                    writes += 1
                    where = f"{role} {method} {concrete} {body}: {answer.status_code}"
                    assert answer.status_code < 500, where
                    assert leaks(answer, forbidden) == [], where
                    changed = changes(before, after)
                    if role == "viewer" or path_outside or body_outside:
                        assert answer.status_code == 403, where
                    if answer.status_code >= 300:
                        assert changed == {}, where
                    else:
                        assert not changed.keys() & NATIONAL_TABLES, where
                        touched = "\n".join(row for rows in changed.values() for row in rows)
                        assert [w for w in forbidden if w in touched] == [], where
    assert writes > 20
