"""Forwarding: the queue of forward jobs (created with their delivery's outcome: the outbox), and its log (every
attempt, per-destination counts, dead letters) that the API and the dashboard read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from ghingest.core.delivery import ContentKind
from ghingest.core.destination_health import RecentAttempt, WindowFigures
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
class DestinationPause:
    """A destination an operator paused: no forwarder claims its jobs until it is resumed (they wait, queued)."""

    destination: str
    paused_by: str
    paused_at: float


@dataclass(frozen=True, slots=True)
class DestinationTest:
    """A signed `ping` sent to a destination on an operator's request: kept apart from the attempt log (it is no
    forward and must not move the health figures), the last one per destination."""

    destination: str
    delivery_id: str
    sent_by: str
    sent_at: float
    latency: float
    status_code: int | None
    error: str | None
    response_excerpt: str | None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True, slots=True)
class DestinationActivity:
    """What `core.destination_health.judge` reads of one destination's attempt log."""

    destination: str
    windows: tuple[WindowFigures, ...]  # in the order asked for
    recent: tuple[RecentAttempt, ...]  # its most recent attempts, newest first
    recovered_at: float | None  # the first delivered attempt after its last error (None: none, or no error)


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
class TargetDelivery:
    """What a replay's dry run shows of a delivery it would forward again."""

    seq: int  # the ReplayTarget's key
    delivery_id: str
    event: str
    repository: str | None
    received_at: float


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

    async def pause(self, destination: str, *, by: str) -> DestinationPause:
        """Stop every claimer from taking `destination`'s jobs until `resume` (persisted; jobs keep being created and
        wait). Pausing a paused destination changes nothing: its pause is returned."""
        ...

    async def resume(self, destination: str) -> DestinationPause | None:
        """Let claims take `destination`'s jobs again, due ones at once; the time it was paused does not count
        towards a job's `max_age` (its first attempt moves later by as much). The pause ended, or None."""
        ...

    async def paused(self) -> Sequence[DestinationPause]:
        """The paused destinations, by name."""
        ...

    async def record_test(self, test: DestinationTest) -> None:
        """Keep `test` as its destination's last test delivery."""
        ...


class ForwardLog(Protocol):
    async def replay_targets(self, selection: ReplaySelection) -> Sequence[ReplayTarget]:
        """The (delivery, destination, route) a replay of `selection` creates jobs for."""
        ...

    async def target_deliveries(self, seqs: Sequence[int]) -> Sequence[TargetDelivery]:
        """The deliveries of these `ReplayTarget` keys (a dry run's first few), in the order of `seqs`; a key with
        no delivery is left out."""
        ...

    async def stats(self) -> Sequence[DestinationStats]:
        """Per destination: queue depth, dead letters, attempts, successes, last error."""
        ...

    async def activity(self, windows: Sequence[float], *, recent: int) -> Sequence[DestinationActivity]:
        """Per destination that has attempts, by name: its attempts that started in each of the last `windows`
        seconds (on the clock), its `recent` most recent attempts, and when it recovered from its last error."""
        ...

    async def tests(self) -> Sequence[DestinationTest]:
        """Each destination's last test delivery, by name."""
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
