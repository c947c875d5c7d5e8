"""Registrations: field rules and campaign rules, all or nothing, JSON and CSV."""

from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.factories import register, uscc


async def count(engine: AsyncEngine, table: str) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


async def test_at_most_half_of_a_provinces_cities(
    client: httpx.AsyncClient, admin: dict[str, str], engine: AsyncEngine
) -> None:
    # Zhejiang has 11 prefecture-level cities: 5 may take part, not 6.
    five = [{"city": c} for c in ("330100", "330200", "330300", "330400", "330500")]
    assert (await register(client, admin, "cities", five)).status_code == 200
    sixth = await register(client, admin, "cities", [{"city": "330600"}, {"city": "320100"}])
    assert sixth.status_code == 422
    error = sixth.json()["error"]
    assert error["code"] == "province_city_limit"
    assert "6 participating" in error["message"] and "11 prefecture-level" in error["message"]
    assert await count(engine, "campaign_cities") == 5  # Nanjing was not applied either
    municipalities = [{"city": c} for c in ("110000", "310000", "120105")]
    assert (await register(client, admin, "cities", municipalities)).status_code == 200
    async with engine.connect() as conn:
        cities = (await conn.execute(text("SELECT city FROM campaign_cities ORDER BY 1"))).scalars()
        assert "120000" in list(cities)  # a district code resolves to its municipality


async def test_at_most_100_enterprises_per_city(
    client: httpx.AsyncClient, admin: dict[str, str], engine: AsyncEngine
) -> None:
    def rows(n: int, start: int) -> list[dict[str, Any]]:
        return [
            {"uscc": uscc(start + i), "name": f"店{i}", "city": "330106", "kind": "retail"}
            for i in range(n)
        ]

    assert (await register(client, admin, "enterprises", rows(100, 1000))).status_code == 200
    over = await register(client, admin, "enterprises", rows(2, 5000))
    assert over.status_code == 422
    assert over.json()["error"]["code"] == "city_enterprise_limit"
    assert "102 enterprises" in over.json()["error"]["message"]
    assert await count(engine, "enterprises") == 100
    # Re-registering existing enterprises is an upsert, not new ones.
    again = await register(client, admin, "enterprises", rows(100, 1000))
    assert again.status_code == 200


async def test_uscc_check_character_and_fields(
    client: httpx.AsyncClient, admin: dict[str, str], engine: AsyncEngine
) -> None:
    good = uscc()
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    response = await register(
        client,
        admin,
        "enterprises",
        [
            {"uscc": good, "name": "好", "city": "330100", "kind": "retail"},
            {"uscc": bad, "name": "坏", "city": "330100", "kind": "retail"},
        ],
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_registration"
    assert response.json()["error"]["message"].startswith("row 1: uscc")
    assert await count(engine, "enterprises") == 0
    unknown_city = await register(
        client,
        admin,
        "enterprises",
        [{"uscc": good, "name": "x", "city": "999900", "kind": "retail"}],
    )
    assert unknown_city.status_code == 422
    orphan = await register(
        client, admin, "merchant-accounts", [{"provider": "cmb", "merchant_id": "M", "uscc": good}]
    )
    assert orphan.status_code == 422 and orphan.json()["error"]["code"] == "unknown_enterprise"


async def test_csv_registration_with_optional_cells(
    client: httpx.AsyncClient, admin: dict[str, str], engine: AsyncEngine
) -> None:
    code = uscc()
    enterprises = f"uscc,name,city,kind,category\n{code},杭州百货,330100,retail,department_store\n"
    response = await client.post(
        "/v1/registry/enterprises",
        content=enterprises.encode(),
        headers={**admin, "Content-Type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    accounts = (
        f"provider,merchant_id,uscc,city,category\ncmb,M1,{code},,\ncmb,M2,{code},330212,auto\n"
    )
    response = await client.post(
        "/v1/registry/merchant-accounts",
        content=accounts.encode(),
        headers={**admin, "Content-Type": "text/csv"},
    )
    assert response.json() == {"registered": 2}
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT merchant_id, city, category FROM merchant_accounts ORDER BY 1")
            )
        ).all()
    assert [tuple(r) for r in rows] == [("M1", None, None), ("M2", "330200", "auto")]


async def test_only_admins_register(client: httpx.AsyncClient, viewer: dict[str, str]) -> None:
    response = await register(client, viewer, "cities", [{"city": "330100"}])
    assert response.status_code == 403
