"""The registry's input shapes (SPEC section 1 and 5), shared by HTTP and CSV imports.

Field rules live here; rules that need the database (the 50 % and 100-enterprise
limits) live in `campaign.registry`.
"""

import re
from datetime import time, timedelta
from enum import StrEnum
from typing import Annotated, Self

from pydantic import ConfigDict, Field, field_validator, model_validator

from schemas.mcc import CATEGORIES
from schemas.records import EnterpriseKind
from schemas.regions import PROVINCES, resolve_city
from schemas.text import FIRST_DAY, CampaignDay, PlainTextModel, ProviderCode
from schemas.uscc import uscc_is_valid

DEFAULT_CAMPAIGN = "2023"
REPORT_DUE_AFTER_DAYS = 7
"""Provinces report a week after the campaign ends (15 October for 2023)."""

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


class Registration(PlainTextModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CityIn(Registration):
    city: CityCode
    campaign: str = DEFAULT_CAMPAIGN
    last_day: CampaignDay | None = Field(default=None, description="the city's local extension")

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
    provider: ProviderCode
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


Title = Annotated[str, Field(min_length=1, max_length=200)]


class ActivityIn(Registration):
    """One of the "1+N" activities (the launch ceremony or a themed activity),
    identified within its campaign by city and title."""

    city: CityCode
    theme: str = Field(min_length=1, max_length=100, examples=["汽车消费节"])
    title: Title
    first_day: CampaignDay
    last_day: CampaignDay
    sessions: int = Field(ge=0, le=1_000_000, description="sessions held (场次)")
    campaign: str = DEFAULT_CAMPAIGN

    _resolve = field_validator("city")(_city)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.last_day < self.first_day:
            raise ValueError("last_day must not be before first_day")
        return self


class PolicyIn(Registration):
    """A support measure issued by a city (its code; a county code resolves to its
    city) or a province (its two-digit prefix), identified by unit and title."""

    unit: str = Field(pattern=r"^[0-9]{2}([0-9]{4})?$", examples=["33", "330100"])
    title: Title
    issued_on: CampaignDay
    campaign: str = DEFAULT_CAMPAIGN

    @field_validator("unit")
    @classmethod
    def _unit(cls, value: str) -> str:
        if len(value) == 2:
            if value not in PROVINCES:
                raise ValueError(f"{value} is not the prefix of a GB/T 2260 province")
            return value
        resolved = _city(value)
        assert resolved is not None
        return resolved


class CampaignIn(Registration):
    """A campaign's name and windows (`PUT /v1/campaigns/{code}`). The baseline
    defaults to the same number of days immediately before `first_day`."""

    name: str = Field(min_length=1, max_length=200, examples=["百城万企促消费"])
    slogan: str = Field(default="", max_length=200)
    first_day: CampaignDay
    last_day: CampaignDay
    baseline_first_day: CampaignDay | None = None
    baseline_last_day: CampaignDay | None = None
    report_due: CampaignDay | None = Field(
        default=None,
        description="the last day on which a province's submission is on time; "
        "default one week after last_day (2023-10-15 for the 2023 notice)",
    )

    @model_validator(mode="after")
    def _windows(self) -> Self:
        if self.last_day < self.first_day:
            raise ValueError("last_day must not be before first_day")
        if self.report_due is None:
            self.report_due = self.last_day + timedelta(days=REPORT_DUE_AFTER_DAYS)
        days = self.last_day - self.first_day
        if self.baseline_last_day is None:
            self.baseline_last_day = self.first_day - timedelta(days=1)
        if self.baseline_first_day is None:
            self.baseline_first_day = self.baseline_last_day - days
        if self.baseline_first_day < FIRST_DAY:
            raise ValueError(f"the baseline would begin before {FIRST_DAY}")
        if self.baseline_last_day < self.baseline_first_day:
            raise ValueError("baseline_last_day must not be before baseline_first_day")
        if self.baseline_last_day >= self.first_day:
            raise ValueError("the baseline must end before the campaign's first_day")
        return self


DEFAULT_DUE = time(10, 0)


class ProviderKind(StrEnum):
    BANK = "bank"
    CARD_NETWORK = "card_network"
    THIRD_PARTY = "third_party"


class Delivery(StrEnum):
    STREAM = "stream"
    """Records as they happen, over HTTP or Kafka."""
    DAILY = "daily"
    """One settlement file per day."""


class ProviderIn(Registration):
    """A provider (SPEC section 10), identified by its code. `due`: the local time
    on the day after a business day by which that day's data is complete."""

    provider: ProviderCode
    name: str = Field(min_length=1, max_length=200, examples=["招商银行"])
    kind: ProviderKind
    delivery: Delivery
    due: time = Field(default=DEFAULT_DUE, examples=["10:00"])

    @field_validator("due", mode="before")
    @classmethod
    def _hh_mm(cls, value: object) -> object:
        if isinstance(value, str) and not re.fullmatch(r"[0-2][0-9]:[0-5][0-9]", value):
            raise ValueError("due is a local time HH:MM")
        return value
