"""Retry policies as data: a pure function says when the next attempt is due, or that there is none.

Callers persist the answer (`next_attempt_at`) and never sleep in a loop waiting for it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 8
    base_delay: float = 1.0
    max_delay: float = 600.0
    max_age: float | None = None  # seconds since the first attempt after which no retry is made
    jitter: float = 0.5  # fraction of the delay drawn at random, spreading retries of a burst

    def delay(self, attempts: int, *, rng: random.Random | None = None) -> float:
        """Delay before attempt number `attempts + 1` (exponential, capped, with jitter)."""
        raw = min(self.max_delay, self.base_delay * 2.0 ** max(0, attempts - 1))
        spread = raw * self.jitter
        draw: float = (rng or random).random()
        return raw - spread + spread * draw

    def next_attempt_at(
        self,
        *,
        attempts: int,
        now: float,
        first_attempt_at: float | None = None,
        retry_after: float | None = None,
        rng: random.Random | None = None,
    ) -> float | None:
        """When to try again after `attempts` failed attempts, or None when the policy is exhausted.

        `retry_after` (seconds, from a `Retry-After` answer) is honoured when it is longer than the backoff.
        """
        if attempts >= self.max_attempts:
            return None
        delay = self.delay(attempts, rng=rng)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_delay))
        due = now + delay
        if self.max_age is not None and first_attempt_at is not None and due - first_attempt_at > self.max_age:
            return None
        return due
