"""Token buckets per key (a user name, a client address), for throttling failed sign-ins. Pure: the clock is
injected, nothing sleeps.

Each key has a bucket of `burst` tokens that refills by one every `interval` seconds. An attempt takes a token from
every bucket it concerns up front (so that parallel attempts count too); when any of them is empty, the attempt is
refused and `retry_after` says when the emptiest one has a token again. A successful attempt gives its tokens back
(`SignInThrottle.succeeded`: a user's own bucket starts full again).

Memory is bounded: at most `max_keys` buckets are kept, least recently used first out; a bucket that has refilled
completely is the same as no bucket and is dropped when met.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class TokenBuckets:
    def __init__(self, *, burst: int, interval: float, max_keys: int = 10_000, clock: Clock = time.monotonic) -> None:
        if burst < 1 or interval <= 0 or max_keys < 1:
            raise ValueError("burst and max_keys must be at least 1, interval positive")
        self.burst = burst
        self.interval = interval
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def tokens(self, key: str) -> float:
        """The tokens `key` has now (refilled up to `burst`)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return float(self.burst)
        return min(float(self.burst), bucket.tokens + (self._clock() - bucket.at) / self.interval)

    def wait(self, key: str) -> float:
        """Seconds until `key` has a whole token (0 when it has one now)."""
        return max(0.0, (1.0 - self.tokens(key)) * self.interval)

    def take(self, key: str) -> None:
        self._set(key, self.tokens(key) - 1.0)

    def give_back(self, key: str) -> None:
        self._set(key, self.tokens(key) + 1.0)

    def reset(self, key: str) -> None:
        self._buckets.pop(key, None)

    def _set(self, key: str, tokens: float) -> None:
        if tokens >= self.burst:
            self._buckets.pop(key, None)
            return
        self._buckets[key] = _Bucket(tokens, self._clock())
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)


class SignInThrottle:
    """Failed sign-ins per user name and per client address: `attempt` before trying, `succeeded` after a success.

    Callers run on one event loop thread: nothing here is awaited between a check and its update."""

    def __init__(self, *, users: TokenBuckets, clients: TokenBuckets) -> None:
        self.users = users
        self.clients = clients

    def attempt(self, client: str, user: str | None = None) -> float:
        """Take a token for `client` (and `user`) and return 0; or, when either has none, take nothing and return
        the seconds until both have one."""
        wait = self.clients.wait(client)
        if user is not None:
            wait = max(wait, self.users.wait(user))
        if wait > 0:
            return wait
        self.clients.take(client)
        if user is not None:
            self.users.take(user)
        return 0.0

    def cancel(self, client: str, user: str | None = None) -> None:
        """The attempt was not made (e.g. the server was too busy): give its tokens back."""
        self.clients.give_back(client)
        if user is not None:
            self.users.give_back(user)

    def succeeded(self, client: str, user: str | None = None) -> None:
        """A success does not count against the client, and starts the user's bucket over."""
        self.clients.give_back(client)
        if user is not None:
            self.users.reset(user)
