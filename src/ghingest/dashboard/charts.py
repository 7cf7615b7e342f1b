"""Inline SVG bar charts, drawn here: no chart service, no script.

Releases per week: the store answers one bounded, indexed query (releases per day over the last `WEEKS` weeks up
to the newest release); this module buckets the days into ISO weeks (Monday first) and lays the bars out.
Deliveries per hour by outcome (the overview): the store's hourly counts (`Reads.deliveries_per_hour`), stacked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from ghingest.ports import HourCounts

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


# --- deliveries per hour by outcome (the overview) --------------------------------------------------------------

HOUR = 3600
OUTCOMES = ("processed", "failed", "waiting")  # stacked bottom to top


@dataclass(frozen=True, slots=True)
class Segment:
    outcome: str
    count: int
    y: float
    height: float


@dataclass(frozen=True, slots=True)
class HourBar:
    hour: float  # its start, epoch seconds
    received: int
    segments: tuple[Segment, ...]  # the outcomes with a count, stacked
    x: float
    width: float


@dataclass(frozen=True, slots=True)
class HourlyChart:
    bars: tuple[HourBar, ...]
    maximum: int
    totals: dict[str, int]  # per outcome, and "received"
    width: int
    height: int
    first: float
    last: float


def hour_start(epoch: float) -> float:
    return epoch - epoch % HOUR


def hourly(
    counts: Sequence[HourCounts], first_hour: float, hours: int = 24, *, width: int = 640, height: int = 120
) -> HourlyChart:
    """`hours` stacked bars from `first_hour` (an hour's start): per hour, the deliveries received then, by what
    processing made of them so far."""
    by_hour = {int((c.hour - first_hour) // HOUR): c for c in counts}
    maximum = max((c.received for i, c in by_hour.items() if 0 <= i < hours), default=0)
    slot = width / hours
    bars = []
    totals = dict.fromkeys(("received", *OUTCOMES), 0)
    for i in range(hours):
        c = by_hour.get(i)
        values = {"processed": c.processed, "failed": c.failed, "waiting": c.waiting} if c else {}
        top = float(height)
        segments = []
        for outcome in OUTCOMES:
            n = values.get(outcome, 0)
            totals[outcome] += n
            if n:
                h = max(2.0, (height - 4) * n / maximum)
                top -= h
                segments.append(Segment(outcome, n, top, h))
        totals["received"] += c.received if c else 0
        bars.append(HourBar(first_hour + i * HOUR, c.received if c else 0, tuple(segments), i * slot + 1, slot - 2))
    return HourlyChart(
        bars=tuple(bars),
        maximum=maximum,
        totals=totals,
        width=width,
        height=height,
        first=first_hour,
        last=first_hour + (hours - 1) * HOUR,
    )
