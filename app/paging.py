"""Keyset paging of listings: a page holds the rows after the key of the last
row of the page before, so a row added or removed between two pages neither
repeats nor skips another. The cursor is that key, opaque to clients; a key no
listing could have given (text with a control character, a number beyond a
bigint) is refused here: PostgreSQL's own refusal of it would be a 500.
"""

import base64
from collections.abc import Sequence
from typing import Any

import orjson

from schemas.text import MAX_BIGINT, control_character_in
from store.errors import BadRequest

DEFAULT_PAGE = 1000
MAX_PAGE = 10_000


def encode_cursor(key: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).decode()


def decode_cursor(cursor: str | None, like: Sequence[type]) -> list[Any] | None:
    """The key a page starts after, its parts of the types `like`; 400 for
    anything that is not a cursor of this listing."""
    if cursor is None:
        return None
    try:
        key = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise BadRequest("bad_cursor", "cursor is not one this listing gave") from exc
    if not (
        isinstance(key, list)
        and len(key) == len(like)
        and all(_is_key_part(part, kind) for part, kind in zip(key, like, strict=True))
    ):
        raise BadRequest("bad_cursor", "cursor is not one this listing gave")
    return key


def _is_key_part(part: Any, kind: type) -> bool:
    if type(part) is not kind:
        return False
    if isinstance(part, str):
        return control_character_in(part) is None
    if isinstance(part, int):
        return -MAX_BIGINT - 1 <= part <= MAX_BIGINT
    return True
