from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ghingest.core.github_limits import (
    RESET_MARGIN,
    SECONDARY_WAIT,
    Backoff,
    Limit,
    RateLimitSnapshot,
    backoff,
    pause_until,
    retry_after,
)

NOW = 1_700_000_000.0


def decide(status: int, headers: dict[str, str] | None = None, *, message: str | None = None, attempt: int = 1,
           max_retries: int = 3) -> Backoff | None:  # fmt: skip
    return backoff(status, headers or {}, message=message, attempt=attempt, now=NOW, max_retries=max_retries)


@pytest.mark.parametrize("status", [403, 429])
def test_the_primary_limit_waits_for_the_reset_and_a_second(status: int) -> None:
    headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 30)}
    assert decide(status, headers) == Backoff(Limit.PRIMARY, NOW + 30 + RESET_MARGIN, retry=True)
    stale = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) - 5)}
    assert decide(status, stale) == Backoff(Limit.PRIMARY, NOW, retry=True)  # already reset: at once
    with_after = {**headers, "retry-after": "90"}
    assert decide(status, with_after) == Backoff(Limit.PRIMARY, NOW + 90, retry=True)  # the later of the two


@pytest.mark.parametrize("status", [403, 429])
def test_a_secondary_limit_waits_as_retry_after_says(status: int) -> None:
    assert decide(status, {"retry-after": "7"}) == Backoff(Limit.SECONDARY, NOW + 7, retry=True)
    assert decide(status, {"retry-after": "7", "x-ratelimit-remaining": "4000"}) == Backoff(
        Limit.SECONDARY, NOW + 7, retry=True
    )
    when = format_datetime(datetime.fromtimestamp(NOW + 120, UTC), usegmt=True)
    assert decide(status, {"retry-after": when}) == Backoff(Limit.SECONDARY, NOW + 120, retry=True)


@pytest.mark.parametrize(
    "message",
    [
        "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
        "You have triggered an abuse detection mechanism.",
    ],
)
def test_a_secondary_limit_without_retry_after_waits_a_minute_and_doubles(message: str) -> None:
    waits = [decide(403, message=message, attempt=n) for n in (1, 2, 3)]
    assert [w.retry_at - NOW for w in waits if w is not None] == [
        SECONDARY_WAIT,
        2 * SECONDARY_WAIT,
        4 * SECONDARY_WAIT,
    ]
    bare_429 = decide(429)
    assert bare_429 is not None
    assert bare_429.limit is Limit.SECONDARY


def test_a_403_that_is_no_limit_is_not_retried() -> None:
    assert decide(403, message="Resource not accessible by integration") is None
    assert decide(403, {"x-ratelimit-remaining": "4999", "x-ratelimit-reset": str(int(NOW) + 30)}) is None


@pytest.mark.parametrize("status", [0, 500, 502, 503, 504, 520])
def test_server_errors_and_no_answer_back_off_exponentially_then_give_up(status: int) -> None:
    waits = [decide(status, attempt=n) for n in (1, 2, 3, 4)]
    assert all(w is not None for w in waits)
    assert [w.retry_at - NOW for w in waits if w is not None] == [1.0, 2.0, 4.0, 8.0]
    assert [w.retry for w in waits if w is not None] == [True, True, True, False]
    assert {w.limit for w in waits if w is not None} == {Limit.NETWORK if status == 0 else Limit.SERVER}


@pytest.mark.parametrize("status", [200, 304, 400, 401, 404, 409, 410, 422, 451])
def test_everything_else_is_not_retried(status: int) -> None:
    assert decide(status, {"retry-after": "5"}, message="secondary rate limit") is None


def test_rate_limits_are_bounded_by_the_retries_too() -> None:
    verdict = decide(429, {"retry-after": "5"}, attempt=4)
    assert verdict == Backoff(Limit.SECONDARY, NOW + 5, retry=False)


@given(
    status=st.integers(min_value=0, max_value=999),
    headers=st.dictionaries(
        st.sampled_from(["retry-after", "x-ratelimit-remaining", "x-ratelimit-reset", "x-ratelimit-limit"]),
        st.text(max_size=40),
    ),
    message=st.none() | st.text(max_size=80),
    attempt=st.integers(min_value=1, max_value=60),
    max_retries=st.integers(min_value=0, max_value=10),
)
def test_any_answer_gets_a_decision_never_in_the_past(
    status: int, headers: dict[str, str], message: str | None, attempt: int, max_retries: int
) -> None:
    verdict = backoff(status, headers, message=message, attempt=attempt, now=NOW, max_retries=max_retries)
    if verdict is not None:
        assert verdict.retry_at >= NOW
        assert verdict.retry is (attempt <= max_retries)
        assert status in (0, 403, 429) or 500 <= status <= 599


def test_a_snapshot_reads_the_headers() -> None:
    headers = {
        "x-ratelimit-limit": "5000",
        "x-ratelimit-remaining": "4990",
        "x-ratelimit-used": "10",
        "x-ratelimit-reset": "1700003600",
        "x-ratelimit-resource": "core",
    }
    assert RateLimitSnapshot.from_headers(headers) == RateLimitSnapshot(5000, 4990, 10, 1_700_003_600.0, "core")
    del headers["x-ratelimit-used"], headers["x-ratelimit-resource"]
    assert RateLimitSnapshot.from_headers(headers) == RateLimitSnapshot(5000, 4990, 10, 1_700_003_600.0, "core")
    assert RateLimitSnapshot.from_headers({}) is None
    assert RateLimitSnapshot.from_headers({**headers, "x-ratelimit-remaining": "-1"}) is None
    assert RateLimitSnapshot.from_headers({**headers, "x-ratelimit-reset": "soon"}) is None


def test_the_next_request_waits_for_the_reset_when_the_reserve_is_reached() -> None:
    def snapshot(remaining: int, reset: float) -> RateLimitSnapshot:
        return RateLimitSnapshot(5000, remaining, 5000 - remaining, reset, "core")

    assert pause_until(None, now=NOW) is None
    assert pause_until(snapshot(11, NOW + 60), now=NOW) is None
    assert pause_until(snapshot(10, NOW + 60), now=NOW) == NOW + 60 + RESET_MARGIN
    assert pause_until(snapshot(0, NOW + 60), now=NOW) == NOW + 60 + RESET_MARGIN
    assert pause_until(snapshot(0, NOW - 2), now=NOW) is None  # the window has started again
    assert pause_until(snapshot(3, NOW + 60), now=NOW, reserve=2) is None


@given(
    remaining=st.integers(min_value=0, max_value=5000),
    reset=st.floats(min_value=NOW - 7200, max_value=NOW + 7200),
    reserve=st.integers(min_value=0, max_value=100),
)
def test_a_pause_is_never_in_the_past_and_only_within_the_reserve(remaining: int, reset: float, reserve: int) -> None:
    until = pause_until(RateLimitSnapshot(5000, remaining, 0, reset, "core"), now=NOW, reserve=reserve)
    if until is not None:
        assert until > NOW
        assert remaining <= reserve


@pytest.mark.parametrize(
    ("value", "expected"),
    [("120", NOW + 120), (" 5 ", NOW + 5), ("0", NOW), ("-1", None), ("soon", None), ("", None), (None, None)],
)
def test_retry_after_values(value: str | None, expected: float | None) -> None:
    assert retry_after(value, now=NOW) == expected
