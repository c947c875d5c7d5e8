"""Two provinces' campaign, 浙江 (33: 杭州, 宁波) and 广东 (44: 广州, 深圳), each with
enterprises, merchant accounts, activities, policies, sales in the campaign and
the baseline, and quarantined records, and what of 广东 must never reach a
浙江 token: its codes, names, ids and figures, as text and as XLSX yuan."""

from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.factories import push, record, register, uscc

CITY_NAMES = {"330100": "杭州市", "330200": "宁波市", "440100": "广州市", "440300": "深圳市"}
SALES = {"330100": 1_234_501, "330200": 567_803, "440100": 98_765_407, "440300": 87_654_309}
"""Net fen per city in the campaign window: distinctive digits, so that a figure of
广东 (or a national sum holding one) is recognisable in any answer."""
BASELINE = {"330100": 1_000_003, "330200": 400_009, "440100": 77_654_311, "440300": 66_543_217}


@dataclass
class TwoProvinces:
    usccs: dict[str, str] = field(default_factory=dict)
    """Enterprise USCC by city."""
    quarantined: dict[str, list[int]] = field(default_factory=dict)
    """Quarantine ids by province (`"unresolved"` for records that resolve nowhere)."""
    forbidden: set[str] = field(default_factory=set)
    """What of 广东 must never appear in an answer to a 浙江 token."""
    forbidden_to_hangzhou: set[str] = field(default_factory=set)
    """What must never appear in an answer to a 杭州 token: all of the above, and
    宁波's codes, names, ids and figures, 浙江's sums and its own policy."""


def _yuan(fen: int) -> str:
    return f"{fen / 100:.2f}".rstrip("0").rstrip(".")


async def seed(
    client: httpx.AsyncClient, admin: dict[str, str], provider_token: Any
) -> TwoProvinces:
    seeded = TwoProvinces()
    cities = [{"city": c} for c in CITY_NAMES]
    assert (await register(client, admin, "cities", cities)).status_code == 200
    for city, name in CITY_NAMES.items():
        code = uscc()
        seeded.usccs[city] = code
        short = name.removesuffix("市")
        response = await register(
            client,
            admin,
            "enterprises",
            [{"uscc": code, "name": f"{short}百货", "city": city, "kind": "retail"}],
        )
        assert response.status_code == 200, response.text
        account = {"provider": "cmb", "merchant_id": f"M-{city}", "uscc": code}
        assert (await register(client, admin, "merchant-accounts", [account])).status_code == 200
        activity = {
            "city": city,
            "theme": f"{short}消费节",
            "title": f"{short}启动仪式",
            "first_day": "2023-09-09",
            "last_day": "2023-09-10",
            "sessions": int(city[2:4]) + 3,
        }
        assert (await register(client, admin, "activities", [activity])).status_code == 200
        policy = {"unit": city, "title": f"{short}消费券", "issued_on": "2023-09-01"}
        assert (await register(client, admin, "policies", [policy])).status_code == 200
    for province, name in (("33", "浙江"), ("44", "广东")):
        policy = {"unit": province, "title": f"{name}促消费十条", "issued_on": "2023-08-30"}
        assert (await register(client, admin, "policies", [policy])).status_code == 200
    cmb = await provider_token("cmb")
    records = []
    for city in CITY_NAMES:
        records.append(
            record(f"T-{city}", merchant_id=f"M-{city}", amount_fen=SALES[city], payer_ref=city)
        )
        records.append(
            record(
                f"B-{city}",
                merchant_id=f"M-{city}",
                amount_fen=BASELINE[city],
                occurred_at="2023-08-20T10:00:00+08:00",
            )
        )
    answer = await push(client, cmb, "two-provinces", records)
    assert answer.json()["inserted"] == len(records), answer.text
    held = [
        record("Q-GZ-UNKNOWN", merchant_id="M-GZ-UNREGISTERED", amount_fen=4_455_667),
        record("T-440100", merchant_id="M-440100", amount_fen=3_344_551),  # a conflict
        record("T-330100", merchant_id="M-330100", amount_fen=2_233_441),  # a conflict
    ]
    answer = await push(client, cmb, "two-provinces-held", held)
    assert answer.json()["quarantined"] == 3, answer.text
    listing = (await client.get("/v1/quarantine", headers=admin)).json()["items"]
    for item in listing:
        merchant = item["record"]["merchant_id"]
        key = "unresolved" if merchant == "M-GZ-UNREGISTERED" else merchant[2:4]
        seeded.quarantined.setdefault(key, []).append(item["id"])

    guangdong = [c for c in CITY_NAMES if c.startswith("44")]
    seeded.forbidden |= {"广东", "440100", "440300", "广州", "深圳"}
    seeded.forbidden |= {seeded.usccs[c] for c in guangdong}
    seeded.forbidden |= {f"M-{c}" for c in guangdong} | {"M-GZ-UNREGISTERED", "Q-GZ-UNKNOWN"}
    national_net = sum(SALES.values())
    national_baseline = sum(BASELINE.values())
    for fen in [
        *(SALES[c] for c in guangdong),
        *(BASELINE[c] for c in guangdong),
        national_net,
        national_baseline,
        4_455_667,
        3_344_551,
    ]:
        seeded.forbidden |= {str(fen), _yuan(fen)}
    seeded.forbidden_to_hangzhou = seeded.forbidden | {
        "330200",
        "宁波",
        seeded.usccs["330200"],
        "M-330200",
        "浙江促消费十条",
    }
    for fen in (
        SALES["330200"],
        BASELINE["330200"],
        SALES["330100"] + SALES["330200"],
        BASELINE["330100"] + BASELINE["330200"],
    ):
        seeded.forbidden_to_hangzhou |= {str(fen), _yuan(fen)}
    return seeded
