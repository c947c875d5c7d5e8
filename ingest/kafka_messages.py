"""Kafka messages of one poll to per-provider batches for the writer, and the
messages that cannot be read as records at all.

Pure (no I/O), so that every way a message can be bad is unit-tested without a
broker. A message's value is one standard record (a JSON object) or a JSON array
of them; the `provider` header says whose records they are (never the body, as
for HTTP). The key is the `txn_id` by convention, which only decides the
partition (all versions of one record stay in order); it is not checked.
"""

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from aiokafka.structs import ConsumerRecord

from ingest.adapters.base import RawBatch
from ingest.adapters.standard import from_objects
from ingest.masking import mask_pans
from schemas.json_objects import load_marking_repeats

PROVIDER_HEADER = "provider"
ERROR_HEADER = "error"
SOURCE_HEADER = "source"
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
    source: dict[str, Any]
    """`{"topic", "offsets": {partition: [first, last]}}`: kept with the records
    the writer quarantines (one source per write; the consumer logs each held
    record's own message, from `origin()`)."""
    starts: list[int]
    """The index of each message's first record, ascending."""
    messages: list[tuple[int, int]]
    """`(partition, offset)` of each message, in the same order."""

    def origin(self, index: int) -> tuple[int, int]:
        """`(partition, offset)` of the message that record `index` came from."""
        return self.messages[bisect_right(self.starts, index) - 1]


@dataclass
class _Gathered:
    """A provider's records as the messages of a poll are read."""

    topic: str
    items: list[Any] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    messages: list[tuple[int, int]] = field(default_factory=list)
    offsets: dict[int, list[int]] = field(default_factory=dict)

    def add(self, message: Message, records: list[Any]) -> None:
        partition, offset = message.partition, message.offset
        self.starts.append(len(self.items))
        self.messages.append((partition, offset))
        self.items.extend(records)
        span = self.offsets.get(partition)
        if span is None:
            self.offsets[partition] = [offset, offset]
        elif offset < span[0]:
            span[0] = offset
        elif offset > span[1]:
            span[1] = offset

    def batch(self) -> ProviderBatch:
        offsets = {str(partition): span for partition, span in sorted(self.offsets.items())}
        return ProviderBatch(
            from_objects(self.items),
            {"topic": self.topic, "offsets": offsets},
            self.starts,
            self.messages,
        )


@dataclass
class DecodedPoll:
    batches: dict[str, ProviderBatch] = field(default_factory=dict)
    bad: list[BadMessage] = field(default_factory=list)


def decode_poll(messages: Iterable[Message]) -> DecodedPoll:
    """Group the records of a poll's messages by provider; set aside bad messages.

    A loop over messages: each is its own JSON document, so there is nothing to
    vectorise before `from_objects` builds the columns.
    """
    gathered: dict[str, _Gathered] = {}
    providers: dict[bytes | None, str | None] = {}
    bad: list[BadMessage] = []
    for message in messages:
        header = _last_header(message.headers, PROVIDER_HEADER)
        if header not in providers:
            providers[header] = _provider(header)
        provider = providers[header]
        try:
            if provider is None:
                raise _Unreadable("the provider header is missing, empty or not UTF-8")
            records = _records(message.value)
        except _Unreadable as exc:
            bad.append(_bad(message, provider, exc.reason))
            continue
        if records:
            if provider not in gathered:
                gathered[provider] = _Gathered(message.topic)
            gathered[provider].add(message, records)
    return DecodedPoll({p: g.batch() for p, g in gathered.items()}, bad)


class _Unreadable(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _records(value: bytes | None) -> list[Any]:
    """The records of a message's value; `_Unreadable` if it holds none."""
    if value is None:
        raise _Unreadable("the message has no value")
    try:
        # As every JSON ingest reads: a record that repeats a key is malformed.
        decoded = load_marking_repeats(value)
    except ValueError as exc:
        raise _Unreadable(f"the value is not valid JSON: {exc}") from None
    if isinstance(decoded, dict):
        return [decoded]
    if isinstance(decoded, list):
        return decoded
    raise _Unreadable("the value must be a record object or an array of records")


def _last_header(headers: Sequence[tuple[str, bytes]], name: str) -> bytes | None:
    """The last header `name`, as Kafka's `lastHeader` reads it."""
    for header, value in reversed(headers):
        if header == name:
            return value
    return None


def _provider(header: bytes | None) -> str | None:
    if header is None:
        return None
    try:
        return header.decode().strip() or None
    except UnicodeDecodeError:
        return None


def undecodable_message(topic: str, partition: int, offset: int, reason: str) -> BadMessage:
    """A message whose batch could not be decoded at all (an unknown or corrupt
    compressed batch): set aside by its coordinates alone, as nothing of it can be
    read; its dead letter carries them in a `source` header instead of its value."""
    source = {"topic": topic, "partition": partition, "offset": offset}
    return BadMessage(
        provider=UNKNOWN_PROVIDER,
        reason=reason,
        source=source,
        record={"raw": ""},
        key=None,
        value=b"",
        headers=((SOURCE_HEADER, f"{topic}/{partition}@{offset}".encode()),),
    )


def bad_message(message: Message, reason: str) -> BadMessage:
    """`message` set aside with `reason`, for the provider its header names."""
    return _bad(message, _provider(_last_header(message.headers, PROVIDER_HEADER)), reason)


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
