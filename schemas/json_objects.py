"""JSON objects with a key given twice are refused, not read as their last value.

Which of two values a sender meant cannot be told (parsers differ: some keep the
first, most the last), so payfeed takes neither: a record with a repeated key is
`malformed`, any other body with one is a 400.

orjson reads first, as it reads at twice the standard library's speed (a
batch's JSON is a large part of its cost), but keeps a repeated key's last
value without a word. So the keys are counted twice: in what orjson returned,
and in the text, where every key ends at a closing quote followed by a colon
(whitespace aside). The text's count is never lower than the true number of
keys (a string holding a quote and a colon can only add to it), and orjson's is
lower than the true number exactly when a key repeats: when both agree, no key
repeated. orjson also reads an integer beyond 64 bits as a float, so text with
a run of 20 digits or more (in a string or not) is not left to it. Otherwise,
and for anything orjson refuses, the standard library reads the text again,
seeing each object's pairs, and decides.
"""

import json
from typing import Any

import orjson

JSON_WHITESPACE = b" \t\n\r"
DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"0" * 9)
LONG_INTEGER = b"0" * 20
"""A run of digits that may be an integer orjson would read as a float."""


class RepeatedKey(dict[str, Any]):
    """An object in which `key` was given more than once."""

    key: str = ""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    seen: set[str] = set()
    repeated = RepeatedKey(obj)
    repeated.key = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
    return repeated


def load_marking_repeats(data: bytes | str) -> Any:
    """JSON `data` with every object that repeats a key as a `RepeatedKey`.
    Raises `ValueError` for text that is not JSON (nested too deep included)."""
    text = data.encode(errors="surrogatepass") if isinstance(data, str) else data
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    else:
        plain = text.translate(DIGITS_AS_ZERO, JSON_WHITESPACE)
        if LONG_INTEGER not in plain and _keys_read(value, text) == plain.count(b'":'):
            return value
    try:
        return json.loads(data, object_pairs_hook=_object)
    except RecursionError:
        raise ValueError("JSON nested too deep") from None


def _keys_read(value: Any, text: bytes) -> int:
    """The keys of every object in `value`, as read from `text`. The usual
    bodies, a flat record or an array of them, are counted without looking at
    each value: when the text opens no more objects and arrays than the array
    and its records, no record holds one."""
    opened = text.count(b"{") + text.count(b"[")
    if type(value) is dict and opened == 1:
        return len(value)
    if type(value) is list:
        records = [item for item in value if type(item) is dict]
        if opened == 1 + len(records):
            return sum(map(len, records))
    return _keys(value)


def _keys(value: Any) -> int:
    if type(value) is dict:
        return len(value) + sum(_keys(v) for v in value.values() if type(v) in (dict, list))
    if type(value) is list:
        return sum(_keys(v) for v in value if type(v) in (dict, list))
    return 0
