"""The store's write side: what processing made of each claimed delivery, recorded in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ghingest.core.delivery import IncomingDelivery
from ghingest.core.events import EventRecord
from ghingest.core.processing import Processed, StoredDelivery


@dataclass(frozen=True, slots=True)
class Outcome:
    """What processing one claimed delivery came to; the store records it in one transaction."""

    delivery: StoredDelivery
    processed: Processed | None = None
    error: str | None = None
    retry_at: float | None = None  # with `error`: when to try again; None with `error` means failed for good
    fallback_event: EventRecord | None = None  # with a final error: the best event record that could be made


class Store(Protocol):
    async def record_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        """Record a batch in one transaction: each delivery's state as the read side shows it (status, attempts,
        error; the raw delivery, where the store does not hold it already), its event, its release change folded
        into its release, and the forward jobs of the processed ones (the outbox). Idempotent: recording an
        outcome again (a delivery claimed again after a crash) creates nothing twice."""
        ...

    async def record_sighting(self, delivery: IncomingDelivery, *, received_at: float) -> None:
        """Durably count a hook's delivery of a delivery id already recorded (docs/adr/0010-dedupe-key.md): per
        (delivery id, hook id) the first and last time, how many, whether every body was the recorded one's."""
        ...

    async def ping(self) -> None:
        """Raise `StoreUnavailable` unless a write commits."""
        ...
