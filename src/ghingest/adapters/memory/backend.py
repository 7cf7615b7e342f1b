"""`memory://`: every port in one `MemoryDatabase`, nothing persisted."""

from __future__ import annotations

from ghingest.adapters.memory.audit import MemoryAuditLog
from ghingest.adapters.memory.feed import MemoryChangeFeed
from ghingest.adapters.memory.forwarding import MemoryForwardLog, MemoryForwardQueue
from ghingest.adapters.memory.github_sync import MemoryGitHubSyncState
from ghingest.adapters.memory.inbox import MemoryInbox
from ghingest.adapters.memory.reads import MemoryReads
from ghingest.adapters.memory.rejections import MemoryRejectionLog
from ghingest.adapters.memory.sessions import MemorySessionRevocations
from ghingest.adapters.memory.store import MemoryStore
from ghingest.adapters.memory.tables import MemoryDatabase
from ghingest.ports import SYSTEM_CLOCK, Backend, Clock


class MemoryResources:
    """No schema, no connections: closing makes every port raise `StoreUnavailable` (and wakes every waiter)."""

    def __init__(self, database: MemoryDatabase) -> None:
        self._db = database

    def upgrade(self) -> None:
        pass

    async def start(self) -> None:
        with self._db.lock:
            self._db.closed = False

    async def close(self) -> None:
        with self._db.lock:
            self._db.closed = True
        for signal in (self._db.work, self._db.forward_work, self._db.changed):
            signal.notify()


def open_memory_backend(url: str = "memory://", *, clock: Clock = SYSTEM_CLOCK) -> Backend:
    """A new, empty in-memory backend (`url` is only checked: `memory://`, nothing after it)."""
    if url.rstrip("/") != "memory:":
        raise ValueError(f"not a memory backend URL: {url!r} (expected memory://)")
    database = MemoryDatabase(clock=clock)
    return Backend(
        name="memory",
        inbox=MemoryInbox(database),
        store=MemoryStore(database),
        reads=MemoryReads(database),
        feed=MemoryChangeFeed(database),
        forwards=MemoryForwardQueue(database),
        forward_log=MemoryForwardLog(database),
        sessions=MemorySessionRevocations(database),
        github=MemoryGitHubSyncState(database),
        rejections=MemoryRejectionLog(database),
        audit=MemoryAuditLog(database),
        resources=MemoryResources(database),
    )
