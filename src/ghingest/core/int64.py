"""Integers from untrusted input, within SQLite's INTEGER (signed 64-bit): the one parser and the one type.

`str.isdigit` is true for '²' and '١٢' (which `int()` then refuses or reads as 12), and `int()` of a string of more
than 4,300 digits raises; a Python int past 64 bits makes SQLite raise `OverflowError` when bound. Every id, cursor
and sequence number that comes from outside goes through `parse_int64` (text) or `Int64` (FastAPI/pydantic fields)
or `is_int64` (decoded JSON), so none of these ever reaches `int()` or SQLite.
"""

from __future__ import annotations

from typing import Annotated

from annotated_types import Interval

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
_MAX_DIGITS = len(str(INT64_MAX))  # 19

Int64 = Annotated[int, Interval(ge=INT64_MIN, le=INT64_MAX)]
"""An integer parameter or field that SQLite can store; FastAPI answers 400 `invalid_request` to any other."""


def is_int64(value: object) -> bool:
    """An int (not a bool) that SQLite can store."""
    return isinstance(value, int) and not isinstance(value, bool) and INT64_MIN <= value <= INT64_MAX


def parse_int64(text: str, *, minimum: int = INT64_MIN) -> int:
    """`text` as an integer: an optional '-' and ASCII digits only, within [`minimum`, INT64_MAX].

    Raise ValueError for anything else (unicode digits, '+', spaces, '_', an empty string, too many digits)
    without ever handing a long string to `int()`."""
    digits = text[1:] if text.startswith("-") else text
    if not digits or not digits.isascii() or not digits.isdigit():
        raise ValueError("not an integer of ASCII digits")
    significant = digits.lstrip("0") or "0"
    if len(significant) > _MAX_DIGITS:
        raise ValueError("integer out of range")
    value = -int(significant) if text.startswith("-") else int(significant)
    if not minimum <= value <= INT64_MAX:
        raise ValueError("integer out of range")
    return value
