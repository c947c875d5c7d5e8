import pytest

from schemas.mcc import CATEGORIES, MCC_CATEGORY


def test_categories_are_the_closed_list_in_spec_order() -> None:
    assert CATEGORIES == (
        "auto",
        "appliance",
        "home",
        "apparel",
        "maternal_infant",
        "electronics",
        "green_health",
        "catering",
        "grocery",
        "department_store",
        "culture_tourism",
        "services",
        "other",
    )


def test_table_size_and_categories() -> None:
    assert len(MCC_CATEGORY) == 115
    assert set(MCC_CATEGORY.values()) == set(CATEGORIES) - {"other"}
    assert all(len(mcc) == 4 and mcc.isdigit() for mcc in MCC_CATEGORY)


@pytest.mark.parametrize(
    ("mcc", "category"),
    [
        ("5511", "auto"),
        ("7549", "auto"),
        ("5722", "appliance"),
        ("4812", "electronics"),
        ("5200", "home"),
        ("5948", "apparel"),
        ("5641", "maternal_infant"),
        ("8099", "green_health"),
        ("5812", "catering"),
        ("5411", "grocery"),
        ("5311", "department_store"),
        ("7011", "culture_tourism"),
        ("7999", "culture_tourism"),
        ("7299", "services"),
    ],
)
def test_mcc_category(mcc: str, category: str) -> None:
    assert MCC_CATEGORY[mcc] == category


@pytest.mark.parametrize("mcc", ["6011", "5999", "0000", "4121"])
def test_unlisted_mccs_fall_through(mcc: str) -> None:
    assert mcc not in MCC_CATEGORY
