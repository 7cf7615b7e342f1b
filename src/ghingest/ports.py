"""The seams between the application and its backends, as small `typing.Protocol`s.

Adapters (`ghingest.adapters.*`) implement them; the application (`ghingest.app.*`) depends only on these.
Each port has one contract test suite in `tests/contract/`, run unchanged against every adapter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from ghingest.core.delivery import ContentKind, IncomingDelivery
from ghingest.core.events import EventRecord
from ghingest.core.forward_states import ForwardStatus
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
class Sighting:
    """A hook's delivery of a delivery id that was already recorded (another hook subscribed to the same event,
    or a redelivery): answered as a duplicate, counted here."""

    hook_id: str | None
    first_at: float
    last_at: float
    count: int
    same_body: bool  # every such delivery's body was byte-for-byte the recorded one's
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

    async def claim(
        self, *, limit: int, lease_seconds: float, max_bytes: int | None = None
    ) -> Sequence[StoredDelivery]:
        """Take up to `limit` deliveries that are due, oldest first, hidden from other claimers for `lease_seconds`.
        With `max_bytes`, stop after the delivery whose body takes the batch past that many bytes (a batch always
        holds at least one delivery when one is due)."""
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

    async def list_repositories(self, text: str, *, limit: int = 20) -> Sequence[str]:
        """Names of repositories with releases that start with `text`, then that contain it (a typeahead)."""
        ...

    async def newest_release_at(self, *, repository: str | None = None) -> str | None:
        """The greatest published (else created) time of any release, ISO-8601; None when there is none."""
        ...

    async def count_releases_by_day(self, *, since: str, repository: str | None = None) -> Mapping[str, int]:
        """Releases per day (`YYYY-MM-DD` of their published, else created, time) from `since` on."""
        ...

    async def ping(self) -> None:
        """Raise `StoreUnavailable` unless the store answers the read side's queries and commits a write."""
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


# --- forwarding ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ForwardJob:
    """A claimed forward job, with what the forwarder needs to build its request."""

    id: int
    delivery_seq: int
    delivery_id: str
    destination: str
    route: str | None
    replay: bool
    attempts: int  # attempts made before this one
    received_at: float
    first_attempt_at: float | None
    event: str
    content_kind: ContentKind
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """One attempt, as the forwarder saw it, and the job's next status (`decide`)."""

    job_id: int
    destination: str
    started_at: float
    latency: float
    status_code: int | None
    error: str | None
    response_excerpt: str | None
    next_status: ForwardStatus
    next_attempt_at: float | None = None


@dataclass(frozen=True, slots=True)
class AttemptView:
    id: int
    job_id: int
    destination: str
    number: int
    replay: bool
    started_at: float
    latency: float
    status_code: int | None
    outcome: str
    error: str | None
    response_excerpt: str | None


@dataclass(frozen=True, slots=True)
class ForwardView:
    id: int
    delivery_seq: int
    delivery_id: str
    destination: str
    route: str | None
    generation: int
    replay: bool
    status: ForwardStatus
    attempts: int
    created_at: float
    next_attempt_at: float | None
    last_attempt_at: float | None
    last_status_code: int | None
    last_error: str | None
    completed_at: float | None
    event: str | None = None
    repository: str | None = None
    attempt_log: tuple[AttemptView, ...] = ()


@dataclass(frozen=True, slots=True)
class DestinationStats:
    destination: str
    queued: int  # pending, retry or delivering
    dead: int
    attempts: int
    delivered: int
    failed: int
    last_attempt_at: float | None
    last_success_at: float | None
    last_error: str | None
    last_error_at: float | None

    @property
    def success_rate(self) -> float | None:
        return None if self.attempts == 0 else self.delivered / self.attempts


@dataclass(frozen=True, slots=True)
class ReplaySelection:
    """Which deliveries to forward again, and where. Every field narrows; `to` picks one destination instead of
    the destinations each delivery was forwarded to before."""

    delivery_id: str | None = None
    event: str | None = None
    repository: str | None = None  # a glob (`acme/*`)
    since: float | None = None  # received at or after
    until: float | None = None  # received before
    destination: str | None = None  # only forwards that went to this destination
    dead_only: bool = False  # only forwards that are dead-lettered now
    job_ids: tuple[int, ...] = ()  # only these forward jobs (a dashboard bulk retry)
    to: str | None = None

    @property
    def is_empty(self) -> bool:
        return (
            self.delivery_id is None and self.event is None and self.repository is None and self.since is None
            and self.until is None and self.destination is None and not self.dead_only and not self.job_ids
        )  # fmt: skip


class ForwardQueue(Protocol):
    """Forward jobs: created with their delivery's outcome (outbox), claimed with leases, retried, dead-lettered."""

    async def claim(self, destination: str, *, limit: int, lease_seconds: float) -> Sequence[ForwardJob]:
        """Take up to `limit` due jobs of `destination`, hidden from other claimers for `lease_seconds`."""
        ...

    async def record_attempts(self, results: Sequence[AttemptResult]) -> None:
        """Record attempts and move their jobs on (delivered, retry at a time, or dead)."""
        ...

    async def wait_for_work(self, timeout: float) -> None:
        """Return when new jobs may be due, or after `timeout` seconds."""
        ...

    async def release_leases(self, job_ids: Sequence[int] | None = None) -> int:
        """Make jobs in flight due now: every one (a forwarder starting after a crash) or those claimed but not
        started (a pump that stops); return how many."""
        ...

    async def replay(self, selection: ReplaySelection, *, dry_run: bool = False, chunk: int = 500) -> int:
        """Create a replay job per selected (delivery, destination); return how many (only count when dry)."""
        ...

    async def replay_targets(self, selection: ReplaySelection) -> Sequence[tuple[int, str, str | None]]:
        """The (delivery seq, destination, route) pairs a replay of `selection` creates jobs for."""
        ...

    async def enqueue_replays(self, targets: Sequence[tuple[int, str, str | None]]) -> int:
        """Create replay jobs for `targets` (from `replay_targets`); return how many."""
        ...

    async def stats(self) -> Sequence[DestinationStats]:
        """Per destination: queue depth, dead letters, attempts, successes, last error."""
        ...

    async def forwards_of(self, delivery_id: str) -> Sequence[ForwardView]:
        """A delivery's forward jobs, each with its attempts, oldest first."""
        ...

    async def dead_letters(
        self, *, destination: str | None = None, before_id: int | None = None, limit: int = 50
    ) -> Sequence[ForwardView]:
        """Dead-lettered jobs, newest first (keyset: `before_id`)."""
        ...


# --- dashboard sessions ----------------------------------------------------------------------------------------


class SessionRevocations(Protocol):
    """Session ids that were signed out, shared by every process on the database and kept across restarts."""

    async def revoke(self, session_id: str, until: float) -> None:
        """Refuse `session_id` from now until `until` (epoch seconds: when its cookie expires anyway); purge the
        revocations that have run out. Durable when it returns."""
        ...

    async def is_revoked(self, session_id: str) -> bool:
        """Whether `session_id` was revoked and its revocation has not run out (one indexed read)."""
        ...
