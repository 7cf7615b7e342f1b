"""Forwarding: the queue of forward jobs (created with their delivery's outcome: the outbox), and its log (every
attempt, per-destination counts, dead letters) that the API and the dashboard read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from ghingest.core.delivery import ContentKind
from ghingest.core.forward_states import ForwardStatus


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


ReplayTarget = tuple[int, str, str | None]  # (the delivery's key in this backend, destination, route)


@dataclass(frozen=True, slots=True)
class ForwardQueueCapabilities:
    single_forwarder: bool = False  # one forwarder per store: at its start, every lease is a crashed one's


class ForwardQueue(Protocol):
    capabilities: ForwardQueueCapabilities

    async def claim(self, destination: str, *, limit: int, lease_seconds: float) -> Sequence[ForwardJob]:
        """Take up to `limit` due jobs of `destination`, hidden from other claimers for `lease_seconds`. Two
        claimers never hold the same job at once."""
        ...

    async def record_attempts(self, results: Sequence[AttemptResult]) -> None:
        """Record attempts and move their jobs on (delivered, retry at a time, or dead)."""
        ...

    async def release(self, job_ids: Sequence[int]) -> int:
        """Make jobs this claimer holds but did not start due now (a pump that stops); return how many."""
        ...

    async def recover(self) -> int:
        """At a forwarder's start: make due again the jobs a crashed forwarder held, as far as this backend can
        know it crashed (`single_forwarder`: every lease; shared stores: none, their leases run out)."""
        ...

    async def enqueue_replays(self, targets: Sequence[ReplayTarget]) -> int:
        """Create replay jobs for `targets` (from `ForwardLog.replay_targets`); return how many."""
        ...

    async def wait_for_work(self, timeout: float) -> None:
        """Return when new jobs may be due, or after `timeout` seconds."""
        ...


class ForwardLog(Protocol):
    async def replay_targets(self, selection: ReplaySelection) -> Sequence[ReplayTarget]:
        """The (delivery, destination, route) a replay of `selection` creates jobs for."""
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

    async def dead_lettered_since(self, since: float) -> int:
        """How many jobs are dead-lettered now that became so at or after `since` (an indexed count)."""
        ...
