"""Reading the registry back: campaigns, cities, enterprises, merchant accounts,
activities, policies and providers — filtered, paged by cursor, as JSON or CSV,
each token seeing its own region only (providers lie in none); and `payfeed
registry list`."""

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
    assert (
        "--kind is one of cities, enterprises, merchant-accounts, activities, policies, providers"
        in wrong.stderr.decode()
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


PROVIDERS_CSV = (
    "provider,name,kind,delivery,due\r\n"
    "icbc,工商银行,bank,daily,11:30\r\n"
    "unionpay,银联,card_network,stream,10:00\r\n"
    "wechatpay,微信支付,third_party,daily,09:00\r\n"
)


async def test_providers_list_exactly_the_registered_ones_to_every_viewer(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    viewer: dict[str, str],
    provider_token: Any,
    regional_token: Any,
    database_url: str,
    tmp_path: Path,
) -> None:
    await seed(client, admin, provider_token)  # its merchant accounts and tokens name cmb
    icbc = {"provider": "icbc", "name": "工商银行", "kind": "bank", "delivery": "daily"}
    unionpay = {"provider": "unionpay", "name": "银联", "kind": "card_network"}
    wechatpay = {"provider": "wechatpay", "name": "微信支付", "kind": "third_party"}
    rows = [
        {**wechatpay, "delivery": "daily", "due": "09:00"},
        {**unionpay, "delivery": "stream"},
        {**icbc, "due": "11:30"},
    ]
    assert (await register(client, admin, "providers", rows)).json() == {"registered": 3}
    # Providers named only by accounts or tokens (cmb, boc) are not registered ones.
    await provider_token("boc")
    expected = [
        {**icbc, "due": "11:30"},
        {**unionpay, "delivery": "stream", "due": "10:00"},
        {**wechatpay, "delivery": "daily", "due": "09:00"},
    ]
    zhejiang = await regional_token(Role.VIEWER, "33")
    hangzhou = await regional_token(Role.ADMIN, "330100")
    for who in (viewer, admin, zhejiang, hangzhou):
        listed = await client.get("/v1/registry/providers", headers=who)
        assert listed.status_code == 200, listed.text
        assert listed.json() == {"items": expected, "next_cursor": None}

    banks = (await client.get("/v1/registry/providers?kind=bank", headers=viewer)).json()
    assert banks["items"] == [expected[0]]
    streams = await client.get("/v1/registry/providers?delivery=stream", headers=zhejiang)
    assert [p["provider"] for p in streams.json()["items"]] == ["unionpay"]
    first = (await client.get("/v1/registry/providers?limit=2", headers=viewer)).json()
    assert first["items"] == expected[:2]
    rest = await client.get(
        "/v1/registry/providers", params={"cursor": first["next_cursor"]}, headers=viewer
    )
    assert rest.json() == {"items": expected[2:], "next_cursor": None}

    as_csv = await client.get("/v1/registry/providers?format=csv", headers=viewer)
    assert as_csv.headers["content-type"] == "text/csv; charset=utf-8"
    assert as_csv.text == PROVIDERS_CSV
    again = await client.post(
        "/v1/registry/providers",
        content=as_csv.content,
        headers={**admin, "Content-Type": "text/csv"},
    )
    assert again.json() == {"registered": 3}  # a listing saved as CSV imports back

    for url in ("/v1/registry/providers?province=33", "/v1/registry/providers?city=330100"):
        refused = await client.get(url, headers=zhejiang)
        assert (refused.status_code, refused.json()["error"]["code"]) == (
            400,
            "unknown_parameter",
        )
    cmb_token = await provider_token("cmb")
    forbidden = await client.get("/v1/registry/providers", headers=cmb_token)
    assert (forbidden.status_code, forbidden.json()["error"]["code"]) == (403, "forbidden")
    assert (await client.get("/v1/registry/providers")).status_code == 401

    done = await run_payfeed(database_url, tmp_path, "registry", "list", "--kind", "providers")
    assert done.returncode == 0, done.stderr
    assert [line.split() for line in done.stdout.decode().splitlines()] == [
        ["provider", "name", "kind", "delivery", "due"],
        *([p["provider"], p["name"], p["kind"], p["delivery"], p["due"]] for p in expected),
    ]
    by_region = await run_payfeed(
        database_url, tmp_path, "registry", "list", "--kind", "providers", "--province", "33"
    )
    assert by_region.returncode == 2
    assert "providers are not filtered by --province" in by_region.stderr.decode()
