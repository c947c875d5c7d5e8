"""Registrations and the campaign's participation rules, applied all or nothing.

Each call validates every row first (field rules, USCC check character), then
upserts and checks the rules that count rows in the database. A broken rule
raises `RuleViolation` (422) naming the rule and its numbers; the caller's
transaction then rolls back, so nothing of the call is applied.
"""

import csv
import io
from collections.abc import Sequence
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from sqlalchemy import Table, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas.regions import CITIES, MUNICIPALITY_PROVINCES, PROVINCES, prefecture_count
from schemas.registry import ActivityIn, CityIn, EnterpriseIn, MerchantAccountIn, PolicyIn
from store.errors import BadRequest, RuleViolation, UnsupportedMediaType
from store.tables import (
    activities,
    campaign_cities,
    campaigns,
    enterprises,
    merchant_accounts,
    policies,
)

MAX_ENTERPRISES_PER_CITY = 100
MAX_CITY_SHARE = 0.5

M = TypeVar("M", bound=BaseModel)


def parse_rows(model: type[M], body: bytes, content_type: str) -> list[M]:
    """JSON (an object or an array of objects) or CSV with a header of field names;
    an empty CSV cell means the field is absent."""
    if content_type == "text/csv":
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise BadRequest("undecodable_body", "CSV must be UTF-8") from None
        rows: list[Any] = [
            {k: v for k, v in row.items() if k and v not in (None, "")}
            for row in csv.DictReader(io.StringIO(text))
        ]
    elif content_type == "application/json":
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise BadRequest("undecodable_body", f"body is not valid JSON: {exc}") from None
        rows = data if isinstance(data, list) else [data]
    else:
        raise UnsupportedMediaType(
            "unsupported_media_type", "registrations are application/json or text/csv"
        )
    parsed = []
    for index, row in enumerate(rows):
        try:
            parsed.append(model.model_validate(row))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "row"
            raise RuleViolation(
                "invalid_registration", f"row {index}: {where}: {first['msg']}"
            ) from None
    return parsed


async def _upsert(conn: AsyncConnection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    keys = [c.name for c in table.primary_key.columns]
    statement = insert(table).values(list(rows))
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=keys,
            set_={c: statement.excluded[c] for c in rows[0] if c not in keys},
        )
    )


async def _require_campaigns(conn: AsyncConnection, codes: set[str]) -> None:
    known = set((await conn.execute(select(campaigns.c.code))).scalars())
    missing = sorted(codes - known)
    if missing:
        raise RuleViolation("unknown_campaign", f"campaign {missing[0]} does not exist")


async def register_cities(conn: AsyncConnection, rows: list[CityIn]) -> int:
    await _require_campaigns(conn, {r.campaign for r in rows})
    await _upsert(conn, campaign_cities, [r.model_dump() for r in rows])
    touched = {(r.campaign, CITIES[r.city].province) for r in rows}
    for campaign, province in sorted(touched):
        if province in MUNICIPALITY_PROVINCES:
            continue
        count = (
            await conn.execute(
                select(func.count()).where(
                    campaign_cities.c.campaign == campaign,
                    func.left(campaign_cities.c.city, 2) == province,
                )
            )
        ).scalar_one()
        total = prefecture_count(province)
        if count > total * MAX_CITY_SHARE:
            raise RuleViolation(
                "province_city_limit",
                f"province {province} ({PROVINCES[province]}) would have {count} participating "
                f"cities in campaign {campaign}; at most 50 % of its {total} prefecture-level "
                f"cities ({int(total * MAX_CITY_SHARE)}) may take part",
            )
    return len(rows)


async def register_enterprises(conn: AsyncConnection, rows: list[EnterpriseIn]) -> int:
    await _require_campaigns(conn, {r.campaign for r in rows})
    await _upsert(conn, enterprises, [r.model_dump(mode="json") for r in rows])
    touched = sorted({(r.campaign, r.city) for r in rows})
    for campaign, city in touched:
        count = (
            await conn.execute(
                select(func.count()).where(
                    enterprises.c.campaign == campaign, enterprises.c.city == city
                )
            )
        ).scalar_one()
        if count > MAX_ENTERPRISES_PER_CITY:
            raise RuleViolation(
                "city_enterprise_limit",
                f"city {city} ({CITIES[city].name}) would have {count} enterprises in campaign "
                f"{campaign}; at most {MAX_ENTERPRISES_PER_CITY} may take part",
            )
    return len(rows)


async def register_merchant_accounts(conn: AsyncConnection, rows: list[MerchantAccountIn]) -> int:
    wanted = {r.uscc for r in rows}
    known = set(
        (
            await conn.execute(select(enterprises.c.uscc).where(enterprises.c.uscc.in_(wanted)))
        ).scalars()
    )
    missing = sorted(wanted - known)
    if missing:
        raise RuleViolation("unknown_enterprise", f"enterprise {missing[0]} is not registered")
    await _upsert(conn, merchant_accounts, [r.model_dump() for r in rows])
    return len(rows)


async def register_activities(conn: AsyncConnection, rows: list[ActivityIn]) -> int:
    """Upsert activities by campaign, city and title (sessions held may grow)."""
    await _require_campaigns(conn, {r.campaign for r in rows})
    await _upsert(conn, activities, _last_of_each_key(activities, rows))
    return len(rows)


async def register_policies(conn: AsyncConnection, rows: list[PolicyIn]) -> int:
    """Upsert policies by campaign, unit (city or province) and title."""
    await _require_campaigns(conn, {r.campaign for r in rows})
    await _upsert(conn, policies, _last_of_each_key(policies, rows))
    return len(rows)


def _last_of_each_key(table: Table, rows: Sequence[BaseModel]) -> list[dict[str, Any]]:
    """One row per key, the last given winning: one INSERT ... ON CONFLICT cannot
    touch a row twice."""
    keys = [c.name for c in table.primary_key.columns]
    unique = {}
    for row in rows:
        values = row.model_dump()
        unique[tuple(values[k] for k in keys)] = values
    return list(unique.values())


REGISTRATIONS: dict[str, tuple[type[BaseModel], Any]] = {
    "cities": (CityIn, register_cities),
    "enterprises": (EnterpriseIn, register_enterprises),
    "merchant-accounts": (MerchantAccountIn, register_merchant_accounts),
    "activities": (ActivityIn, register_activities),
    "policies": (PolicyIn, register_policies),
}
"""Kinds of registration by their public name: the input model and its register
function (all or nothing, in the caller's transaction)."""
