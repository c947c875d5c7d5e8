"""Registry and record factories: valid codes, realistic defaults, exact amounts."""

import itertools
from typing import Any

import httpx

from schemas.uscc import CHARSET, uscc_check_char

_serial = itertools.count(1)


def uscc(n: int | None = None) -> str:
    """A valid Unified Social Credit Code, distinct per call (or per `n`)."""
    n = next(_serial) if n is None else n
    body = "91330100MA"
    digits = ""
    while len(body + digits) < 17:
        digits = CHARSET[n % 10] + digits
        n //= 10
    first17 = body + digits
    return first17 + uscc_check_char(first17)


def record(txn_id: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "txn_id": txn_id,
        "kind": "payment",
        "amount_fen": 10000,
        "currency": "CNY",
        "occurred_at": "2023-09-10T12:00:00+08:00",
        "merchant_id": "M1",
        "channel": "offline",
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


async def register(
    client: httpx.AsyncClient, admin: dict[str, str], kind: str, rows: list[dict[str, Any]]
) -> httpx.Response:
    response = await client.post(f"/v1/registry/{kind}", json=rows, headers=admin)
    return response


async def enterprise_with_account(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    *,
    provider: str,
    merchant_id: str,
    city: str = "330100",
    category: str | None = None,
    kind: str = "retail",
    account: dict[str, Any] | None = None,
) -> str:
    code = uscc()
    enterprise = {"uscc": code, "name": f"企业{code[-4:]}", "city": city, "kind": kind}
    if category is not None:
        enterprise["category"] = category
    response = await register(client, admin, "enterprises", [enterprise])
    assert response.status_code == 200, response.text
    response = await register(
        client,
        admin,
        "merchant-accounts",
        [{"provider": provider, "merchant_id": merchant_id, "uscc": code, **(account or {})}],
    )
    assert response.status_code == 200, response.text
    return code


async def push(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    batch_id: str,
    records: list[dict[str, Any]],
) -> httpx.Response:
    return await client.post(
        "/v1/batches", json=records, headers={**headers, "X-Batch-Id": batch_id}
    )
