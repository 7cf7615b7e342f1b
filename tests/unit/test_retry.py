from __future__ import annotations

import random

from ghingest.core.retry import RetryPolicy


def test_backoff_grows_exponentially_within_jitter_and_cap() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=30.0, jitter=0.5, max_attempts=20)
    rng = random.Random(7)
    for attempts, raw in [(1, 1.0), (2, 2.0), (3, 4.0), (6, 30.0), (10, 30.0)]:
        delay = policy.delay(attempts, rng=rng)
        assert raw * 0.5 <= delay <= raw


def test_policy_is_exhausted_after_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert policy.next_attempt_at(attempts=2, now=100.0) is not None
    assert policy.next_attempt_at(attempts=3, now=100.0) is None


def test_retry_after_is_honoured_when_longer_than_the_backoff() -> None:
    policy = RetryPolicy(base_delay=1.0, jitter=0.0)
    assert policy.next_attempt_at(attempts=1, now=100.0, retry_after=42.0) == 142.0
    assert policy.next_attempt_at(attempts=1, now=100.0, retry_after=0.1) == 101.0


def test_max_age_ends_retries() -> None:
    policy = RetryPolicy(base_delay=10.0, jitter=0.0, max_age=60.0)
    assert policy.next_attempt_at(attempts=1, now=100.0, first_attempt_at=90.0) == 110.0
    assert policy.next_attempt_at(attempts=1, now=145.0, first_attempt_at=90.0) is None
