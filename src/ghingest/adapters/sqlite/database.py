"""The embedded SQLite backend: one database file holding the inbox, the store, the change feed, the forward
queue, the dashboard's session revocations, the audit log and what ghingest keeps of its conversations with
GitHub's API."""

from __future__ import annotations

from pathlib import Path

from ghingest.adapters.sql import migrate
from ghingest.adapters.sqlite.audit import SqliteAuditLog
from ghingest.adapters.sqlite.connection import Synchronous, path_from_url
from ghingest.adapters.sqlite.feed import SqliteChangeFeed
from ghingest.adapters.sqlite.forward_queue import SqliteForwardLog, SqliteForwardQueue
from ghingest.adapters.sqlite.github_sync import SqliteGitHubSyncState
from ghingest.adapters.sqlite.inbox import SqliteInbox
from ghingest.adapters.sqlite.notifier import Notifier
from ghingest.adapters.sqlite.reader import SqliteReader
from ghingest.adapters.sqlite.reads import SqliteReads
from ghingest.adapters.sqlite.rejections import SqliteRejectionLog
from ghingest.adapters.sqlite.sessions import SqliteSessionRevocations
from ghingest.adapters.sqlite.store import SqliteStore
from ghingest.adapters.sqlite.writer import BUSY_TIMEOUT, SqliteWriter
from ghingest.ports.backend import Backend
from ghingest.ports.clock import SYSTEM_CLOCK, Clock


class SqliteDatabase:
    """Owns the writer thread and the read pool; hands out the port implementations built on them."""

    def __init__(
        self,
        url: str,
        *,
        synchronous: Synchronous = "FULL",
        busy_timeout: float = BUSY_TIMEOUT,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.url = url
        self.path: Path = path_from_url(url)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.writer = SqliteWriter(self.path, synchronous=synchronous, busy_timeout=busy_timeout)
        self.reader = SqliteReader(self.path)
        self.work = Notifier()
        self.changed = Notifier()
        self.forward_work = Notifier()
        self.inbox = SqliteInbox(self.writer, self.reader, self.work, clock=clock)
        self.store = SqliteStore(self.writer, self.changed, self.forward_work, clock=clock)
        self.reads = SqliteReads(self.reader)
        self.forwards = SqliteForwardQueue(self.writer, self.reader, self.forward_work, self.changed, clock=clock)
        self.forward_log = SqliteForwardLog(self.reader, clock=clock)
        self.feed = SqliteChangeFeed(self.reader, self.changed)
        self.sessions = SqliteSessionRevocations(self.writer, self.reader, clock=clock)
        self.github = SqliteGitHubSyncState(self.writer, self.reader, clock=clock)
        self.rejections = SqliteRejectionLog(self.writer, self.reader, clock=clock)
        self.audit = SqliteAuditLog(self.writer, self.reader)

    def upgrade(self) -> None:
        migrate.upgrade(self.url)

    async def start(self) -> None:
        self.writer.start()

    async def close(self) -> None:
        self.writer.close()
        self.reader.close()

    def backend(self) -> Backend:
        return Backend(
            name="sqlite",
            inbox=self.inbox,
            store=self.store,
            reads=self.reads,
            feed=self.feed,
            forwards=self.forwards,
            forward_log=self.forward_log,
            sessions=self.sessions,
            github=self.github,
            rejections=self.rejections,
            audit=self.audit,
            resources=self,
        )
