"""The store's write side: what processing made of each claimed delivery, recorded in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
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

    def at_seq(self, seq: int) -> Outcome:
        """This outcome for the delivery as the store numbers it: its `seq`, and the receipt order of its release
        change (a broker's sequence number never reaches the store's tables)."""
        if seq == self.delivery.seq:
            return self
        processed = self.processed
        if processed is not None and processed.release is not None:
            order = replace(processed.release.order, seq=seq)
            processed = replace(processed, release=replace(processed.release, order=order))
        return replace(self, delivery=replace(self.delivery, seq=seq), processed=processed)


@dataclass(frozen=True, slots=True)
class StoreCapabilities:
    # The store can stand behind another inbox (a broker's: NATS JetStream, SQS): it knows a delivery by its
    # delivery id, records the raw delivery with the first outcome it sees of it, under a number of its own, and
    # records later outcomes of that id (redelivered under another broker number: requeued, or appended again
    # after the broker's duplicate window) against the one delivery it holds.
    foreign_inbox: bool = False


class Store(Protocol):
    capabilities: StoreCapabilities

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
