"""Reading the registry back: campaigns, cities, enterprises, merchant accounts,
activities and policies — filtered, paged by cursor, as JSON or CSV, each token
seeing its own region only; and `payfeed registry list`."""

from pathlib import Path
from typing import Any

import httpx

from schemas.records import Role
from tests.cli import run_payfeed
from tests.factories import register
from tests.two_provinces import CITY_NAMES, seed


async def test_every_kind_reads_back_what_was_registered(
    client: httpx.AsyncClient, admin: dict[str, str], provider_token: Any
) -> None:
    seeded = await seed(client, admin, provider_token)
    cities = (await client.get("/v1/registry/cities", headers=admin)).json()
    assert [(c["city"], c["name"]) for c in cities["items"]] == sorted(CITY_NAMES.items())
    assert cities["next_cursor"] is None
    enterprises = (await client.get("/v1/registry/enterprises?city=330100", headers=admin)).json()
    assert [e["uscc"] for e in enterprises["items"]] == [seeded.usccs["330100"]]
    accounts = (
        await client.get("/v1/registry/merchant-accounts?provider=cmb&province=44", headers=admin)
    ).json()
    assert [(a["merchant_id"], a["city"]) for a in accounts["items"]] == sorted(
        (f"M-{c}", c) for c in CITY_NAMES if c.startswith("44")
    )
    activities = (await client.get("/v1/registry/activities?city=330200", headers=admin)).json()
    assert [a["title"] for a in activities["items"]] == ["宁波启动仪式"]
    policies = (await client.get("/v1/registry/policies?unit=33", headers=admin)).json()
    assert [p["unit"] for p in policies["items"]] == ["33"]
    campaigns = (await client.get("/v1/campaigns", headers=admin)).json()
    assert "2023" in [c["code"] for c in campaigns]


async def test_pages_follow_the_cursor_and_csv_has_a_header(
    client: httpx.AsyncClient, admin: dict[str, str], provider_token: Any
) -> None:
    await seed(client, admin, provider_token)
    codes = sorted(CITY_NAMES)
    seen, cursor = [], None
    while True:
        url = "/v1/registry/cities?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await client.get(url, headers=admin)).json()
        assert len(page["items"]) <= 2
        seen += [c["city"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == codes
    answer = await client.get("/v1/registry/cities?format=csv&limit=3", headers=admin)
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    lines = answer.text.splitlines()
    assert lines[0] == "campaign,city,name,last_day"
    assert [line.split(",")[1] for line in lines[1:]] == codes[:3]
    assert answer.headers["x-next-cursor"]

    for url, code in (
        ("/v1/registry/cities?cursor=bm90IGEgY3Vyc29y", "bad_cursor"),
        ("/v1/registry/cities?kind=retail", "unknown_parameter"),
        ("/v1/registry/enterprises?unit=33", "unknown_parameter"),
    ):
        refused = await client.get(url, headers=admin)
        assert (refused.status_code, refused.json()["error"]["code"]) == (400, code), url


async def test_a_regional_token_reads_its_region_only(
    client: httpx.AsyncClient, admin: dict[str, str], provider_token: Any, regional_token: Any
) -> None:
    await seed(client, admin, provider_token)
    zhejiang = await regional_token(Role.VIEWER, "33")
    cities = (await client.get("/v1/registry/cities", headers=zhejiang)).json()
    assert all(c["city"].startswith("33") for c in cities["items"]) and cities["items"]
    policies = (await client.get("/v1/registry/policies", headers=zhejiang)).json()
    assert {p["unit"][:2] for p in policies["items"]} == {"33"}
    accounts = (await client.get("/v1/registry/merchant-accounts", headers=zhejiang)).json()
    assert {a["city"][:2] for a in accounts["items"]} == {"33"}
    elsewhere = await client.get("/v1/registry/enterprises?province=44", headers=zhejiang)
    assert (elsewhere.status_code, elsewhere.json()["error"]["code"]) == (403, "out_of_scope")
    policy = await client.get("/v1/registry/policies?unit=440100", headers=zhejiang)
    assert policy.status_code == 403
    cmb = await provider_token("cmb")
    assert (await client.get("/v1/registry/cities", headers=cmb)).status_code == 403


async def test_command_line_lists_a_kind_as_a_table(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    provider_token: Any,
    database_url: str,
    tmp_path: Path,
) -> None:
    await seed(client, admin, provider_token)
    done = await run_payfeed(
        database_url, tmp_path, "registry", "list", "--kind", "cities", "--province", "33"
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    assert lines[0].split() == ["campaign", "city", "name", "last_day"]
    assert [line.split()[1] for line in lines[1:]] == sorted(c for c in CITY_NAMES if c[:2] == "33")
    wrong = await run_payfeed(database_url, tmp_path, "registry", "list", "--kind", "shops")
    assert wrong.returncode == 2
    assert "--kind is one of cities, enterprises, merchant-accounts, activities, policies" in (
        wrong.stderr.decode()
    )


async def test_command_line_csv_neutralises_formula_cells(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    provider_token: Any,
    database_url: str,
    tmp_path: Path,
) -> None:
    """A listing saved with --csv is opened in Excel/WPS like any export."""
    await seed(client, admin, provider_token)
    policy = {"unit": "33", "title": '=HYPERLINK("x")', "issued_on": "2023-09-02"}
    assert (await register(client, admin, "policies", [policy])).status_code == 200
    done = await run_payfeed(
        database_url, tmp_path, "registry", "list", "--kind", "policies", "--csv"
    )
    assert done.returncode == 0, done.stderr
    text = done.stdout.decode()
    assert "'=HYPERLINK" in text
    assert "\n=HYPERLINK" not in text and ",=HYPERLINK" not in text
