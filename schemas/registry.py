"""The registry's input shapes (SPEC section 1 and 5), shared by HTTP and CSV imports.

Field rules live here; rules that need the database (the 50 % and 100-enterprise
limits) live in `ingest.registry`.
"""

from datetime import date
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.mcc import CATEGORIES
from schemas.records import EnterpriseKind
from schemas.regions import resolve_city
from schemas.uscc import uscc_is_valid

DEFAULT_CAMPAIGN = "2023"

CityCode = Annotated[str, Field(pattern=r"^[0-9]{6}$", examples=["330100"])]


def _city(code: str | None) -> str | None:
    """A county code resolves to its city; an unknown code is an error."""
    if code is None:
        return None
    city = resolve_city(code)
    if city is None:
        raise ValueError(f"{code} is not a GB/T 2260 prefecture-level city or municipality")
    return city.code


def _category(value: str | None) -> str | None:
    if value is not None and value not in CATEGORIES:
        raise ValueError(f"category must be one of {', '.join(CATEGORIES)}")
    return value


class Registration(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CityIn(Registration):
    city: CityCode
    campaign: str = DEFAULT_CAMPAIGN
    last_day: date | None = Field(default=None, description="the city's local extension")

    _resolve = field_validator("city")(_city)


class EnterpriseIn(Registration):
    uscc: str = Field(examples=["91330100MA27XL1234"])
    name: str = Field(min_length=1, max_length=200)
    city: CityCode
    kind: EnterpriseKind
    category: str = "other"
    campaign: str = DEFAULT_CAMPAIGN

    _resolve = field_validator("city")(_city)
    _category = field_validator("category")(_category)

    @field_validator("uscc")
    @classmethod
    def _check_uscc(cls, value: str) -> str:
        value = value.upper()
        if not uscc_is_valid(value):
            raise ValueError("not a Unified Social Credit Code (the check character is wrong)")
        return value


class MerchantAccountIn(Registration):
    provider: str = Field(min_length=1, max_length=64)
    merchant_id: str = Field(min_length=1, max_length=32)
    uscc: str
    city: CityCode | None = None
    category: str | None = None

    _resolve = field_validator("city")(_city)
    _category = field_validator("category")(_category)

    @field_validator("uscc")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()
