"""The seams between the application and its backends, as small `typing.Protocol`s.

Adapters (`ghingest.adapters.*`) implement them; the application (`ghingest.app.*`) depends only on these.
Each port has one contract test suite in `tests/contract/`, run unchanged against every adapter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from ghingest.core.delivery import IncomingDelivery
from ghingest.core.events import EventRecord
from ghingest.core.pagination import Page
from ghingest.core.processing import Processed, StoredDelivery
from ghingest.core.releases import ReleaseRecord
from ghingest.core.states import DeliveryStatus


@dataclass(frozen=True, slots=True)
class Outcome:
    """What processing one claimed delivery came to; the store records it in one transaction."""

    delivery: StoredDelivery
    processed: Processed | None = None
    error: str | None = None
    retry_at: float | None = None  # with `error`: when to try again; None with `error` means failed for good
    fallback_event: EventRecord | None = None  # with a final error: the best event record that could be made


@dataclass(frozen=True, slots=True)
class DeliveryView:
    seq: int
    delivery_id: str
    event: str
    status: DeliveryStatus
    headers: Mapping[str, str]
    body: bytes
    content_kind: str
    secret_index: int
    received_at: float
    processed_at: float | None
    attempts: int
    error: str | None


@dataclass(frozen=True, slots=True)
class EventView:
    seq: int
    record: EventRecord
    status: DeliveryStatus
    received_at: float
    processed_at: float | None
    error: str | None


@dataclass(frozen=True, slots=True)
class ReleaseView:
    record: ReleaseRecord
    first_seen_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class ReleaseQuery:
    repository: str | None = None
    state: str | None = None
    prerelease: bool | None = None
    since: str | None = None  # ISO-8601; releases published (or created) at or after
    until: str | None = None
    search: str | None = None
    cursor: str | None = None
    limit: int = 50


@dataclass(frozen=True, slots=True)
class EventQuery:
    event: str | None = None
    action: str | None = None
    repository: str | None = None
    status: str | None = None
    cursor: str | None = None
    limit: int = 50


@dataclass(frozen=True, slots=True)
class ReprocessSelection:
    delivery_id: str | None = None
    since: float | None = None
    failed_only: bool = False


class Inbox(Protocol):
    """Durable, deduplicated intake of deliveries, consumed at least once."""

    async def append(self, delivery: IncomingDelivery, *, received_at: float) -> bool:
        """Commit the delivery durably. True when stored, False when its delivery id was already recorded.
        Raises `StoreUnavailable` when it cannot commit."""
        ...

    async def claim(self, *, limit: int, lease_seconds: float) -> Sequence[StoredDelivery]:
        """Take up to `limit` deliveries that are due, hidden from other claimers for `lease_seconds`."""
        ...

    async def wait_for_work(self, timeout: float) -> None:
        """Return when new work may be available, or after `timeout` seconds."""
        ...

    async def depth(self) -> int:
        """How many deliveries wait to be processed."""
        ...


class Store(Protocol):
    """Processed state: deliveries' statuses, events, releases; and the queries the read API needs."""

    async def record_outcomes(self, outcomes: Sequence[Outcome], *, now: float) -> None: ...

    async def mark_for_reprocess(self, selection: ReprocessSelection) -> int:
        """Put the selected deliveries back to `received`; return how many."""
        ...

    async def get_delivery(self, delivery_id: str) -> DeliveryView | None: ...

    async def list_events(self, query: EventQuery) -> Page[EventView]: ...

    async def get_release(self, release_id: int) -> ReleaseView | None: ...

    async def list_releases(self, query: ReleaseQuery) -> Page[ReleaseView]: ...

    async def ping(self) -> None:
        """Raise when the store cannot answer a query."""
        ...


@dataclass(frozen=True, slots=True)
class Change:
    seq: int
    kind: str  # "event" | "release"
    ref: str  # delivery id or release id


class ChangeFeed(Protocol):
    """What changed in the store, in order, so that live views can follow and catch up after a reconnect."""

    async def changes_since(self, seq: int, *, limit: int = 500) -> Sequence[Change]: ...

    async def latest_seq(self) -> int: ...

    async def wait_for_change(self, after: int, timeout: float) -> None: ...
