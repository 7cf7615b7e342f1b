"""The one clock of ghingest (UNIX epoch seconds), its ISO-8601 rendering, and the one parser of times from outside.

Every time that comes from a request or a payload goes through `parse_time` (or `time_of`): it answers an aware UTC
`datetime` inside the calendar (years 1-9999 *in UTC*) or raises ValueError. `9999-12-31T23:59:59-23:59` is valid
ISO-8601 but is 10000-01-01 in UTC; `datetime.astimezone` raises OverflowError for it, which this turns into the
ValueError every caller already handles.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime


def now() -> float:
    return time.time()


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_utc(moment: datetime) -> str:
    """An aware datetime as ISO-8601 in UTC with a trailing Z (microseconds only when there are some)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_time(value: str) -> datetime:
    """Parse an ISO-8601 time (a trailing Z, or no zone, means UTC) into an aware UTC datetime; raise ValueError
    for anything else, including a time whose UTC form falls outside the calendar."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed.astimezone(UTC) if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    except OverflowError:
        raise ValueError(f"{value[:40]!r} is outside the calendar in UTC") from None


def parse_iso(value: str) -> float:
    """Parse an ISO-8601 time as `parse_time` does, into epoch seconds."""
    return parse_time(value).timestamp()


def time_of(value: str | float) -> datetime:
    """An ISO-8601 text or epoch seconds as an aware UTC datetime; ValueError when it is neither, or out of range."""
    if isinstance(value, str):
        return parse_time(value)
    if not math.isfinite(value):
        raise ValueError("not a finite time")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError):
        raise ValueError(f"{value!r} is outside the calendar") from None
