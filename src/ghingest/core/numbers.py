"""Integers from untrusted text and JSON, parsed defensively: ASCII digits only, range-checked to 64 bits.

`str.isdigit()` is true for `²` and `٣`, `int()` accepts them and underscores, refuses more than 4,300 digits,
and nothing stops a value beyond what a database column holds (SQLite and PostgreSQL integers are 64-bit).
Every integer that ghingest takes from a header, a payload, a query parameter or a cursor goes through here.
"""

from __future__ import annotations

from typing import Any

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
_MAX_DIGITS = 19  # len(str(INT64_MAX))
_ASCII_DIGITS = frozenset(b"0123456789")


def int64(value: Any) -> int | None:
    """`value` when it is an integer (not a bool) that fits in 64 bits, else None."""
    if isinstance(value, int) and not isinstance(value, bool) and INT64_MIN <= value <= INT64_MAX:
        return value
    return None


def ascii_uint64(text: str | None) -> int | None:
    """The non-negative 64-bit integer written in `text` with ASCII digits only (no sign, no blanks, no `_`),
    else None."""
    if not text or len(text) > _MAX_DIGITS or not text.isascii() or not _ASCII_DIGITS.issuperset(text.encode()):
        return None
    value = int(text)
    return value if value <= INT64_MAX else None
