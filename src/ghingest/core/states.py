"""Every status a recorded delivery can have, and every allowed transition, as data.

received ──process ok──▶ processed
    │  ▲                     │
    │  └──retry (backoff)──┐ │ reprocess
    ├──error, attempts left┘ ▼
    └──permanent error / attempts exhausted──▶ failed ──reprocess──▶ received
"""

from __future__ import annotations

from enum import StrEnum


class DeliveryStatus(StrEnum):
    """A recorded delivery's processing: received (due, or being processed), then processed or failed."""

    RECEIVED = "received"
    PROCESSED = "processed"
    FAILED = "failed"


TRANSITIONS: frozenset[tuple[DeliveryStatus, DeliveryStatus]] = frozenset(
    {
        (DeliveryStatus.RECEIVED, DeliveryStatus.PROCESSED),
        (DeliveryStatus.RECEIVED, DeliveryStatus.RECEIVED),  # a retry after a transient error
        (DeliveryStatus.RECEIVED, DeliveryStatus.FAILED),
        (DeliveryStatus.PROCESSED, DeliveryStatus.RECEIVED),  # reprocess
        (DeliveryStatus.FAILED, DeliveryStatus.RECEIVED),  # reprocess
    }
)


def can_move(current: DeliveryStatus, target: DeliveryStatus) -> bool:
    return (current, target) in TRANSITIONS
