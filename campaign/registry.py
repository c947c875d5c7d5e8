"""Registrations and the campaign's participation rules, applied all or nothing.

Each call validates every row first (field rules, USCC check character), then
upserts and checks the rules that count rows in the database. A broken rule
raises `RuleViolation` (422) naming the rule and its numbers; the caller's
transaction then rolls back, so nothing of the call is applied.

`register` is the one entry: it checks every row against the actor's region
before anything is written (a row outside it, or one that would change a row
outside it, is 403 `out_of_scope` for the whole call) and appends the audit row.
"""

import csv
import io
from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import Table, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas.json_objects import RepeatedKey, load_marking_repeats
from schemas.regions import CITIES, MUNICIPALITY_PROVINCES, PROVINCES, prefecture_count
from schemas.registry import (
    ActivityIn,
    CityIn,
    EnterpriseIn,
    MerchantAccountIn,
    PolicyIn,
    ProviderIn,
)
from store.audit import record_change
from store.errors import BadRequest, Forbidden, RuleViolation, UnsupportedMediaType
from store.principal import Principal
from store.scope import Scope
from store.tables import (
    activities,
    campaign_cities,
    campaigns,
    enterprises,
    merchant_accounts,
    policies,
    providers,
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
        try:
            rows: list[Any] = [
                {k: v for k, v in row.items() if k and v not in (None, "")}
                for row in csv.DictReader(io.StringIO(text, newline=""))
            ]
        except csv.Error as exc:
            raise BadRequest("undecodable_body", f"CSV could not be read: {exc}") from None
    elif content_type == "application/json":
        try:
            data = load_marking_repeats(body)
        except ValueError as exc:
            raise BadRequest("undecodable_body", f"body is not valid JSON: {exc}") from None
        rows = data if isinstance(data, list) else [data]
        for index, row in enumerate(rows):
            if isinstance(row, RepeatedKey):
                raise BadRequest("duplicate_key", f"row {index}: key {row.key!r} appears twice")
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


async def register_providers(conn: AsyncConnection, rows: list[ProviderIn]) -> int:
    """Upsert providers by code. Records, tokens and merchant accounts that name a
    provider before it is registered keep working: nothing refers to this table.
    Providers are national: only a national admin registers them."""
    await _upsert(conn, providers, _last_of_each_key(providers, rows))
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


async def _check_cities(conn: AsyncConnection, scope: Scope, rows: list[CityIn]) -> None:
    if scope.city is not None:
        raise Forbidden(
            "out_of_scope", "participating cities are registered by a provincial or national admin"
        )
    for index, row in enumerate(rows):
        scope.require_city(row.city, f"row {index}: the city")


async def _check_enterprises(conn: AsyncConnection, scope: Scope, rows: list[EnterpriseIn]) -> None:
    for index, row in enumerate(rows):
        scope.require_city(row.city, f"row {index}: the enterprise's city")
    stored = await conn.execute(
        select(enterprises.c.city).where(enterprises.c.uscc.in_({r.uscc for r in rows}))
    )
    if not all(scope.covers_city(city) for city in stored.scalars()):
        raise scope.refusal("an enterprise registered already")


async def _check_merchant_accounts(
    conn: AsyncConnection, scope: Scope, rows: list[MerchantAccountIn]
) -> None:
    """The account's enterprise, its own city (a chain store) and any account it
    would replace must all be of the region. An enterprise registered nowhere in
    the region is refused alike, registered elsewhere or not at all."""
    found = await conn.execute(
        select(enterprises.c.uscc, enterprises.c.city).where(
            enterprises.c.uscc.in_({r.uscc for r in rows})
        )
    )
    cities = {uscc: city for uscc, city in found}
    for index, row in enumerate(rows):
        if row.uscc not in cities or not scope.covers_city(cities[row.uscc]):
            raise scope.refusal(f"row {index}: the enterprise")
        if row.city is not None:
            scope.require_city(row.city, f"row {index}: the account's city")
    keys = {(r.provider, r.merchant_id) for r in rows}
    stored = await conn.execute(
        select(func.coalesce(merchant_accounts.c.city, enterprises.c.city))
        .join(enterprises, enterprises.c.uscc == merchant_accounts.c.uscc)
        .where(func.row(merchant_accounts.c.provider, merchant_accounts.c.merchant_id).in_(keys))
    )
    if not all(scope.covers_city(city) for city in stored.scalars()):
        raise scope.refusal("a merchant account registered already")


async def _check_activities(conn: AsyncConnection, scope: Scope, rows: list[ActivityIn]) -> None:
    for index, row in enumerate(rows):
        scope.require_city(row.city, f"row {index}: the activity's city")


async def _check_providers(conn: AsyncConnection, scope: Scope, rows: list[ProviderIn]) -> None:
    raise scope.refusal("a provider (providers are national)")


async def _check_policies(conn: AsyncConnection, scope: Scope, rows: list[PolicyIn]) -> None:
    for index, row in enumerate(rows):
        scope.require_unit(row.unit, f"row {index}: the policy's unit")


REGISTRATIONS: dict[str, tuple[type[BaseModel], Any]] = {
    "cities": (CityIn, register_cities),
    "enterprises": (EnterpriseIn, register_enterprises),
    "merchant-accounts": (MerchantAccountIn, register_merchant_accounts),
    "activities": (ActivityIn, register_activities),
    "policies": (PolicyIn, register_policies),
    "providers": (ProviderIn, register_providers),
}
"""Kinds of registration by their public name: the input model and its register
function (all or nothing, in the caller's transaction)."""

SCOPE_CHECKS: dict[str, Any] = {
    "cities": _check_cities,
    "enterprises": _check_enterprises,
    "merchant-accounts": _check_merchant_accounts,
    "activities": _check_activities,
    "policies": _check_policies,
    "providers": _check_providers,
}
"""Per kind, the check that every row lies in the actor's region (403 otherwise)."""
assert SCOPE_CHECKS.keys() == REGISTRATIONS.keys()


async def register(
    conn: AsyncConnection, kind: str, rows: Sequence[BaseModel], actor: Principal
) -> int:
    """Register `rows` of `kind` for `actor`: all in its region or 403, then the
    rules, then one audit row (`registry.<kind>`, on the campaigns touched)."""
    _, apply = REGISTRATIONS[kind]
    if not actor.scope.national:
        await SCOPE_CHECKS[kind](conn, actor.scope, rows)
    count: int = await apply(conn, rows)
    campaigns_touched = sorted({str(c) for r in rows if (c := getattr(r, "campaign", None))})
    target = f"campaign {', '.join(campaigns_touched)}" if campaigns_touched else kind
    await record_change(conn, actor, f"registry.{kind}", target, count)
    return count
