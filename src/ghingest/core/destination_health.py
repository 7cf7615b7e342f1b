"""A destination's health from its recent attempts: healthy, degraded, failing, or no recent attempts.

This module performs no I/O: the forward log hands over per-window figures (attempts, successes, dead letters,
latency percentiles) and the most recent attempts; `judge` returns the state and the reason, as people read it.

The rule (ADR 0024), judged on the last hour, or on the last 24 hours when the last hour had no attempt:

| state | when |
|---|---|
| `idle` | no attempt in the last 24 hours ("no recent attempts") |
| `failing` | the `RECENT` most recent attempts of the window all failed, or its success rate is below `FAILING_BELOW` |
| `degraded` | its success rate is below `DEGRADED_BELOW`, or a forward was dead-lettered in it |
| `healthy` | otherwise |

A failed attempt is any attempt that did not deliver (a retry or a dead letter). The last error is `recovered` once
an attempt after it delivered (`recovered_at`: the first such).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

HOUR = 3600.0
DAY = 86400.0
WINDOWS: tuple[float, ...] = (HOUR, DAY)  # the windows shown, shortest first; the rule reads both
RECENT = 3  # the most recent attempts that, all failed, make a destination failing
FAILING_BELOW = 0.5  # success rate
DEGRADED_BELOW = 0.95


class HealthState(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    FAILING = "failing"
    IDLE = "idle"  # no recent attempts


@dataclass(frozen=True, slots=True)
class WindowFigures:
    """One destination's attempts that started in the last `seconds`."""

    seconds: float
    attempts: int = 0
    delivered: int = 0
    dead: int = 0  # attempts that dead-lettered their forward
    p50: float | None = None  # latency, seconds (nearest rank)
    p95: float | None = None

    @property
    def failed(self) -> int:
        return self.attempts - self.delivered

    @property
    def success_rate(self) -> float | None:
        return None if self.attempts == 0 else self.delivered / self.attempts


@dataclass(frozen=True, slots=True)
class RecentAttempt:
    started_at: float
    delivered: bool


@dataclass(frozen=True, slots=True)
class Health:
    state: HealthState
    reason: str
    window: float | None  # the window judged (None: idle)


def nearest_rank(count: int, fraction: float) -> int:
    """The 0-based position of the `fraction` percentile among `count` sorted values (nearest rank: the smallest
    value with at least `fraction` of the values at or below it; PostgreSQL's `percentile_disc`)."""
    if count <= 0:
        raise ValueError("no values")
    return max(0, math.ceil(round(fraction * count, 9)) - 1)


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    return sorted_values[nearest_rank(len(sorted_values), fraction)] if sorted_values else None


def figures(seconds: float, attempts: Sequence[tuple[float, str]]) -> WindowFigures:
    """A window's figures from its attempts' (latency, outcome) pairs: what a backend without aggregates computes."""
    latencies = sorted(latency for latency, _ in attempts)
    return WindowFigures(
        seconds=seconds,
        attempts=len(attempts),
        delivered=sum(1 for _, outcome in attempts if outcome == "delivered"),
        dead=sum(1 for _, outcome in attempts if outcome == "dead"),
        p50=percentile(latencies, 0.5),
        p95=percentile(latencies, 0.95),
    )


def judge(windows: Sequence[WindowFigures], recent: Sequence[RecentAttempt]) -> Health:
    """The state of a destination from its windows (any order) and its most recent attempts (newest first)."""
    by_size = sorted(windows, key=lambda w: w.seconds)
    window = next((w for w in by_size if w.attempts), None)
    if window is None:
        longest = by_size[-1].seconds if by_size else DAY
        return Health(HealthState.IDLE, f"no attempt in the last {span(longest)}", None)
    rate = window.delivered / window.attempts
    where = f"in the last {span(window.seconds)}"
    # With fewer than `RECENT` attempts in the window, all of them failed is a rate of 0: failing by the rate.
    if window.attempts >= RECENT and len(recent) >= RECENT and not any(a.delivered for a in recent[:RECENT]):
        return Health(HealthState.FAILING, f"the {RECENT} most recent attempts failed", window.seconds)
    if rate < FAILING_BELOW:
        return Health(HealthState.FAILING, f"success rate {rate:.1%} {where}", window.seconds)
    if rate < DEGRADED_BELOW:
        return Health(HealthState.DEGRADED, f"success rate {rate:.1%} {where}", window.seconds)
    if window.dead:
        letters = "dead letter" if window.dead == 1 else "dead letters"
        return Health(HealthState.DEGRADED, f"{window.dead} {letters} {where}", window.seconds)
    return Health(HealthState.HEALTHY, f"success rate {rate:.1%} {where}", window.seconds)


def recovered(last_error_at: float | None, recovered_at: float | None) -> bool:
    """Whether an attempt delivered after the last error (`recovered_at`: the first success after it)."""
    return last_error_at is not None and recovered_at is not None and recovered_at >= last_error_at


def span(seconds: float) -> str:
    """`3600` → "hour", `86400` → "24 hours", `600` → "10 minutes"."""
    if seconds == HOUR:
        return "hour"
    if seconds % HOUR == 0:
        return f"{seconds / HOUR:g} hours"
    return f"{seconds / 60:g} minutes"
