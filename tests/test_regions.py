import pytest

from schemas.regions import CITIES, PROVINCES, City, prefecture_count, resolve_city


def test_the_31_provinces_and_337_cities() -> None:
    assert len(PROVINCES) == 31
    assert PROVINCES["33"] == "浙江省"
    assert PROVINCES["65"] == "新疆维吾尔自治区"
    assert len(CITIES) == 337
    assert sum(not city.is_municipality for city in CITIES.values()) == 333
    assert {code for code, city in CITIES.items() if city.is_municipality} == {
        "110000",
        "120000",
        "310000",
        "500000",
    }


def test_every_code_is_xxyy00_and_in_its_province() -> None:
    for code, city in CITIES.items():
        assert city.code == code
        assert len(code) == 6 and code.isdigit() and code.endswith("00")
        assert city.province == code[:2]
        assert city.province_name == PROVINCES[city.province]


@pytest.mark.parametrize(
    ("province", "count"),
    [("33", 11), ("44", 21), ("13", 11), ("15", 12), ("41", 17), ("46", 4), ("51", 21)],
)
def test_prefecture_count(province: str, count: int) -> None:
    assert prefecture_count(province) == count


def test_prefecture_counts_add_up_to_333_plus_the_municipalities() -> None:
    assert sum(prefecture_count(p) for p in PROVINCES) == 337
    assert [prefecture_count(p) for p in ("11", "12", "31", "50")] == [1, 1, 1, 1]


def test_prefecture_count_of_an_unknown_province() -> None:
    with pytest.raises(KeyError):
        prefecture_count("71")


def test_county_resolves_to_its_city() -> None:
    assert resolve_city("330106") == City("330100", "杭州市", "33", "浙江省", False)
    assert resolve_city("330100") == City("330100", "杭州市", "33", "浙江省", False)
    assert resolve_city("152527") == CITIES["152500"]


@pytest.mark.parametrize(
    ("code", "city"),
    [
        ("110105", "110000"),
        ("110100", "110000"),
        ("110000", "110000"),
        ("500101", "500000"),
        ("500229", "500000"),
        ("310115", "310000"),
        ("120101", "120000"),
    ],
)
def test_any_code_of_a_municipality_resolves_to_it(code: str, city: str) -> None:
    resolved = resolve_city(code)
    assert resolved is not None and resolved.code == city and resolved.is_municipality


@pytest.mark.parametrize(
    "code",
    [
        "",
        "3301",
        "3301060",
        "33010a",
        "３３０１０６",
        " 330106",
        "330000",
        "371200",
        "419001",
        "469001",
        "659001",
        "710000",
        "810000",
        "999999",
    ],
)
def test_unknown_or_malformed_codes_do_not_resolve(code: str) -> None:
    assert resolve_city(code) is None


def test_names_of_a_few_units() -> None:
    assert CITIES["152900"].name == "阿拉善盟"
    assert CITIES["232700"].name == "大兴安岭地区"
    assert CITIES["433100"].name == "湘西土家族苗族自治州"
    assert CITIES["540600"].name == "那曲市"
    assert CITIES["460400"].name == "儋州市"
