"""One factory turns the configuration into the ports: the only place that names a backend's class.

`GHINGEST_DATABASE_URL` chooses the store: `sqlite:///path` (the embedded profile, inbox included),
`postgresql://…` or `postgres://…` (every port on PostgreSQL, inbox included), `dynamodb://TABLE` (the AWS
serverless profile: DynamoDB, SNS, SQS and S3, addressed by the `aws_*` settings), or `memory://` (everything in this
process's memory, nothing persists: demonstrations and tests). `GHINGEST_BUS_URL` (comma-separated `nats://`
servers), when set, puts the inbox on NATS JetStream instead: the database backend is opened as without it, its
inbox replaced by the NATS inbox and both resources combined (`postgres+nats`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ghingest.ports.backend import Backend
from ghingest.ports.clock import SYSTEM_CLOCK, Clock

if TYPE_CHECKING:
    from ghingest.app.settings import Settings


class UnsupportedBackend(ValueError):
    """The configuration names a backend this build cannot open."""


def open_backend(settings: Settings, *, clock: Clock = SYSTEM_CLOCK) -> Backend:
    backend = _open_database(settings, clock=clock)
    if not settings.bus_url:
        return backend
    if not backend.store.capabilities.foreign_inbox:
        raise UnsupportedBackend(
            f"GHINGEST_BUS_URL: the {backend.name} store keeps its own inbox; put the store on PostgreSQL"
            " (GHINGEST_DATABASE_URL=postgresql://…) to use NATS JetStream"
        )
    try:
        from ghingest.adapters.nats import open_nats_inbox, with_nats_inbox
    except ImportError:  # pragma: no cover - the [nats] extra is not installed
        raise UnsupportedBackend("GHINGEST_BUS_URL: install the [nats] extra (nats-py)") from None
    return with_nats_inbox(backend, *open_nats_inbox(settings, clock=clock))


def _open_database(settings: Settings, *, clock: Clock) -> Backend:
    url = settings.database_url
    if url.startswith("sqlite:///"):
        from ghingest.adapters.sqlite.database import SqliteDatabase

        database = SqliteDatabase(
            url, synchronous=settings.sqlite_synchronous, busy_timeout=settings.sqlite_busy_timeout, clock=clock
        )
        return database.backend()
    if url.startswith(("postgresql://", "postgres://")):
        from ghingest.adapters.postgres import open_postgres_backend

        return open_postgres_backend(url, pool_size=settings.database_pool_size, clock=clock)
    if url.startswith("dynamodb://"):
        try:
            from ghingest.adapters.aws import open_aws_backend
            from ghingest.adapters.aws.options import options_from_settings
        except ImportError:  # pragma: no cover - the [aws] extra is not installed
            raise UnsupportedBackend(
                "GHINGEST_DATABASE_URL: dynamodb:// needs boto3: install the [aws] extra"
            ) from None

        return open_aws_backend(options_from_settings(settings), clock=clock)
    if url.startswith("memory:"):
        from ghingest.adapters.memory import open_memory_backend

        return open_memory_backend(url, clock=clock)
    raise UnsupportedBackend(f"GHINGEST_DATABASE_URL: no backend for {url.split(':', 1)[0]!r} URLs")
