"""The destination health rule (`core.destination_health`): states, reasons, nearest-rank percentiles."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ghingest.core.destination_health import (
    DAY,
    HOUR,
    HealthState,
    RecentAttempt,
    WindowFigures,
    figures,
    judge,
    nearest_rank,
    percentile,
    recovered,
)

NOW = 1_700_000_000.0


def window(seconds: float, attempts: int, delivered: int, dead: int = 0) -> WindowFigures:
    return WindowFigures(seconds, attempts, delivered, dead)


def latest(*delivered: bool, age: float = 60.0) -> list[RecentAttempt]:
    """Most recent first, `age` seconds apart."""
    return [RecentAttempt(NOW - age * (n + 1), ok) for n, ok in enumerate(delivered)]


def test_no_attempt_in_the_last_24_hours_is_idle() -> None:
    health = judge([window(HOUR, 0, 0), window(DAY, 0, 0)], latest(False, age=DAY))
    assert (health.state, health.reason, health.window) == (HealthState.IDLE, "no attempt in the last 24 hours", None)


def test_the_hour_is_judged_and_the_day_only_when_the_hour_had_no_attempt() -> None:
    day_failing = window(DAY, 100, 10)
    assert judge([window(HOUR, 20, 20), day_failing], latest(True, True, True)).state is HealthState.HEALTHY
    quiet = judge([window(HOUR, 0, 0), window(DAY, 10, 10)], latest(True, age=2 * HOUR))
    assert (quiet.state, quiet.reason, quiet.window) == (
        HealthState.HEALTHY,
        "success rate 100.0% in the last 24 hours",
        DAY,
    )


def test_the_most_recent_attempts_all_failed_is_failing_whatever_the_rate() -> None:
    health = judge([window(HOUR, 100, 97)], latest(False, False, False, True))
    assert (health.state, health.reason) == (HealthState.FAILING, "the 3 most recent attempts failed")
    one = judge([window(HOUR, 1, 0)], latest(False))
    assert (one.state, one.reason) == (HealthState.FAILING, "success rate 0.0% in the last hour")
    # Two failures and a success before them: not "all failed"; 97 % is healthy.
    assert judge([window(HOUR, 100, 98)], latest(False, False, True)).state is HealthState.HEALTHY


@pytest.mark.parametrize(
    ("attempts", "delivered", "dead", "state", "reason"),
    [
        (10, 4, 0, HealthState.FAILING, "success rate 40.0% in the last hour"),
        (10, 5, 0, HealthState.DEGRADED, "success rate 50.0% in the last hour"),
        (100, 94, 0, HealthState.DEGRADED, "success rate 94.0% in the last hour"),
        (100, 95, 0, HealthState.HEALTHY, "success rate 95.0% in the last hour"),
        (100, 99, 1, HealthState.DEGRADED, "1 dead letter in the last hour"),
        (100, 98, 2, HealthState.DEGRADED, "2 dead letters in the last hour"),
    ],
)
def test_thresholds(attempts: int, delivered: int, dead: int, state: HealthState, reason: str) -> None:
    health = judge([window(HOUR, attempts, delivered, dead)], latest(True))
    assert (health.state, health.reason, health.window) == (state, reason, HOUR)


@given(
    attempts=st.integers(1, 500),
    data=st.data(),
    recent=st.lists(st.booleans(), max_size=5),
)
def test_the_state_follows_the_rate_and_the_recent_attempts(
    attempts: int, data: st.DataObject, recent: list[bool]
) -> None:
    delivered = data.draw(st.integers(0, attempts))
    recent = recent[:attempts]
    health = judge([window(HOUR, attempts, delivered), window(DAY, attempts, delivered)], latest(*recent))
    rate = delivered / attempts
    all_failed = attempts >= 3 and len(recent) >= 3 and not any(recent[:3])
    if all_failed or rate < 0.5:
        assert health.state is HealthState.FAILING
    elif rate < 0.95:
        assert health.state is HealthState.DEGRADED
    else:
        assert health.state is HealthState.HEALTHY


def test_nearest_rank_percentiles() -> None:
    assert [nearest_rank(n, 0.5) for n in (1, 2, 3, 4, 10)] == [0, 0, 1, 1, 4]
    assert [nearest_rank(n, 0.95) for n in (1, 19, 20, 21, 100)] == [0, 18, 18, 19, 94]
    assert percentile([], 0.5) is None
    with pytest.raises(ValueError, match="no values"):
        nearest_rank(0, 0.5)


@given(st.lists(st.floats(0, 100, allow_nan=False), min_size=1, max_size=200), st.sampled_from([0.5, 0.95]))
def test_a_percentile_has_at_least_its_fraction_of_the_values_at_or_below_it(values: list[float], p: float) -> None:
    value = percentile(sorted(values), p)
    assert value is not None
    at_or_below = sum(1 for v in values if v <= value)
    below = sum(1 for v in values if v < value)
    assert at_or_below >= math.ceil(p * len(values) - 1e-9)
    assert below < math.ceil(p * len(values) - 1e-9)  # the smallest such value


def test_figures_from_attempts() -> None:
    f = figures(HOUR, [(0.3, "delivered"), (0.1, "retry"), (0.2, "dead"), (0.4, "delivered")])
    assert (f.attempts, f.delivered, f.failed, f.dead, f.p50, f.p95, f.success_rate) == (4, 2, 2, 1, 0.2, 0.4, 0.5)
    assert figures(DAY, []).success_rate is None


def test_an_error_is_recovered_by_a_later_success() -> None:
    assert recovered(NOW, NOW + 1)
    assert not recovered(NOW, None)
    assert not recovered(None, NOW)
