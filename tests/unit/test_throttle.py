"""The sign-in limiter: token buckets per key, driven by a fake clock (nothing sleeps)."""

from __future__ import annotations

import pytest

from ghingest.core.throttle import SignInThrottle, TokenBuckets


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_a_bucket_allows_its_burst_then_one_per_interval(clock: FakeClock) -> None:
    buckets = TokenBuckets(burst=3, interval=60, clock=clock)
    for _ in range(3):
        assert buckets.wait("alice") == 0
        buckets.take("alice")
    assert buckets.wait("alice") == pytest.approx(60)
    clock.now += 45
    assert buckets.wait("alice") == pytest.approx(15)
    clock.now += 15
    assert buckets.wait("alice") == 0
    buckets.take("alice")
    assert buckets.wait("alice") == pytest.approx(60)
    assert buckets.wait("bob") == 0  # every key has its own bucket


def test_a_refilled_bucket_is_forgotten(clock: FakeClock) -> None:
    buckets = TokenBuckets(burst=2, interval=10, clock=clock)
    buckets.take("alice")
    assert len(buckets) == 1
    clock.now += 10
    buckets.give_back("alice")  # back to full: the same as no bucket
    assert len(buckets) == 0
    assert buckets.tokens("alice") == 2


def test_memory_is_bounded_and_the_least_recently_used_key_goes_first(clock: FakeClock) -> None:
    buckets = TokenBuckets(burst=1, interval=60, max_keys=3, clock=clock)
    for key in ("a", "b", "c"):
        buckets.take(key)
    buckets.take("a")  # touched again: now the most recent
    buckets.take("d")
    assert len(buckets) == 3
    assert buckets.wait("b") == 0  # evicted: forgotten
    assert buckets.wait("a") > 0
    assert buckets.wait("c") > 0
    assert buckets.wait("d") > 0


def test_invalid_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="burst"):
        TokenBuckets(burst=0, interval=1)
    with pytest.raises(ValueError, match="interval"):
        TokenBuckets(burst=1, interval=0)


def _throttle(clock: FakeClock) -> SignInThrottle:
    return SignInThrottle(
        users=TokenBuckets(burst=3, interval=60, clock=clock),
        clients=TokenBuckets(burst=5, interval=10, clock=clock),
    )


def test_failures_are_counted_per_user_name(clock: FakeClock) -> None:
    throttle = _throttle(clock)
    assert [throttle.attempt(f"10.0.0.{n}", "alice") for n in range(3)] == [0, 0, 0]
    assert throttle.attempt("10.0.0.9", "alice") == pytest.approx(60)  # from any address
    assert throttle.attempt("10.0.0.9", "bob") == 0
    clock.now += 60
    assert throttle.attempt("10.0.0.9", "alice") == 0


def test_failures_are_counted_per_client_over_every_user_name_and_token(clock: FakeClock) -> None:
    throttle = _throttle(clock)
    for n in range(4):
        assert throttle.attempt("198.51.100.7", f"user-{n}") == 0
    assert throttle.attempt("198.51.100.7") == 0  # a token sign-in counts against the client too
    assert throttle.attempt("198.51.100.7", "someone-else") == pytest.approx(10)
    assert throttle.attempt("198.51.100.7") == pytest.approx(10)
    assert throttle.attempt("198.51.100.8", "someone-else") == 0


def test_a_refused_attempt_takes_no_token(clock: FakeClock) -> None:
    throttle = _throttle(clock)
    for _ in range(3):
        throttle.attempt("10.0.0.1", "alice")
    for _ in range(10):
        assert throttle.attempt("10.0.0.1", "alice") > 0
    assert throttle.clients.tokens("10.0.0.1") == pytest.approx(2)  # the refusals did not drain the client


def test_success_resets_the_user_and_does_not_count_against_the_client(clock: FakeClock) -> None:
    throttle = _throttle(clock)
    throttle.attempt("10.0.0.1", "alice")
    throttle.attempt("10.0.0.1", "alice")
    assert throttle.attempt("10.0.0.1", "alice") == 0
    throttle.succeeded("10.0.0.1", "alice")
    assert throttle.users.tokens("alice") == 3
    assert throttle.clients.tokens("10.0.0.1") == pytest.approx(3)
    assert [throttle.attempt("10.0.0.1", "alice") for _ in range(3)] == [0, 0, 0]
    assert throttle.attempt("10.0.0.1", "alice") > 0


def test_a_cancelled_attempt_gives_its_tokens_back(clock: FakeClock) -> None:
    throttle = _throttle(clock)
    throttle.attempt("10.0.0.1", "alice")
    throttle.cancel("10.0.0.1", "alice")
    assert throttle.users.tokens("alice") == 3
    assert throttle.clients.tokens("10.0.0.1") == 5
