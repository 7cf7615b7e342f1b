"""Settling claims of a SQL inbox (SQLite, PostgreSQL): the rows of its two UPDATE statements."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ghingest.ports.inbox import Settle, Settlement


def settlement_rows(
    settlements: Sequence[Settlement], now: float, claim_of: Callable[[object], tuple[int, int, Any]]
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The rows that settle `settlements`: (status, now, attempts, seq, token) for done and failed ones, and
    (attempts, due time, seq, token) for retries. `claim_of(handle)`: the claim's (seq, attempts before it, token)."""
    done: list[tuple[Any, ...]] = []
    retry: list[tuple[Any, ...]] = []
    for settlement in settlements:
        seq, attempts, token = claim_of(settlement.handle)
        if settlement.outcome is Settle.RETRY:
            retry.append((attempts + 1, settlement.retry_at or now, seq, token))
        else:
            status = "processed" if settlement.outcome is Settle.DONE else "failed"
            done.append((status, now, attempts + 1, seq, token))
    return done, retry
