"""The registry read back: each kind's rows in key order, filtered, a page at a
time, and never a row outside the caller's region.

Providers lie in no region: they are registered by a national admin only and
deliver for every region at once (SPEC section 10), and every viewer's coverage
names them all; their listing is the same for every region and takes no
`province` filter.

A page is keyed (rows after the last key of the previous page), not offset, so
that a registration between two pages neither repeats nor skips a row.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, FromClause, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from campaign.figures import check_filters
from schemas.regions import CITIES, resolve_city
from store.scope import Scope
from store.tables import (
    activities,
    campaign_cities,
    enterprises,
    merchant_accounts,
    policies,
    providers,
)


@dataclass(frozen=True)
class Listing:
    source: FromClause
    columns: dict[str, ColumnElement[Any]]
    """What a row shows, by name."""
    key: tuple[str, ...]
    """The columns (of `columns`) the rows are ordered and paged by."""
    region: str | None
    """The column that places a row: a city code, or a policy's unit; None for
    a kind that lies in no region."""
    filters: tuple[str, ...]
    """Columns a caller may ask equal to a value, besides `province` (the region
    column's first two digits), which every kind with a region takes."""

    @property
    def filter_names(self) -> tuple[str, ...]:
        """Every filter a caller may give, `province` first where it applies."""
        return ("province", *self.filters) if self.region is not None else self.filters


_account_city = func.coalesce(merchant_accounts.c.city, enterprises.c.city)

LISTINGS: dict[str, Listing] = {
    "cities": Listing(
        campaign_cities,
        {c.name: c for c in campaign_cities.c},
        ("campaign", "city"),
        "city",
        ("campaign", "city"),
    ),
    "enterprises": Listing(
        enterprises,
        {c.name: c for c in enterprises.c},
        ("uscc",),
        "city",
        ("campaign", "city", "kind", "category"),
    ),
    "merchant-accounts": Listing(
        merchant_accounts.join(enterprises, enterprises.c.uscc == merchant_accounts.c.uscc),
        {
            "provider": merchant_accounts.c.provider,
            "merchant_id": merchant_accounts.c.merchant_id,
            "uscc": merchant_accounts.c.uscc,
            "enterprise": enterprises.c.name,
            "city": _account_city,
            "category": func.coalesce(merchant_accounts.c.category, enterprises.c.category),
        },
        ("provider", "merchant_id"),
        "city",
        ("provider", "uscc", "city"),
    ),
    "activities": Listing(
        activities,
        {c.name: c for c in activities.c},
        ("campaign", "city", "title"),
        "city",
        ("campaign", "city", "theme"),
    ),
    "policies": Listing(
        policies,
        {c.name: c for c in policies.c},
        ("campaign", "unit", "title"),
        "unit",
        ("campaign", "unit"),
    ),
    "providers": Listing(
        providers,
        {
            "provider": providers.c.provider,
            "name": providers.c.name,
            "kind": providers.c.kind,
            "delivery": providers.c.delivery,
            "due": func.to_char(providers.c.due, "HH24:MI"),
        },
        ("provider",),
        None,
        ("kind", "delivery"),
    ),
}
"""Registry kinds by their public name, as in `POST /v1/registry/{kind}`."""


async def _check_in_scope(conn: AsyncConnection, scope: Scope, filters: dict[str, str]) -> None:
    """403 `out_of_scope` for a filter naming a region outside the scope, as for
    every other read: the answer is not silently empty."""
    named = {k: v for k, v in filters.items() if k in ("province", "city")}
    if "uscc" in filters:
        named["enterprise"] = filters["uscc"]
    await check_filters(conn, scope, named)
    if "unit" in filters and not scope.covers_unit(filters["unit"]):
        raise scope.refusal("the unit filter")


def _value(name: str, value: str) -> str:
    """A county code asked for as a city means its city, as everywhere."""
    if name == "city" and (found := resolve_city(value)) is not None:
        return found.code
    return value


async def list_registry(
    conn: AsyncConnection,
    kind: str,
    scope: Scope,
    filters: dict[str, str],
    limit: int,
    after: Sequence[Any] | None = None,
) -> tuple[list[dict[str, Any]], bool]:
    """Up to `limit` rows of `kind` after the key `after`, in the scope and equal
    to `filters`; and whether more follow."""
    listing = LISTINGS[kind]
    query = select(*(c.label(n) for n, c in listing.columns.items())).select_from(listing.source)
    if listing.region is not None:
        await _check_in_scope(conn, scope, filters)
        region = listing.columns[listing.region]
        query = query.where(*scope.where(region))
    for name, value in filters.items():
        if name == "province":
            query = query.where(func.left(region, 2) == value)
        else:
            query = query.where(listing.columns[name] == _value(name, value))
    key = [listing.columns[k] for k in listing.key]
    if after is not None:
        query = query.where(tuple_(*key) > tuple_(*after))
    rows = await conn.execute(query.order_by(*key).limit(limit + 1))
    found = [dict(row._mapping) for row in rows]
    if kind == "cities":
        found = [{**r, "name": _city_name(r["city"])} for r in found]
    return found[:limit], len(found) > limit


def shown_columns(kind: str) -> list[str]:
    """The names of a row's values, in order (a city's name after its code)."""
    names = list(LISTINGS[kind].columns)
    return [*names[:2], "name", *names[2:]] if kind == "cities" else names


def _city_name(code: str) -> str | None:
    return CITIES[code].name if code in CITIES else None
