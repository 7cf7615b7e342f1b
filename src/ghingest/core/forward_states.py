"""Every status a forward job can have, every allowed transition, and what one attempt's answer leads to — as data.

pending ──claim──▶ delivering ──2xx──────────────────────────────▶ delivered
                     │  ▲   ├──connect error / timeout / 408 / 429 / 5xx, policy allows──▶ retry ──due──┐
                     │  └───┼──────────────────────────────────────────────────────────────────────────┘
                     │      └──other 4xx (or 3xx), or policy exhausted (attempts or age)──▶ dead
                     └──lease expired (the process died mid-attempt)──▶ delivering (claimed again)
dead ──replay──▶ replayed   (a new job, one generation up, carries the replay)

This module performs no I/O: the forwarder hands over what it saw (an HTTP status or an error, a `Retry-After`
value) and persists the decision it gets back.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import StrEnum

from ghingest.core.retry import RetryPolicy


class ForwardStatus(StrEnum):
    """A forward job's status: pending, delivering, retry (waiting for the next attempt), then delivered or dead;
    replayed: a dead job a replay superseded."""

    PENDING = "pending"
    DELIVERING = "delivering"
    DELIVERED = "delivered"
    RETRY = "retry"
    DEAD = "dead"
    REPLAYED = "replayed"  # a dead job whose delivery was replayed to the same destination


ACTIVE: frozenset[ForwardStatus] = frozenset({ForwardStatus.PENDING, ForwardStatus.RETRY, ForwardStatus.DELIVERING})

TRANSITIONS: frozenset[tuple[ForwardStatus, ForwardStatus]] = frozenset(
    {
        (ForwardStatus.PENDING, ForwardStatus.DELIVERING),
        (ForwardStatus.RETRY, ForwardStatus.DELIVERING),
        (ForwardStatus.DELIVERING, ForwardStatus.DELIVERING),  # lease expired: claimed again
        (ForwardStatus.DELIVERING, ForwardStatus.DELIVERED),
        (ForwardStatus.DELIVERING, ForwardStatus.RETRY),
        (ForwardStatus.DELIVERING, ForwardStatus.DEAD),
        (ForwardStatus.DEAD, ForwardStatus.REPLAYED),
    }
)


def can_move(current: ForwardStatus, target: ForwardStatus) -> bool:
    return (current, target) in TRANSITIONS


class Verdict(StrEnum):
    """How one attempt's answer is classified."""

    DELIVERED = "delivered"
    TRANSIENT = "transient"  # worth another attempt
    PERMANENT = "permanent"  # another attempt would get the same answer


RETRIED_STATUSES: frozenset[int] = frozenset({408, 429})


def classify(status_code: int | None) -> Verdict:
    """`status_code` is the HTTP status answered, or None when there was no answer (connect error, timeout)."""
    if status_code is None:
        return Verdict.TRANSIENT
    if 200 <= status_code < 300:
        return Verdict.DELIVERED
    if status_code in RETRIED_STATUSES or status_code >= 500:
        return Verdict.TRANSIENT
    return Verdict.PERMANENT  # other 4xx; a 3xx is a misconfigured URL, which waiting does not fix


MAX_RETRY_AFTER = 365 * 86_400.0  # a longer `Retry-After` is not believed (and the policy's max_delay caps any)
_RETRY_AFTER_SECONDS = re.compile(r"[0-9]{1,9}")  # ASCII digits only: `str.isdigit()` also accepts '²' or '٣'
_MAX_DATE_CHARS = 64  # an HTTP date is 29 characters; the obsolete forms it may take are not much longer


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a `Retry-After` value: delta-seconds (ASCII digits) or an HTTP date with a time zone,
    between 0 and `MAX_RETRY_AFTER`; None when absent, malformed or out of range. Never raises."""
    if value is None:
        return None
    text = value.strip(" \t")
    if _RETRY_AFTER_SECONDS.fullmatch(text):
        seconds = float(int(text))
        return seconds if seconds <= MAX_RETRY_AFTER else None
    if not text or len(text) > _MAX_DATE_CHARS or not text.isascii():
        return None
    try:
        when = parsedate_to_datetime(text)
        if when.tzinfo is None:
            return None
        wait = when.timestamp() - now
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if not math.isfinite(wait) or wait > MAX_RETRY_AFTER:
        return None
    return max(0.0, wait)


@dataclass(frozen=True, slots=True)
class Decision:
    status: ForwardStatus
    next_attempt_at: float | None  # with RETRY: when the job is due again


def decide(
    verdict: Verdict,
    *,
    policy: RetryPolicy,
    attempts: int,
    now: float,
    first_attempt_at: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> Decision:
    """What the job becomes after its attempt number `attempts` (1-based) was answered with `verdict`."""
    if verdict is Verdict.DELIVERED:
        return Decision(ForwardStatus.DELIVERED, None)
    if verdict is Verdict.PERMANENT:
        return Decision(ForwardStatus.DEAD, None)
    due = policy.next_attempt_at(
        attempts=attempts, now=now, first_attempt_at=first_attempt_at, retry_after=retry_after, rng=rng
    )
    if due is None:
        return Decision(ForwardStatus.DEAD, None)
    return Decision(ForwardStatus.RETRY, due)
