"""What text payfeed accepts anywhere: no NUL or other control character.

PostgreSQL refuses NUL in `text` and `jsonb`, and a control character in a name,
a filter or a note is never meant (it is a broken file or an attack on whoever
reads an export). Records get `invalid_field` for such a value, every other
input a 400 naming where it was.
"""

import re
from datetime import date, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, field_validator

CONTROL_CHARACTERS = r"[\x00-\x1f\x7f]"
"""C0 controls and DEL; a regex class, for polars and `re` alike."""
_CONTROL = re.compile(CONTROL_CHARACTERS)

PROVIDER_PATTERN = r"^[a-z][a-z0-9_-]{1,31}$"
"""Provider codes (SPEC section 10): what tokens, merchant accounts and filters name."""
BATCH_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
"""`X-Batch-Id`: letters, digits and `. _ : -`, so that it is also a path segment."""

MAX_INTEGER = 2**31 - 1
MAX_BIGINT = 2**63 - 1
"""The largest PostgreSQL `integer` and `bigint`: ids and numbers above them name nothing."""

FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2100, 12, 31)
"""The days a campaign, an activity or a policy may fall on."""
_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def control_character_in(value: str) -> int | None:
    """The position of the first control character in `value`, or None."""
    found = _CONTROL.search(value)
    return found.start() if found else None


def plain_text(value: str) -> str:
    position = control_character_in(value)
    if position is not None:
        raise ValueError(f"holds a control character at position {position}")
    return value


class PlainTextModel(BaseModel):
    """Every string field of the model refuses control characters."""

    @field_validator("*", mode="after")
    @classmethod
    def _plain(cls, value: object) -> object:
        if isinstance(value, str):
            plain_text(value)
        return value


def _iso_day(value: object) -> object:
    """Only `YYYY-MM-DD` text (or a date): pydantic would take a number of seconds."""
    if isinstance(value, str) and not _ISO_DAY.fullmatch(value):
        raise ValueError("must be a day as YYYY-MM-DD")
    if isinstance(value, int | float):
        raise ValueError("must be a day as YYYY-MM-DD")
    return value


def _campaign_era(value: date) -> date:
    if not FIRST_DAY <= value <= LAST_DAY:
        raise ValueError(f"must be from {FIRST_DAY} to {LAST_DAY}")
    return value


def _campaign_era_time(value: datetime) -> datetime:
    _campaign_era(value.date())
    return value


Day = Annotated[date, BeforeValidator(_iso_day)]
"""A day given as `YYYY-MM-DD`."""
CampaignDay = Annotated[Day, AfterValidator(_campaign_era)]
"""A day of a campaign's calendar: years 2000 to 2100."""
CampaignTime = Annotated[datetime, AfterValidator(_campaign_era_time)]
"""A time on a day of the years 2000 to 2100: one far beyond them cannot even be
moved to UTC to be compared with a stored time."""
ProviderCode = Annotated[str, Field(pattern=PROVIDER_PATTERN, examples=["cmb"])]
