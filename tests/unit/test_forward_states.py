"""Forward job states: classification of answers, Retry-After, and the decision after an attempt."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ghingest.core.forward_states import (
    MAX_RETRY_AFTER,
    ForwardStatus,
    Verdict,
    can_move,
    classify,
    decide,
    parse_retry_after,
)
from ghingest.core.retry import RetryPolicy


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, Verdict.DELIVERED), (202, Verdict.DELIVERED), (204, Verdict.DELIVERED),
        (None, Verdict.TRANSIENT), (408, Verdict.TRANSIENT), (429, Verdict.TRANSIENT),
        (500, Verdict.TRANSIENT), (502, Verdict.TRANSIENT), (503, Verdict.TRANSIENT), (504, Verdict.TRANSIENT),
        (400, Verdict.PERMANENT), (401, Verdict.PERMANENT), (403, Verdict.PERMANENT), (404, Verdict.PERMANENT),
        (410, Verdict.PERMANENT), (422, Verdict.PERMANENT), (301, Verdict.PERMANENT),
    ],
)  # fmt: skip
def test_classification(status: int | None, verdict: Verdict) -> None:
    assert classify(status) is verdict


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert parse_retry_after("120", now=0) == 120.0
    assert parse_retry_after(None, now=0) is None
    assert parse_retry_after("soon", now=0) is None
    assert parse_retry_after("Thu, 01 Jan 1970 00:01:40 GMT", now=40.0) == pytest.approx(60.0)
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", now=40.0) == 0.0


@pytest.mark.parametrize(
    "value",
    [
        "²", "٣", "１２", "1²", "-1", "+5", "1e9", "1.5", "0x10", "inf", "nan", " ", "", "9" * 5000, "1" * 10,
        "Fri, 31 Dec 9999 23:59:59 GMT",  # far future: beyond MAX_RETRY_AFTER
        "Thu, 01 Jan 1970 00:01:40",  # no time zone
        "Thu, 01 Jan 1970 00:01:40 GMT" + " " * 100 + "x",
        "Thu, 99 Foo 1970 99:99:99 GMT",
        "Thu, 01 Jan 1970 00:01:40 GMT\u00a0²",
    ],
)  # fmt: skip
def test_a_malformed_or_out_of_range_retry_after_is_ignored(value: str) -> None:
    assert parse_retry_after(value, now=40.0) is None


def test_retry_after_bounds() -> None:
    assert parse_retry_after(" 0 ", now=0) == 0.0
    assert parse_retry_after("007", now=0) == 7.0
    assert parse_retry_after(str(int(MAX_RETRY_AFTER)), now=0) == MAX_RETRY_AFTER
    assert parse_retry_after(str(int(MAX_RETRY_AFTER) + 1), now=0) is None


@given(st.text(max_size=80))
def test_retry_after_never_raises_and_stays_in_range(value: str) -> None:
    seconds = parse_retry_after(value, now=1_700_000_000.0)
    assert seconds is None or 0.0 <= seconds <= MAX_RETRY_AFTER


POLICY = RetryPolicy(max_attempts=3, base_delay=1.0, max_delay=60.0, max_age=100.0, jitter=0.0)


def test_delivered_and_permanent_answers_end_the_job() -> None:
    assert (
        decide(Verdict.DELIVERED, policy=POLICY, attempts=1, now=0, first_attempt_at=0).status
        is ForwardStatus.DELIVERED
    )
    dead = decide(Verdict.PERMANENT, policy=POLICY, attempts=1, now=0, first_attempt_at=0)
    assert dead.status is ForwardStatus.DEAD
    assert dead.next_attempt_at is None


def test_transient_answers_back_off_exponentially_until_the_attempts_run_out() -> None:
    due = [decide(Verdict.TRANSIENT, policy=POLICY, attempts=n, now=10.0, first_attempt_at=10.0) for n in (1, 2, 3)]
    assert [d.status for d in due] == [ForwardStatus.RETRY, ForwardStatus.RETRY, ForwardStatus.DEAD]
    assert [d.next_attempt_at for d in due[:2]] == [11.0, 12.0]


def test_retry_after_is_honoured_and_the_age_limit_dead_letters() -> None:
    later = decide(Verdict.TRANSIENT, policy=POLICY, attempts=1, now=0, first_attempt_at=0, retry_after=30.0)
    assert later.next_attempt_at == 30.0
    too_old = decide(Verdict.TRANSIENT, policy=POLICY, attempts=1, now=99.5, first_attempt_at=0)
    assert too_old.status is ForwardStatus.DEAD


def test_jitter_spreads_retries() -> None:
    policy = RetryPolicy(max_attempts=5, base_delay=10.0, jitter=0.5)
    rng = random.Random(7)
    times = {decide(Verdict.TRANSIENT, policy=policy, attempts=1, now=0, first_attempt_at=0, rng=rng).next_attempt_at
             for _ in range(20)}  # fmt: skip
    assert len(times) > 1
    assert all(t is not None and 5.0 <= t <= 10.0 for t in times)


def test_transitions_are_data() -> None:
    assert can_move(ForwardStatus.PENDING, ForwardStatus.DELIVERING)
    assert can_move(ForwardStatus.DELIVERING, ForwardStatus.RETRY)
    assert can_move(ForwardStatus.DEAD, ForwardStatus.REPLAYED)
    assert not can_move(ForwardStatus.DELIVERED, ForwardStatus.DELIVERING)
    assert not can_move(ForwardStatus.PENDING, ForwardStatus.DELIVERED)
