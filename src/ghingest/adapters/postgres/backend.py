"""`open_postgres_backend`: every port on one PostgreSQL database, sharing one `PostgresResources`.

The ports are independent objects: a configuration may take the inbox from elsewhere (a NATS JetStream inbox
beside a PostgreSQL store) and leave `PostgresInbox` unused; the store then records the raw deliveries itself.
"""

from __future__ import annotations

from ghingest.adapters.postgres.audit import PostgresAuditLog
from ghingest.adapters.postgres.connection import PostgresResources
from ghingest.adapters.postgres.feed import PostgresChangeFeed
from ghingest.adapters.postgres.forwarding import PostgresForwardLog, PostgresForwardQueue
from ghingest.adapters.postgres.github_sync import PostgresGitHubSyncState
from ghingest.adapters.postgres.inbox import PostgresInbox
from ghingest.adapters.postgres.reads import PostgresReads
from ghingest.adapters.postgres.rejections import PostgresRejectionLog
from ghingest.adapters.postgres.sessions import PostgresSessionRevocations
from ghingest.adapters.postgres.store import PostgresStore
from ghingest.ports.backend import Backend
from ghingest.ports.clock import SYSTEM_CLOCK, Clock


def open_postgres_backend(
    url: str,
    *,
    pool_size: int = 10,
    clock: Clock = SYSTEM_CLOCK,
    pool_timeout: float = 5.0,
    poll_interval: float = 1.0,
) -> Backend:
    """A backend on the database at `url` (`postgresql://` or `postgres://`). Nothing connects until
    `resources.start()`; `resources.upgrade()` migrates (synchronously, as `ghingest db upgrade` does).

    `pool_size`: connections per process (`GHINGEST_DATABASE_POOL_SIZE`); `pool_timeout`: how long a port waits for
    a connection before it raises `StoreUnavailable`; `poll_interval`: how often waiters look while the LISTEN
    connection is down."""
    resources = PostgresResources(
        url, pool_size=pool_size, clock=clock, pool_timeout=pool_timeout, poll_interval=poll_interval
    )
    return Backend(
        name="postgres",
        inbox=PostgresInbox(resources),
        store=PostgresStore(resources),
        reads=PostgresReads(resources),
        feed=PostgresChangeFeed(resources),
        forwards=PostgresForwardQueue(resources),
        forward_log=PostgresForwardLog(resources),
        sessions=PostgresSessionRevocations(resources),
        github=PostgresGitHubSyncState(resources),
        rejections=PostgresRejectionLog(resources),
        audit=PostgresAuditLog(resources),
        resources=resources,
    )
