"""The read side: the queries of the read API and the dashboard, with keyset pagination.

A backend that cannot answer a query says so in its `ReadCapabilities`; the dashboard then hides that control
(and the README's per-profile table says so) instead of the query failing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from ghingest.core.events import EventRecord
from ghingest.core.forward_states import ForwardStatus
from ghingest.core.pagination import Page
from ghingest.core.processing import StoredDelivery
from ghingest.core.releases import ReleaseRecord
from ghingest.core.states import DeliveryStatus


@dataclass(frozen=True, slots=True)
class Sighting:
    """A hook's delivery of a delivery id that was already recorded (another hook subscribed to the same event,
    or a redelivery): answered as a duplicate, counted here."""

    hook_id: str | None
    first_at: float
    last_at: float
    count: int
    # every such delivery's body was byte-for-byte the recorded one's; None: not known (some copy came before the
    # delivery itself was recorded: behind a broker's inbox the store records a delivery with its first outcome)
    same_body: bool | None
    secret_index: int


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
    hook_id: str | None = None  # X-GitHub-Hook-ID of the recorded delivery, as sent
    sightings: tuple[Sighting, ...] = ()  # other hooks' (and redeliveries') deliveries of the same id
    release_id: int | None = None  # the release this delivery changed, once processed


@dataclass(frozen=True, slots=True)
class ForwardOutcome:
    """Where one of an event's forward jobs stands (the newest generation per destination)."""

    destination: str
    status: ForwardStatus
    status_code: int | None  # the last attempt's HTTP status, if it had one
    attempts: int


@dataclass(frozen=True, slots=True)
class ReleaseRef:
    """The release a delivery changed, by the names people know it by."""

    release_id: int
    repository: str | None
    tag: str | None


@dataclass(frozen=True, slots=True)
class EventView:
    seq: int
    record: EventRecord
    status: DeliveryStatus
    received_at: float
    processed_at: float | None
    error: str | None
    # Filled by `list_events` for the page's rows (batched: one query for the page, never one per row).
    forwards: tuple[ForwardOutcome, ...] = ()  # by destination
    release: ReleaseRef | None = None


@dataclass(frozen=True, slots=True)
class ReleaseView:
    record: ReleaseRecord
    first_seen_at: float
    updated_at: float
    # where its history entries came from: `core.sources.WEBHOOK_SOURCE`, `POLL_SOURCE` (on a page too, which
    # carries no history)
    sources: frozenset[str]


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
    sender: str | None = None  # the payload's `sender.login`
    destination: str | None = None  # events with a forward job to this destination
    forward_status: ForwardStatus | None = None  # events with a forward job in this status (to `destination`)
    since: float | None = None  # received at or after (epoch seconds)
    until: float | None = None  # received before
    delivery_id: str | None = None  # that one event only
    cursor: str | None = None
    limit: int = 50


@dataclass(frozen=True, slots=True)
class HourCounts:
    """Deliveries received in one hour (`hour`: its start, epoch seconds), by what processing made of them."""

    hour: float
    received: int
    processed: int
    failed: int

    @property
    def waiting(self) -> int:
        """Received, not processed or failed yet (waiting, or retrying)."""
        return max(0, self.received - self.processed - self.failed)


@dataclass(frozen=True, slots=True)
class ReprocessSelection:
    delivery_id: str | None = None
    since: float | None = None
    failed_only: bool = False


@dataclass(frozen=True, slots=True)
class ReadCapabilities:
    search: bool = True  # ReleaseQuery.search (full text over tag, name, notes)
    repository_contains: bool = True  # list_repositories matches inside names, not only prefixes
    release_chart: bool = True  # count_releases_by_day
    event_forward_filters: bool = True  # EventQuery.destination and .forward_status
    activity: bool = True  # deliveries_per_hour


class Reads(Protocol):
    capabilities: ReadCapabilities

    async def get_delivery(self, delivery_id: str) -> DeliveryView | None: ...

    async def hooks_seen(self, delivery_ids: Sequence[str]) -> Mapping[str, frozenset[str]]:
        """Per delivery id recorded here (as a delivery or as a sighting), the hook ids its copies came from: the
        recorded delivery's `hook_id` and every sighting's (`''` for a request that named none). Ids not recorded
        are absent. At most a few queries however many ids (it is called with pages of 100)."""
        ...

    async def list_events(self, query: EventQuery) -> Page[EventView]:
        """Events newest first (by `seq`, keyset pages), each with its forwards' outcomes and its release."""
        ...

    async def deliveries_per_hour(self, *, since: float) -> Sequence[HourCounts]:
        """Deliveries received from `since` on, per hour of receipt (hours with none left out), oldest first:
        bounded index range reads (`activity` capability)."""
        ...

    async def get_release(self, release_id: int) -> ReleaseView | None: ...

    async def list_releases(self, query: ReleaseQuery) -> Page[ReleaseView]: ...

    async def list_repositories(self, text: str, *, limit: int = 20) -> Sequence[str]:
        """Names of repositories with releases that start with `text`, then that contain it (a typeahead)."""
        ...

    async def newest_release_at(self, *, repository: str | None = None) -> str | None:
        """The greatest published (else created) time of any release, ISO-8601; None when there is none."""
        ...

    async def count_releases_by_day(self, *, since: str, repository: str | None = None) -> Mapping[str, int]:
        """Releases per day (`YYYY-MM-DD` of their published, else created, time) from `since` on."""
        ...

    async def deliveries_to_reprocess(
        self, selection: ReprocessSelection, *, after: str | None = None, limit: int = 500
    ) -> Page[StoredDelivery]:
        """The recorded deliveries `selection` names, as stored (body included), oldest first; keyset pages."""
        ...

    async def ping(self) -> None:
        """Raise `StoreUnavailable` unless the read side answers (its schema is the one this release expects)."""
        ...
