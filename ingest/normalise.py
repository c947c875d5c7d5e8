"""Validation and derived fields over a whole batch at once (polars expressions).

Takes the string columns an adapter produced and returns the typed records ready
for the writer plus the rejected rows, each with the first code in SPEC order
that applies. Codes that need the database (`unknown_merchant`, `conflict`) are
the writer's.
"""

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import polars as pl

from schemas.mcc import MCC_CATEGORY
from schemas.records import (
    FUTURE_TOLERANCE_SECONDS,
    LOCAL_TIME_ZONE,
    MAX_AMOUNT_FEN,
    STANDARD_FIELDS,
    TXN_ID_PATTERN,
    Outcome,
)
from schemas.text import CONTROL_CHARACTERS

ERROR_SCHEMA = {
    "index": pl.Int64,
    "txn_id": pl.String,
    "code": pl.String,
    "field": pl.String,
    "message": pl.String,
}

RFC3339 = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:[0-5]\d(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
"""RFC 3339 with its offset; a leap second (`:60`) is refused: PostgreSQL and
chrono would move it into the next minute, a day later at midnight."""

# Field rules in the order of STANDARD_FIELDS: the first failing field names the error.
FIELD_RULES: dict[str, tuple[pl.Expr, str]] = {
    "txn_id": (
        pl.col("txn_id").str.contains(TXN_ID_PATTERN),
        "txn_id must be 1-64 characters of A-Z a-z 0-9 . _ : / -",
    ),
    "kind": (pl.col("kind").is_in(["payment", "refund"]), "kind must be payment or refund"),
    "amount_fen": (
        pl.col("amount_fen").str.contains(r"^[0-9]{1,13}$")
        & pl.col("amount_fen").cast(pl.Int64, strict=False).is_between(1, MAX_AMOUNT_FEN),
        f"amount_fen must be an integer from 1 to {MAX_AMOUNT_FEN}",
    ),
    "currency": (pl.col("currency").is_not_null(), "currency is required"),
    "occurred_at": (
        pl.col("occurred_at").str.contains(RFC3339) & pl.col("_occurred_at").is_not_null(),
        "occurred_at must be an RFC 3339 time with an offset",
    ),
    "merchant_id": (
        pl.col("merchant_id").str.len_chars().is_between(1, 32),
        "merchant_id must be 1-32 characters",
    ),
    "channel": (
        pl.col("channel").is_in(["online", "offline"]),
        "channel must be online or offline",
    ),
    "mcc": (
        pl.col("mcc").is_null() | pl.col("mcc").str.contains(r"^[0-9]{4}$"),
        "mcc must be 4 digits",
    ),
    "original_txn_id": (
        pl.col("original_txn_id").is_null()
        | pl.col("original_txn_id").str.contains(TXN_ID_PATTERN),
        "original_txn_id must be 1-64 characters of A-Z a-z 0-9 . _ : / -",
    ),
    "payer_ref": (
        pl.col("payer_ref").is_null() | pl.col("payer_ref").str.len_chars().is_between(1, 256),
        "payer_ref must be at most 256 characters",
    ),
}
assert tuple(FIELD_RULES) == STANDARD_FIELDS

CONTENT = (
    "kind",
    "amount_fen",
    "occurred_at",
    "merchant_id",
    "channel",
    "mcc",
    "original_txn_id",
    "payer_hash",
)
"""The columns that make two records with one `txn_id` the same record."""

SHA256_BLOCK = 64
INNER_PAD = bytes(byte ^ 0x36 for byte in range(256))
OUTER_PAD = bytes(byte ^ 0x5C for byte in range(256))


@dataclass(frozen=True)
class Window:
    """The days any campaign can count: its earliest baseline day to its latest
    last day (local extensions included) plus 30 days."""

    first_day: date
    last_day: date


@dataclass
class Normalised:
    records: pl.DataFrame
    """Typed, valid, first occurrence of each txn_id in the batch."""
    repeats: pl.DataFrame
    """Later occurrences of a txn_id in the same batch: `index`, `txn_id`, `first_index`, `same`."""
    rejected: pl.DataFrame
    """`ERROR_SCHEMA` rows."""


def payer_hasher(secret: bytes) -> Callable[[bytes], bytes]:
    """HMAC-SHA256 keyed by `secret` (RFC 2104), with the key's inner and outer
    pads hashed once: each reference then costs two copies of a SHA-256 state,
    about a third of what `hmac.new` costs per call (it sets the key up again
    every time), which is most of normalisation's time at millions of records."""
    key = secret if len(secret) <= SHA256_BLOCK else hashlib.sha256(secret).digest()
    key = key.ljust(SHA256_BLOCK, b"\0")
    inner = hashlib.sha256(key.translate(INNER_PAD))
    outer = hashlib.sha256(key.translate(OUTER_PAD))

    def digest(message: bytes) -> bytes:
        inner_hash = inner.copy()
        inner_hash.update(message)
        outer_hash = outer.copy()
        outer_hash.update(inner_hash.digest())
        return outer_hash.digest()

    return digest


PAYER_CACHE = 200_000
"""References whose hash a process keeps: about 25 MB with references of 64
characters (card tokens, WeChat openids are shorter), a small part of a
backfill's memory."""
MAX_CHUNKS = 64
"""Each batch's new hashes are appended as a chunk; past this many the cache is
made one again, so that a long-running consumer's lookups stay one join."""


class PayerHashes:
    """The HMACs of payer references under one secret, keeping the last
    `PAYER_CACHE` references hashed: payers come back (the same customers at the
    same shops, day after day), and HMAC, one Python call per reference, is the
    largest cost of normalising a batch. Only the hashes of references not seen
    lately are computed; the cache is looked up by a join, not a loop.

    Shared by every thread that normalises (HTTP batches, the consumer's next
    poll, backfill's next chunk, replays). The cached frame is never changed, only
    replaced: a lookup joins against the frame it read, without a lock, and
    hashes what it missed without one either (that is the slow part). Only adding
    the new hashes takes the lock, and it leaves out any reference that another
    thread added since the lookup: a reference cached twice would make every
    later join with it return two rows for one."""

    def __init__(self, secret: bytes) -> None:
        self._digest = payer_hasher(secret)
        self._cached: tuple[pl.DataFrame, int] = (
            pl.DataFrame(schema={"payer_ref": pl.String, "payer_hash": pl.Binary}),
            0,
        )
        """The cache and how many references were ever added to it, replaced together."""
        self._adding = threading.Lock()

    def of(self, refs: pl.Series) -> pl.DataFrame:
        """`payer_ref`, `payer_hash` of distinct references `refs`."""
        known, added = self._cached
        looked_up = refs.alias("payer_ref").to_frame().join(known, on="payer_ref", how="left")
        found = looked_up.filter(pl.col("payer_hash").is_not_null())
        missing = looked_up.filter(pl.col("payer_hash").is_null())["payer_ref"]
        hashed = pl.DataFrame(
            [
                missing,
                pl.Series("payer_hash", [self._digest(ref.encode()) for ref in missing], pl.Binary),
            ]
        )
        if hashed.height:
            self._add(hashed, added)
        return pl.concat([found, hashed])

    def _add(self, hashed: pl.DataFrame, added_before: int) -> None:
        with self._adding:
            known, added = self._cached
            if added > added_before:
                # Added since our lookup: the last rows of the cache (all of it if
                # that many were pushed out meanwhile).
                since = known.tail(added - added_before)
                hashed = hashed.join(since, on="payer_ref", how="anti")
            grown = pl.concat([known, hashed]).tail(PAYER_CACHE)
            grown = grown.rechunk() if grown.n_chunks() > MAX_CHUNKS else grown
            self._cached = (grown, added + hashed.height)


def normalise(
    frame: pl.DataFrame, *, now: datetime, window: Window, payers: PayerHashes
) -> Normalised:
    frame = frame.with_columns(
        pl.when(pl.col(name) != "").then(pl.col(name)).alias(name) for name in STANDARD_FIELDS
    ).with_columns(
        # chrono's ISO 8601 reading: takes `t`, a space and `z` as RFC 3339 does, in
        # half the time of rewriting them for an explicit format first.
        pl.col("occurred_at")
        .str.to_datetime("%+", strict=False, time_zone="UTC")
        .alias("_occurred_at")
    )
    # A control character fails any field (PostgreSQL refuses NUL in text).
    control_field = pl.coalesce(
        pl.when(pl.col(name).str.contains(CONTROL_CHARACTERS)).then(pl.lit(name))
        for name in STANDARD_FIELDS
    )
    # Computed once into `_control`: written into each field's rule instead, it
    # would be evaluated once per field (ten regex scans of every column).
    failing_field = pl.coalesce(
        pl.when(~rule.fill_null(False) | pl.lit(name).eq(pl.col("_control")).fill_null(False)).then(
            pl.lit(name)
        )
        for name, (rule, _) in FIELD_RULES.items()
    )
    day = pl.col("_occurred_at").dt.convert_time_zone(LOCAL_TIME_ZONE).dt.date()
    horizon = now + timedelta(seconds=FUTURE_TOLERANCE_SECONDS)
    checked = (
        frame.with_columns(control_field.alias("_control"), day.alias("day"))
        .with_columns(failing_field.alias("field"))
        .with_columns(
            pl.when(pl.col("field").is_not_null())
            .then(pl.lit(Outcome.INVALID_FIELD.value))
            .when(pl.col("currency") != "CNY")
            .then(pl.lit(Outcome.UNSUPPORTED_CURRENCY.value))
            .when(pl.col("_occurred_at") > horizon)
            .then(pl.lit(Outcome.FUTURE_TIME.value))
            .when(~pl.col("day").is_between(window.first_day, window.last_day))
            .then(pl.lit(Outcome.OUTSIDE_WINDOW.value))
            .alias("code")
        )
    )
    messages = {name: message for name, (_, message) in FIELD_RULES.items()}
    rejected = checked.filter(pl.col("code").is_not_null()).select(
        "index",
        pl.when(pl.col("field").eq_missing("txn_id"))
        .then(None)
        .otherwise("txn_id")
        .alias("txn_id"),
        "code",
        "field",
        pl.when(pl.col("code") == Outcome.INVALID_FIELD.value)
        .then(
            pl.when(pl.col("field").eq_missing(pl.col("_control")))
            .then(pl.col("field") + " holds a control character")
            .otherwise(pl.col("field").replace_strict(messages, default=None))
        )
        .when(pl.col("code") == Outcome.UNSUPPORTED_CURRENCY.value)
        .then(pl.lit("currency must be CNY, got ") + pl.col("currency"))
        .when(pl.col("code") == Outcome.FUTURE_TIME.value)
        .then(pl.lit("occurred_at is more than 10 minutes ahead of the server clock"))
        .otherwise(
            pl.lit(
                f"day is outside every campaign window ({window.first_day} to {window.last_day})"
            )
        )
        .alias("message"),
    )
    valid = checked.filter(pl.col("code").is_null())
    typed = valid.select(
        "index",
        "txn_id",
        "kind",
        pl.col("amount_fen").cast(pl.Int64),
        pl.col("_occurred_at").alias("occurred_at"),
        "day",
        "merchant_id",
        "channel",
        "mcc",
        pl.col("mcc").replace_strict(MCC_CATEGORY, default=None).alias("mcc_category"),
        "original_txn_id",
        _payer_hash_column(valid, payers),
    )
    is_first = typed["txn_id"].is_first_distinct()
    first, later = typed.filter(is_first), typed.filter(~is_first)
    repeats = later.join(first, on="txn_id", suffix="_first").select(
        "index",
        "txn_id",
        pl.col("index_first").alias("first_index"),
        pl.all_horizontal(pl.col(c).eq_missing(pl.col(f"{c}_first")) for c in CONTENT).alias(
            "same"
        ),
    )
    return Normalised(first, repeats, rejected.cast(ERROR_SCHEMA))  # type: ignore[arg-type]


def _payer_hash_column(valid: pl.DataFrame, payers: PayerHashes) -> pl.Series:
    """Hash each distinct payer reference once (a payer pays many times; HMAC
    needs Python). A replayed quarantined record brings its hash already, as the
    `\\x`-prefixed hex text the quarantine keeps."""
    known = payers.of(valid["payer_ref"].drop_nulls().unique())
    hashed = valid.select("payer_ref").join(
        known, on="payer_ref", how="left", maintain_order="left"
    )["payer_hash"]
    if "payer_hash" in valid.columns:
        stored = valid["payer_hash"].str.strip_prefix("\\x").str.decode("hex")
        return pl.select(pl.coalesce(stored, hashed)).to_series().alias("payer_hash")
    return hashed
