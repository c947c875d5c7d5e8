"""JSON objects with a key given twice are refused, not read as their last value.

Which of two values a sender meant cannot be told (parsers differ: some keep the
first, most the last), so payfeed takes neither: a record with a repeated key is
`malformed`, any other body with one is a 400. The standard library's parser is
used for this (orjson cannot report repeated keys); it sees each object's pairs.
"""

import json
from typing import Any


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
    try:
        return json.loads(data, object_pairs_hook=_object)
    except RecursionError:
        raise ValueError("JSON nested too deep") from None
