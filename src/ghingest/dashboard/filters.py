"""The dashboard's time filters, read from a form's text: a bad value is ignored with a notice (appended to
`errors`, shown on the page) rather than refused, so that the rest of the filters still apply."""

from __future__ import annotations

from datetime import date

from ghingest.core.time import parse_iso


def day_filter(value: str, errors: list[str], label: str) -> date | None:
    """A `YYYY-MM-DD` filter; None when empty or not a date."""
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        errors.append(f"{label} must be a date such as 2024-05-01; it was ignored.")
        return None


def moment_filter(value: str, errors: list[str], label: str) -> float | None:
    """A since/until filter (ISO-8601 date-time; no zone: UTC) as epoch seconds; None when empty or not a time."""
    if not value:
        return None
    try:
        return parse_iso(value)
    except ValueError:
        errors.append(f"{label} must be a date and time such as 2024-05-01T09:30 (UTC); it was ignored.")
        return None
