"""Keyset pagination: opaque cursors that encode the sort key of the last row of a page."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import orjson

from ghingest.core.errors import GhingestError
from ghingest.core.int64 import is_int64

T = TypeVar("T")
MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 50


class InvalidCursor(GhingestError):
    """A cursor that this service did not produce."""


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: Sequence[T]
    next_cursor: str | None


def encode_cursor(key: Sequence[str | int | float | None]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).decode("ascii").rstrip("=")


def decode_cursor(cursor: str, *, types: Sequence[type]) -> tuple[str | int | float | None, ...]:
    """Decode a cursor whose items have the given types (None allowed for any item); an int item must be one that
    SQLite can store (a cursor comes from outside: `[9223372036854775808]` is no cursor this service made)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        items = orjson.loads(raw)
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise InvalidCursor("cursor is not valid") from exc
    if not isinstance(items, list) or len(items) != len(types):
        raise InvalidCursor("cursor is not valid")
    for item, expected in zip(items, types, strict=True):
        if item is None:
            continue
        if isinstance(item, bool) or not isinstance(item, expected) or (expected is int and not is_int64(item)):
            raise InvalidCursor("cursor is not valid")
    return tuple(items)


def page_of(items: Sequence[T], size: int, cursor_of: Callable[[T], str]) -> Page[T]:
    """A page of `size` from up to `size + 1` items read: the extra one says there is a next page, whose cursor is
    that of the page's last item."""
    if len(items) > size:
        return Page(items=items[:size], next_cursor=cursor_of(items[size - 1]))
    return Page(items=items, next_cursor=None)


def page_size(limit: int) -> int:
    """A requested page size, within 1..`MAX_PAGE_SIZE` (every backend pages the same)."""
    return max(1, min(limit, MAX_PAGE_SIZE))
