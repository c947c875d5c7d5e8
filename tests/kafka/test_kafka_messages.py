"""Decoding a poll's messages: records grouped by provider with their coordinates,
and every kind of bad message set aside, masked and bounded (no broker needed)."""

from typing import Any

import orjson
from aiokafka.structs import ConsumerRecord

from ingest.kafka_messages import MAX_RAW_CHARS, Message, decode_poll

PAN = "6222021234567890128"


def msg(
    offset: int,
    value: Any,
    *,
    provider: bytes | None = b"cmb",
    partition: int = 0,
    key: bytes | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> Message:
    raw = value if isinstance(value, bytes) or value is None else orjson.dumps(value)
    given = headers if headers is not None else []
    if provider is not None:
        given = [*given, ("provider", provider)]
    return ConsumerRecord(
        "feed", partition, offset, 0, 0, key, raw, None, 0, len(raw or b""), given
    )


def test_records_are_grouped_by_provider_with_their_coordinates() -> None:
    poll = decode_poll(
        [
            msg(5, {"txn_id": "a"}),
            msg(7, [{"txn_id": "b"}, {"txn_id": "c"}], partition=2),
            msg(3, {"txn_id": "d"}, provider=b"icbc", partition=1),
            msg(6, {"txn_id": "e"}),
        ]
    )
    assert poll.bad == []
    cmb = poll.batches["cmb"]
    assert cmb.raw.frame["txn_id"].to_list() == ["a", "b", "c", "e"]
    assert cmb.raw.frame["index"].to_list() == [0, 1, 2, 3]
    assert [cmb.origin(i) for i in range(4)] == [(0, 5), (2, 7), (2, 7), (0, 6)]
    assert cmb.source == {"topic": "feed", "offsets": {"0": [5, 6], "2": [7, 7]}}
    assert poll.batches["icbc"].raw.frame["txn_id"].to_list() == ["d"]


def test_an_array_element_that_is_no_object_is_a_malformed_record() -> None:
    poll = decode_poll([msg(0, [{"txn_id": "a"}, 7, {"txn_id": "b"}])])
    raw = poll.batches["cmb"].raw
    assert raw.frame["index"].to_list() == [0, 2]
    assert [(e.index, e.code) for e in raw.malformed] == [(1, "malformed")]
    assert raw.received == 3


def test_a_record_that_repeats_a_key_is_malformed() -> None:
    twice = b'{"txn_id": "a", "amount_fen": 100, "amount_fen": 99999}'
    poll = decode_poll(
        [msg(0, twice), msg(1, b'[{"txn_id": "b"}, {"txn_id": "c", "txn_id": "d"}]')]
    )
    raw = poll.batches["cmb"].raw
    assert raw.frame["txn_id"].to_list() == ["b"]
    assert [(e.index, e.code, e.message) for e in raw.malformed] == [
        (0, "malformed", "key 'amount_fen' appears twice in the record"),
        (2, "malformed", "key 'txn_id' appears twice in the record"),
    ]


def test_bad_messages_are_set_aside_with_their_reason_and_coordinates() -> None:
    poll = decode_poll(
        [
            msg(0, b"{not json"),
            msg(1, {"txn_id": "a"}, provider=None),
            msg(2, 42),
            msg(3, None, key=b"tombstone"),
            msg(4, {"txn_id": "b"}, provider=b"\xff"),
            msg(5, {"txn_id": "c"}, provider=b"  "),
            msg(6, []),
        ]
    )
    assert [(b.source["offset"], b.provider, b.reason.split(":")[0]) for b in poll.bad] == [
        (0, "cmb", "the value is not valid JSON"),
        (1, "unknown", "the provider header is missing, empty or not UTF-8"),
        (2, "cmb", "the value must be a record object or an array of records"),
        (3, "cmb", "the message has no value"),
        (4, "unknown", "the provider header is missing, empty or not UTF-8"),
        (5, "unknown", "the provider header is missing, empty or not UTF-8"),
    ]
    assert poll.bad[0].source == {"topic": "feed", "partition": 0, "offset": 0}
    assert poll.batches == {}


def test_the_last_provider_header_counts() -> None:
    poll = decode_poll([msg(0, {"txn_id": "a"}, headers=[("provider", b"other")])])
    assert list(poll.batches) == ["cmb"]


def test_card_numbers_are_masked_and_raw_text_is_bounded() -> None:
    value = f"card {PAN} then {'x' * (2 * MAX_RAW_CHARS)}".encode()
    (bad,) = decode_poll([msg(0, value, key=PAN.encode())]).bad
    assert len(bad.record["raw"]) == MAX_RAW_CHARS
    assert bad.record["raw"].startswith("card 622202*********0128 then x")
    assert bad.record["key"] == "622202*********0128"
    assert bad.value is not None and PAN.encode() not in bad.value
    assert bad.key == b"622202*********0128"


def test_a_dead_letter_keeps_the_original_bytes_and_headers_plus_the_error() -> None:
    value = b"\xff\xfe not utf-8 nor json"
    (bad,) = decode_poll([msg(9, value, key=b"k1", headers=[("trace", b"t")])]).bad
    assert bad.value == value and bad.key == b"k1"
    assert bad.dead_letter_headers() == [
        ("trace", b"t"),
        ("provider", b"cmb"),
        ("error", f"malformed: {bad.reason}".encode()),
    ]
