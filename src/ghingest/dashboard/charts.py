"""Releases per week as an inline SVG bar chart, drawn here: no chart service, no script.

The store answers one bounded, indexed query (releases per day over the last `WEEKS` weeks up to the newest
release); this module buckets the days into ISO weeks (Monday first) and lays the bars out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

WEEKS = 26


@dataclass(frozen=True, slots=True)
class Bar:
    week: date
    count: int
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True, slots=True)
class Chart:
    bars: tuple[Bar, ...]
    maximum: int
    total: int
    width: int
    height: int
    first: date
    last: date


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def window_start(newest: str | None, weeks: int = WEEKS) -> date | None:
    """The Monday `weeks - 1` weeks before the newest release's week (the calendar's first day, a Monday, at the
    earliest), or None without a dated release."""
    try:
        last = date.fromisoformat(newest[:10]) if newest else None
    except ValueError:
        return None
    if last is None:
        return None
    start = week_start(last)
    span = timedelta(weeks=weeks - 1)
    return start - span if start - date.min >= span else date.min


def weekly(
    per_day: Mapping[str, int], first_week: date, weeks: int = WEEKS, *, width: int = 640, height: int = 120
) -> Chart:
    counts = [0] * weeks
    for day_text, n in per_day.items():
        try:
            day = date.fromisoformat(day_text)
        except ValueError:
            continue
        index = (week_start(day) - first_week).days // 7
        if 0 <= index < weeks:
            counts[index] += n
    maximum = max(counts) if counts else 0
    slot = width / weeks
    bars = []
    for i, n in enumerate(counts):
        h = 0.0 if maximum == 0 else max(2.0 if n else 0.0, (height - 4) * n / maximum)
        bars.append(Bar(first_week + timedelta(weeks=i), n, i * slot + 1, height - h, slot - 2, h))
    return Chart(
        bars=tuple(bars),
        maximum=maximum,
        total=sum(counts),
        width=width,
        height=height,
        first=first_week,
        last=first_week + timedelta(weeks=weeks - 1),
    )
