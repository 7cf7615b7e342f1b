"""What one configuration opens: every port the application uses, and the resources behind them.

`ghingest.adapters.factory.open_backend` turns the settings (`GHINGEST_DATABASE_URL`, `GHINGEST_BUS_URL`) into a
`Backend`; nothing outside `ghingest.adapters` names a backend's class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ghingest.ports.audit import AuditLog
from ghingest.ports.feed import ChangeFeed
from ghingest.ports.forwarding import ForwardLog, ForwardQueue
from ghingest.ports.github_sync import GitHubSyncState
from ghingest.ports.inbox import Inbox
from ghingest.ports.reads import Reads
from ghingest.ports.rejections import RejectionLog
from ghingest.ports.sessions import SessionRevocations
from ghingest.ports.store import Store


class Resources(Protocol):
    """Connections, threads and pools behind the ports."""

    def upgrade(self) -> None:
        """Apply the schema migrations (a no-op where there is no schema)."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


@dataclass
class Backend:
    name: str  # e.g. "sqlite", "postgres", "postgres+nats", "memory": for logs and the banner
    inbox: Inbox
    store: Store
    reads: Reads
    feed: ChangeFeed
    forwards: ForwardQueue
    forward_log: ForwardLog
    sessions: SessionRevocations
    github: GitHubSyncState  # what reconciliation and release polling keep of their talks with GitHub's API
    rejections: RejectionLog  # refused webhook requests, aggregated and bounded
    audit: AuditLog  # who started which operator action, and what came of it
    resources: Resources

    async def ready(self, *, intake: bool = True) -> None:
        """Raise `StoreUnavailable` unless this process can do its job: the read side answers (at the schema
        revision this release expects) and a write commits, and with `intake` (it receives or processes
        deliveries) the inbox takes appends. A dashboard is ready while the bus is down; a receiver is not."""
        await self.reads.ping()
        await self.store.ping()
        if intake:
            await self.inbox.ping()
