"""Kafka messages of one poll to per-provider batches for the writer, and the
messages that cannot be read as records at all.

Pure (no I/O), so that every way a message can be bad is unit-tested without a
broker. A message's value is one standard record (a JSON object) or a JSON array
of them; the `provider` header says whose records they are (never the body, as
for HTTP). The key is the `txn_id` by convention, which only decides the
partition (all versions of one record stay in order); it is not checked.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import orjson
from aiokafka.structs import ConsumerRecord

from ingest.adapters.base import RawBatch
from ingest.adapters.standard import from_objects
from ingest.masking import mask_pans

PROVIDER_HEADER = "provider"
ERROR_HEADER = "error"
UNKNOWN_PROVIDER = "unknown"
MAX_RAW_CHARS = 16_384
"""A quarantined bad message keeps this much of its (masked) text: enough to see
what went wrong, bounded so that one huge message cannot bloat the table."""

Message: TypeAlias = ConsumerRecord[bytes, bytes]


@dataclass(frozen=True)
class BadMessage:
    """A message that is not records: quarantined as `malformed` with its
    coordinates and, when a dead-letter topic is set, republished there."""

    provider: str
    reason: str
    source: dict[str, Any]
    record: dict[str, str]
    """The quarantined form: the masked, truncated text of the value (and key)."""
    key: bytes | None
    value: bytes | None
    """Key and value for the dead-letter topic: byte for byte when they hold no
    card number, so that they can be fixed and republished; masked text otherwise."""
    headers: tuple[tuple[str, bytes], ...]

    def dead_letter_headers(self) -> list[tuple[str, bytes]]:
        return [*self.headers, (ERROR_HEADER, f"malformed: {self.reason}".encode())]


@dataclass
class ProviderBatch:
    """One provider's records of a poll, in message order, as one writer batch."""

    raw: RawBatch
    origins: list[tuple[int, int]]
    """`(partition, offset)` of the message each record index came from."""
    source: dict[str, Any]
    """`{"topic", "offsets": {partition: [first, last]}}`: kept with the records
    the writer quarantines; a record's own message is the one keyed by its txn_id."""


@dataclass
class DecodedPoll:
    batches: dict[str, ProviderBatch] = field(default_factory=dict)
    bad: list[BadMessage] = field(default_factory=list)


def decode_poll(messages: Iterable[Message]) -> DecodedPoll:
    """Group the records of a poll's messages by provider; set aside bad messages.

    A loop over messages: each is its own JSON document, so there is nothing to
    vectorise before `from_objects` builds the columns.
    """
    items: dict[str, list[Any]] = {}
    origins: dict[str, list[tuple[int, int]]] = {}
    offsets: dict[str, dict[str, list[int]]] = {}
    topics: dict[str, str] = {}
    bad: list[BadMessage] = []
    for message in messages:
        try:
            provider, records = _read(message)
        except _Unreadable as exc:
            bad.append(_bad(message, exc.provider, exc.reason))
            continue
        if not records:
            continue
        items.setdefault(provider, []).extend(records)
        origins.setdefault(provider, []).extend(
            [(message.partition, message.offset)] * len(records)
        )
        span = offsets.setdefault(provider, {}).setdefault(
            str(message.partition), [message.offset, message.offset]
        )
        span[0], span[1] = min(span[0], message.offset), max(span[1], message.offset)
        topics[provider] = message.topic
    batches = {
        provider: ProviderBatch(
            from_objects(values),
            origins[provider],
            {"topic": topics[provider], "offsets": offsets[provider]},
        )
        for provider, values in items.items()
    }
    return DecodedPoll(batches, bad)


class _Unreadable(Exception):
    def __init__(self, provider: str | None, reason: str) -> None:
        super().__init__(reason)
        self.provider = provider
        self.reason = reason


def _read(message: Message) -> tuple[str, list[Any]]:
    """The provider and the decoded records of a message; `_Unreadable` if it has none."""
    provider = _provider(message.headers)
    if provider is None:
        raise _Unreadable(None, "the provider header is missing, empty or not UTF-8")
    if message.value is None:
        raise _Unreadable(provider, "the message has no value")
    try:
        value = orjson.loads(message.value)
    except orjson.JSONDecodeError as exc:
        raise _Unreadable(provider, f"the value is not valid JSON: {exc}") from None
    if isinstance(value, dict):
        return provider, [value]
    if isinstance(value, list):
        return provider, value
    raise _Unreadable(provider, "the value must be a record object or an array of records")


def _provider(headers: Sequence[tuple[str, bytes]]) -> str | None:
    """The last `provider` header, as Kafka's `lastHeader` reads it."""
    values = [value for name, value in headers if name == PROVIDER_HEADER]
    if not values or values[-1] is None:
        return None
    try:
        provider = values[-1].decode()
    except UnicodeDecodeError:
        return None
    return provider.strip() or None


def _bad(message: Message, provider: str | None, reason: str) -> BadMessage:
    value_text, value = _masked(message.value)
    record = {"raw": value_text[:MAX_RAW_CHARS]}
    key_text, key = _masked(message.key)
    if key is not None:
        record["key"] = key_text[:MAX_RAW_CHARS]
    return BadMessage(
        provider=provider or UNKNOWN_PROVIDER,
        reason=reason,
        source={"topic": message.topic, "partition": message.partition, "offset": message.offset},
        record=record,
        key=key,
        value=value,
        headers=tuple(message.headers),
    )


def _masked(data: bytes | None) -> tuple[str, bytes | None]:
    """The text of `data` with card numbers masked, and the bytes to pass on: the
    same bytes when there was nothing to mask."""
    if data is None:
        return "", None
    text = data.decode(errors="replace")
    masked = mask_pans(text)
    return masked, data if masked == text else masked.encode()
