"""The inbox: durable, deduplicated intake of deliveries, consumed at least once.

A receiver appends; workers claim, and settle each claimed delivery once the store has committed what processing
made of it. Settling is the inbox's own business: a SQLite or PostgreSQL inbox updates a row, a JetStream inbox
acks (`done`), naks with a delay (`retry`) or terms (`failed`) the message, SQS deletes it or changes its
visibility. A claim handle is opaque: only the inbox that gave it reads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from ghingest.core.delivery import IncomingDelivery
from ghingest.core.processing import StoredDelivery


class Settle(StrEnum):
    DONE = "done"  # processed: never claimed again
    RETRY = "retry"  # claimable again from `retry_at`
    FAILED = "failed"  # failed for good: never claimed again (until requeued)


@dataclass(frozen=True, slots=True)
class Claimed:
    delivery: StoredDelivery  # `attempts`: the attempts made before this claim
    handle: object  # opaque: the claiming inbox's own token for this claim
    # The inbox will not hand this delivery out again whatever it is settled with (a broker's delivery limit,
    # reached by claims that were never settled: workers crashing on it). The worker records it as failed for
    # good instead of processing it once more, so that it is never silently kept or dropped.
    exhausted: bool = False


@dataclass(frozen=True, slots=True)
class Settlement:
    handle: object
    outcome: Settle
    retry_at: float | None = None  # with RETRY


@dataclass(frozen=True, slots=True)
class InboxCapabilities:
    max_payload_bytes: int | None = None  # the largest body it holds (None: the receiver's cap)
    requeue: bool = True  # can put stored deliveries back to be processed again (reprocess)
    # An appended delivery shows on the read side at once (the inbox is the store's own tables). False for a
    # broker's inbox: the store records a delivery with its first outcome, so the read side shows it from then on
    # (and a sighting that came before cannot be compared with its body: `Sighting.same_body` is None).
    visible_on_receipt: bool = True
    oldest_waiting: bool = True  # `oldest_waiting_at` answers (a broker's inbox does not say when it was sent)


class Inbox(Protocol):
    capabilities: InboxCapabilities

    async def append(self, delivery: IncomingDelivery, *, received_at: float) -> bool:
        """Commit the delivery durably. True when stored, False when its delivery id was already recorded (the
        receiver then records this hook's sighting with `Store.record_sighting`). Raises `StoreUnavailable` when
        it cannot commit."""
        ...

    async def claim(self, *, limit: int, lease_seconds: float, max_bytes: int | None = None) -> Sequence[Claimed]:
        """Take up to `limit` due deliveries, oldest first, hidden from other claimers for `lease_seconds`. With
        `max_bytes`, stop after the delivery whose body takes the batch past that many bytes (a batch always holds
        at least one delivery when one is due)."""
        ...

    async def settle(self, settlements: Sequence[Settlement]) -> None:
        """Settle claimed deliveries (after the store committed their outcomes). Settling a claim twice, or one
        whose lease ran out and was claimed again, changes nothing the second time."""
        ...

    async def extend(self, handles: Sequence[object], *, lease_seconds: float) -> None:
        """Keep claimed deliveries hidden for `lease_seconds` more (long processing)."""
        ...

    async def requeue(self, deliveries: Sequence[StoredDelivery]) -> int:
        """Make stored deliveries due again, as new (reprocessing); return how many."""
        ...

    async def wait_for_work(self, timeout: float) -> None:
        """Return when new work may be available, or after `timeout` seconds."""
        ...

    async def depth(self) -> int:
        """How many deliveries wait to be processed."""
        ...

    async def oldest_waiting_at(self) -> float | None:
        """When the oldest delivery still waiting to be processed (or retried) was received; None when none waits.
        One index probe (`oldest_waiting` capability)."""
        ...

    async def ping(self) -> None:
        """Raise `StoreUnavailable` unless an append could be committed now (readiness)."""
        ...
