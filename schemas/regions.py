# Source: github.com/modood/Administrative-divisions-of-China (MIT), dist/cities.csv at commit
# 2824502ba4a6875bceafee81f926789635db1d00 and dist/provinces.csv at commit
# a9f6e38446d29663997bf46d912c000bcd0b2dcb; the repository's README says its data follow the
# National Bureau of Statistics' 2023 统计用区划代码 (as of 2023-06-30). The list reflects every
# prefecture-level change up to it (莱芜 merged into 济南 in 2019, 那曲市 since 2018).
# Four-digit codes were widened to XXYY00; the municipalities' 市辖区/县 rows became XX0000 and
# the 省直辖县级行政区划 rows (419000, 429000, 469000, 659000) were left out.
"""GB/T 2260 provinces and prefecture-level cities, the units the campaign is organised by.

The data file holds the 31 mainland provincial-level units, their 333 prefecture-level units
(293 地级市, 7 地区, 30 自治州, 3 盟) and the four municipalities as single cities (110000,
120000, 310000, 500000): 337 cities in all. It is read once at import.

County-level cities governed directly by a province (济源, 仙桃, 五指山, 石河子, …, under the
XX90ZZ codes) belong to no prefecture-level city, so their codes do not resolve.
"""

import csv
from collections import Counter
from dataclasses import dataclass
from importlib.resources import files

MUNICIPALITY_PROVINCES = frozenset({"11", "12", "31", "50"})


@dataclass(frozen=True)
class City:
    code: str
    name: str
    province: str
    province_name: str
    is_municipality: bool


def _load() -> tuple[dict[str, str], dict[str, City]]:
    provinces: dict[str, str] = {}
    cities: dict[str, City] = {}
    text = files("schemas").joinpath("data", "gbt2260_cities.csv").read_text(encoding="utf-8")
    for row in csv.DictReader(text.splitlines()):
        provinces[row["province_code"]] = row["province_name"]
        cities[row["code"]] = City(
            code=row["code"],
            name=row["name"],
            province=row["province_code"],
            province_name=row["province_name"],
            is_municipality=row["kind"] == "municipality",
        )
    return provinces, cities


PROVINCES, CITIES = _load()

_PREFECTURE_COUNTS = Counter(city.province for city in CITIES.values())


def resolve_city(code: str) -> City | None:
    """The city a six-digit code belongs to, or None when it is not one of ours.

    A county code XXYYZZ resolves to XXYY00 and any code of a municipality to XX0000. Only the
    city part is checked: county codes are not listed, so an unassigned ZZ still resolves.
    """
    if len(code) != 6 or not code.isascii() or not code.isdigit():
        return None
    if code[:2] in MUNICIPALITY_PROVINCES:
        return CITIES[code[:2] + "0000"]
    return CITIES.get(code[:4] + "00")


def prefecture_count(province: str) -> int:
    """How many prefecture-level cities a province has (1 for a municipality).

    The base of the rule that a province enters at most half of them; raises KeyError for a
    prefix that is not one of the 31 provinces.
    """
    if province not in PROVINCES:
        raise KeyError(province)
    return _PREFECTURE_COUNTS[province]
