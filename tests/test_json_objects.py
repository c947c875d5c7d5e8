"""`load_marking_repeats` reads exactly what the standard library's pair-by-pair
reading gives, repeated keys marked at every depth, whichever parser answers."""

import json
import random
from typing import Any

import pytest

from schemas.json_objects import _object, load_marking_repeats

TRICKY_STRINGS = ["a", "", ":", '":', '" :', "{", "[", "}", "a\\", 'x": 1, "y', "é", "\u2028"]


def reference(text: str) -> Any:
    return json.loads(text, object_pairs_hook=_object)


def same(got: Any, want: Any) -> bool:
    """Equal values, and a `RepeatedKey` (with its key) exactly where `want` has one."""
    if isinstance(want, dict):
        return (
            type(got) is type(want)
            and getattr(got, "key", None) == getattr(want, "key", None)
            and got.keys() == want.keys()
            and all(same(got[k], want[k]) for k in want)
        )
    if isinstance(want, list):
        return type(got) is list and len(got) == len(want) and all(map(same, got, want))
    return type(got) is type(want) and got == want


def random_json(rng: random.Random, depth: int = 0) -> str:
    """JSON text in which keys may repeat, with whitespace anywhere it may be and
    strings that hold quotes, colons and brackets."""

    def ws() -> str:
        return rng.choice(["", "", "", " ", "\n  ", "\t"])

    def string() -> str:
        return json.dumps(rng.choice(TRICKY_STRINGS) + rng.choice(["", "k", "amount_fen"]))

    kind = rng.random()
    if depth > 2 or kind < 0.3:
        return rng.choice([string(), "1", "-2.5", "true", "null", "12345678901234567890123"])
    if kind < 0.55:
        items = [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
        return "[" + ",".join(ws() + item + ws() for item in items) + "]"
    keys = [string() for _ in range(rng.randint(0, 4))]
    if keys and rng.random() < 0.3:
        keys.append(rng.choice(keys))
    pairs = [f"{ws()}{key}{ws()}:{ws()}{random_json(rng, depth + 1)}{ws()}" for key in keys]
    return "{" + ",".join(pairs) + "}"


def test_random_documents_read_as_the_standard_library_reads_them() -> None:
    rng = random.Random(20231109)
    repeated = 0
    for _ in range(3000):
        text = random_json(rng)
        want = reference(text)
        repeated += "RepeatedKey" in repr(_types(want))
        for data in (text, text.encode()):
            assert same(load_marking_repeats(data), want), text
    # Both kinds of document were tried, many times.
    assert 300 < repeated < 2700


@pytest.mark.parametrize(
    "text",
    [
        '[{"a": 1, "b": 2}, {"a": 1, "a": 2}]',
        '[{"a": 1, "b": 2}, {"a" : 1, "a" : 2}]',
        '[{"a": {"b": 1, "b": 2}}]',
        '[{"a": "\\":", "a": 1}]',
        '{"records": [{"t": 1, "t": 1}]}',
        '[{"a": 1, "b": "{["}, {"a": 1, "a": 1}]',
    ],
)
def test_a_repeated_key_is_marked_wherever_it_is(text: str) -> None:
    got = load_marking_repeats(text.encode())
    assert same(got, reference(text))
    assert "RepeatedKey" in repr(_types(got))


def _types(value: Any) -> Any:
    if isinstance(value, dict):
        return [type(value).__name__, *(_types(v) for v in value.values())]
    if isinstance(value, list):
        return [_types(v) for v in value]
    return None


def test_text_neither_parser_reads_is_a_value_error() -> None:
    for text in (b"[1,", b"\xff", b'{"a": NaN', b"[" * 100_000):
        with pytest.raises(ValueError):
            load_marking_repeats(text)
