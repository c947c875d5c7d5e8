"""The data standard of one payment record (SPEC section 2) and its outcome codes.

Every adapter produces these columns as strings; `ingest.normalise` validates and
types them in one pass over the whole batch.
"""

from datetime import date, datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

STANDARD_FIELDS: tuple[str, ...] = (
    "txn_id",
    "kind",
    "amount_fen",
    "currency",
    "occurred_at",
    "merchant_id",
    "channel",
    "mcc",
    "original_txn_id",
    "payer_ref",
)

REQUIRED_FIELDS: frozenset[str] = frozenset(
    {"txn_id", "kind", "amount_fen", "currency", "occurred_at", "merchant_id", "channel"}
)

TXN_ID_PATTERN = r"^[A-Za-z0-9._:/-]{1,64}$"
MAX_AMOUNT_FEN = 10**12
FUTURE_TOLERANCE_SECONDS = 600
LOCAL_TIME_ZONE = "Asia/Shanghai"


def local_today(now: datetime) -> date:
    """The day `now` falls on in Asia/Shanghai: the day payfeed counts."""
    return now.astimezone(ZoneInfo(LOCAL_TIME_ZONE)).date()


class Kind(StrEnum):
    PAYMENT = "payment"
    REFUND = "refund"


class Channel(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class Outcome(StrEnum):
    """Per-record outcomes; rejection codes are listed in precedence order."""

    INSERTED = "inserted"
    DUPLICATE = "duplicate"
    MALFORMED = "malformed"
    INVALID_FIELD = "invalid_field"
    UNSUPPORTED_CURRENCY = "unsupported_currency"
    FUTURE_TIME = "future_time"
    OUTSIDE_WINDOW = "outside_window"
    UNKNOWN_MERCHANT = "unknown_merchant"
    CONFLICT = "conflict"


QUARANTINED_CODES: frozenset[str] = frozenset({Outcome.UNKNOWN_MERCHANT, Outcome.CONFLICT})


class Role(StrEnum):
    PROVIDER = "provider"
    VIEWER = "viewer"
    ADMIN = "admin"


class EnterpriseKind(StrEnum):
    RETAIL = "retail"
    CATERING = "catering"
    ECOMMERCE = "ecommerce"
    SERVICES = "services"
    OTHER = "other"
