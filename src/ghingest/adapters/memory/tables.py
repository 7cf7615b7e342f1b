"""The memory backend's one database: plain dicts and lists, every port a view on the same tables.

Like the SQLite backend, it is one store: a delivery the inbox holds is the delivery the read side shows (status
`received` until an outcome is recorded), and requeueing a delivery shows it as received again. Each row keeps the
inbox's own state (due time, lease, the attempts it hands to claimers) apart from what the store recorded (status,
attempts, error as the read side shows them): settling is the inbox's business, recording the store's.

Every operation takes `MemoryDatabase.lock` and never awaits while holding it, so it is atomic for every event
loop and thread that shares the database. Nothing persists: closing makes every port raise `StoreUnavailable`.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ghingest.adapters.memory.signal import Signal
from ghingest.core.errors import StoreUnavailable
from ghingest.core.events import EventRecord
from ghingest.core.forward_states import ForwardStatus
from ghingest.core.processing import StoredDelivery
from ghingest.core.reconcile import Gap, HookScan
from ghingest.core.rejections import Key as RejectionKey
from ghingest.core.rejections import RejectionBucket
from ghingest.core.releases import ReleaseChange, ReleaseRecord
from ghingest.core.states import DeliveryStatus
from ghingest.core.tracking import TrackedRepository
from ghingest.ports import AttemptView, AuditEntry, Clock, DestinationPause, DestinationTest


@dataclass(slots=True)
class DeliveryRow:
    delivery: StoredDelivery  # as appended (attempts 0)
    # The inbox's state (whether it is pending, not settled, is `MemoryDatabase.pending`).
    due_at: float = 0.0
    lease_until: float = 0.0
    claim: int = 0  # the current claim's token (0: none); a handle with another token is stale
    attempts: int = 0  # settled attempts: what a claimer is told were made before its claim
    # What the store recorded, as the read side shows it.
    status: DeliveryStatus = DeliveryStatus.RECEIVED
    recorded_attempts: int = 0
    error: str | None = None
    processed_at: float | None = None

    @property
    def seq(self) -> int:
        return self.delivery.seq

    @property
    def size(self) -> int:
        return len(self.delivery.body)


@dataclass(slots=True)
class EventRow:
    seq: int
    record: EventRecord
    status: DeliveryStatus
    error: str | None
    received_at: float
    processed_at: float | None


@dataclass(slots=True)
class ReleaseRow:
    record: ReleaseRecord  # with its whole history
    first_seen_at: float
    updated_at: float


@dataclass(slots=True)
class SightingRow:
    hook_id: str  # '' when the request named no hook
    first_at: float
    last_at: float
    count: int
    same_body: bool | None
    secret_index: int


@dataclass(slots=True)
class JobRow:
    id: int
    delivery_seq: int
    delivery_id: str
    destination: str
    route: str | None
    generation: int
    replay: bool
    received_at: float
    created_at: float
    next_attempt_at: float  # due time; while delivering: the lease's end
    status: ForwardStatus = ForwardStatus.PENDING
    attempts: int = 0
    first_attempt_at: float | None = None
    last_attempt_at: float | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    completed_at: float | None = None


@dataclass(slots=True)
class StatsRow:
    attempts: int = 0
    delivered: int = 0
    failed: int = 0
    last_attempt_at: float | None = None
    last_success_at: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None


@dataclass(eq=False)
class MemoryDatabase:
    clock: Clock
    lock: threading.Lock = field(default_factory=threading.Lock)
    closed: bool = False
    epoch: str = field(default_factory=lambda: uuid.uuid4().hex[:12])  # tells this database's feed cursors apart
    # deliveries
    deliveries: dict[int, DeliveryRow] = field(default_factory=dict)  # by seq
    seq_of: dict[str, int] = field(default_factory=dict)  # delivery id -> seq
    pending: set[int] = field(default_factory=set)  # seqs not settled: due from their `due_at`, unless leased
    last_seq: int = 0
    last_claim: int = 0
    sightings: dict[str, dict[str, SightingRow]] = field(default_factory=dict)  # delivery id -> hook id -> row
    events: dict[int, EventRow] = field(default_factory=dict)  # by seq
    # releases: the changes each release folds (by delivery id), the folded records, which release a delivery changed
    release_changes: dict[int, dict[str, ReleaseChange]] = field(default_factory=dict)
    releases: dict[int, ReleaseRow] = field(default_factory=dict)
    release_of: dict[str, int] = field(default_factory=dict)
    # the change feed: (kind, ref); a change's sequence number is its index + 1
    changes: list[tuple[str, str]] = field(default_factory=list)
    # forwarding
    jobs: dict[int, JobRow] = field(default_factory=dict)  # by id, in creation order
    jobs_of: dict[tuple[int, str], list[int]] = field(default_factory=dict)  # (delivery seq, destination) -> ids
    last_job: int = 0
    attempts: list[tuple[int, AttemptView]] = field(default_factory=list)  # (delivery seq, attempt), in id order
    stats: dict[str, StatsRow] = field(default_factory=dict)
    pauses: dict[str, DestinationPause] = field(default_factory=dict)  # destination -> its pause
    tests: dict[str, DestinationTest] = field(default_factory=dict)  # destination -> its last test delivery
    # sessions
    revocations: dict[str, float] = field(default_factory=dict)  # session id -> until
    # GitHub's API: reconciliation's gaps and each hook's last run, the repositories whose releases are polled
    gaps: dict[tuple[str, str], Gap] = field(default_factory=dict)  # (hook, delivery id) -> gap
    scans: dict[str, HookScan] = field(default_factory=dict)  # hook -> its last run
    tracked: dict[str, TrackedRepository] = field(default_factory=dict)  # key -> repository
    leases: dict[str, tuple[str, float]] = field(default_factory=dict)  # name -> (holder, until)
    # refused webhook requests
    rejections: dict[RejectionKey, RejectionBucket] = field(default_factory=dict)
    # the audit log
    audit: dict[str, AuditEntry] = field(default_factory=dict)  # id -> entry, in append order
    # wake-ups
    work: Signal = field(default_factory=Signal)  # deliveries may be due
    forward_work: Signal = field(default_factory=Signal)  # forward jobs may be due
    changed: Signal = field(default_factory=Signal)  # the change feed grew

    @contextmanager
    def transaction(self) -> Iterator[MemoryDatabase]:
        """The database, for one atomic operation (no step of which raises once it has changed anything)."""
        with self.lock:
            if self.closed:
                raise StoreUnavailable("the memory backend is closed")
            yield self

    def now(self) -> float:
        return self.clock.now()
