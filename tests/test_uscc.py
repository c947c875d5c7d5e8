import pytest

from schemas.uscc import uscc_check_char, uscc_is_valid

PUBLISHED = ["91350100M000100Y43", "91110000802100433B", "91440300708461136T"]


@pytest.mark.parametrize("code", PUBLISHED)
def test_published_codes_are_valid(code: str) -> None:
    assert uscc_is_valid(code)


@pytest.mark.parametrize("code", PUBLISHED)
def test_check_char_of_published_codes(code: str) -> None:
    assert uscc_check_char(code[:17]) == code[17]


@pytest.mark.parametrize(
    "code",
    [
        "91350100M000100Y44",  # wrong check character
        "91350100M000100Y4",  # 17 characters
        "91350100M000100Y430",  # 19 characters
        "91350100m000100Y43",  # lower case
        "91350100I000100Y43",  # I is not in the alphabet
        "91350100O000100Y43",  # nor O
        "",
    ],
)
def test_invalid_codes(code: str) -> None:
    assert not uscc_is_valid(code)


def test_check_char_zero_maps_to_0() -> None:
    first17 = "00000000000000000"
    assert uscc_check_char(first17) == "0"
    assert uscc_is_valid(first17 + "0")


def test_check_char_round_trip_makes_valid_codes() -> None:
    for body in ("91330106MA2AXXXX1", "12100000400000624", "92330106MA28YYYYT"):
        assert uscc_is_valid(body + uscc_check_char(body))


@pytest.mark.parametrize("first17", ["9135010", "91350100M000100YI", "91350100M000100Y4X"])
def test_check_char_refuses_what_cannot_be_a_code(first17: str) -> None:
    with pytest.raises(ValueError):
        uscc_check_char(first17)
