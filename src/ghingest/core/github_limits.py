"""GitHub's REST rate limits as plain decisions: whether a failed request may be sent again and when, and whether
to hold the next request back. This code performs no I/O of its own: it reads a status, lower-case headers and the
API's message, and returns epoch seconds; the client (`ghingest.adapters.github`) sleeps or gives up.

What GitHub documents ("Rate limits for the REST API", "Best practices for using the REST API"):
- the primary limit: `x-ratelimit-remaining: 0` on a 403 or 429; requests succeed again at `x-ratelimit-reset`;
- a secondary limit: a 403 or 429 with `retry-after` (seconds); without it, wait at least a minute, and longer
  (exponentially) while the limit persists;
- a server error or no answer at all: worth a few more attempts, spaced exponentially.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import StrEnum

RESET_MARGIN = 1.0  # s after `x-ratelimit-reset`: the reset second itself may still be the old window
SECONDARY_WAIT = 60.0  # s: GitHub's "at least one minute" when a secondary limit gives no `retry-after`
BACKOFF_BASE = 1.0  # s: the first wait after a server error or a failed connection (then 2, 4 …)
RESERVE = 10  # requests left in a window below which the next request waits for the reset
_SECONDARY_WORDS = ("secondary rate limit", "abuse")


class Limit(StrEnum):
    """Why a request failed in a way worth waiting out."""

    PRIMARY = "primary"  # the window's requests are spent: wait for its reset
    SECONDARY = "secondary"  # too many requests too fast (or concurrently): wait as told, or a minute and more
    SERVER = "server"  # 5xx
    NETWORK = "network"  # no answer: refused, reset, timed out

    @property
    def is_rate_limit(self) -> bool:
        return self in (Limit.PRIMARY, Limit.SECONDARY)


@dataclass(frozen=True, slots=True)
class Backoff:
    """A failure that may pass: the request may succeed at `retry_at`. `retry` is False when the attempts are
    spent (the caller fails, and may still tell its own caller `retry_at`)."""

    limit: Limit
    retry_at: float  # epoch seconds
    retry: bool


@dataclass(frozen=True, slots=True)
class RateLimitSnapshot:
    """One answer's `x-ratelimit-*` headers: the state of the window of the credential that made the request."""

    limit: int
    remaining: int
    used: int
    reset: float  # epoch seconds when the window starts again
    resource: str  # "core", "search", "graphql" …

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimitSnapshot | None:
        """None when the answer carries no (or unreadable) rate-limit headers, as a 304 from a cache may not."""
        limit = _integer(headers.get("x-ratelimit-limit"))
        remaining = _integer(headers.get("x-ratelimit-remaining"))
        reset = _integer(headers.get("x-ratelimit-reset"))
        if limit is None or remaining is None or reset is None:
            return None
        used = _integer(headers.get("x-ratelimit-used"))
        resource = headers.get("x-ratelimit-resource") or "core"
        return cls(
            limit=limit,
            remaining=remaining,
            used=max(0, limit - remaining) if used is None else used,
            reset=float(reset),
            resource=resource[:32],
        )


def backoff(
    status: int,
    headers: Mapping[str, str],
    *,
    message: str | None,
    attempt: int,
    now: float,
    max_retries: int,
) -> Backoff | None:
    """What a failed attempt comes to; None when sending it again cannot help (any other status).

    `status` 0 means no answer (a network error or a timeout). `attempt` counts the attempts made so far, the
    failed one included (1 after the first). `max_retries` attempts may follow the first, whatever the reason.
    """
    retry = attempt <= max_retries
    if status in (403, 429):
        remaining = _integer(headers.get("x-ratelimit-remaining"))
        after = retry_after(headers.get("retry-after"), now=now)
        if remaining == 0:
            reset = _integer(headers.get("x-ratelimit-reset"))
            at = max(now, float(reset) + RESET_MARGIN) if reset is not None else now + SECONDARY_WAIT
            return Backoff(Limit.PRIMARY, max(at, after) if after is not None else at, retry)
        if after is not None:
            return Backoff(Limit.SECONDARY, after, retry)
        if status == 429 or _mentions_secondary(message):
            return Backoff(Limit.SECONDARY, now + SECONDARY_WAIT * 2.0 ** max(0, attempt - 1), retry)
        return None  # a 403 that is a refusal (permissions, a blocked resource), not a limit
    if status == 0 or 500 <= status <= 599:
        limit = Limit.NETWORK if status == 0 else Limit.SERVER
        return Backoff(limit, now + BACKOFF_BASE * 2.0 ** max(0, attempt - 1), retry)
    return None


def pause_until(snapshot: RateLimitSnapshot | None, *, now: float, reserve: int = RESERVE) -> float | None:
    """When the next request with this credential may be sent, if not now: with `reserve` requests or fewer left
    in the window, at its reset (the reserve is left for what must not wait, and no request is spent on a 403)."""
    if snapshot is None or snapshot.remaining > reserve or snapshot.reset + RESET_MARGIN <= now:
        return None
    return snapshot.reset + RESET_MARGIN


def retry_after(value: str | None, *, now: float) -> float | None:
    """A `Retry-After` value (seconds, or an HTTP date) as epoch seconds; None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    seconds = _integer(value)
    if seconds is not None:
        return now + max(0, seconds)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        return None
    return max(now, moment.timestamp())


def _mentions_secondary(message: str | None) -> bool:
    text = (message or "").lower()
    return any(word in text for word in _SECONDARY_WORDS)


def _integer(value: str | None) -> int | None:
    if value is None or not 0 < len(value) <= 20:
        return None
    value = value.strip()
    if not value.isascii() or not value.isdigit():
        return None
    return int(value)
