"""One factory turns the configuration into the ports: the only place that names a backend's class.

`GHINGEST_DATABASE_URL` chooses the store: `sqlite:///path` (the embedded profile, inbox included),
`postgresql://…` or `postgres://…` (every port on PostgreSQL, inbox included), `dynamodb://TABLE` (the AWS
serverless profile: DynamoDB, SNS, SQS and S3, addressed by the `aws_*` settings), or `memory://` (everything in this
process's memory, nothing persists: demonstrations and tests). `GHINGEST_BUS_URL` (comma-separated `nats://`
servers), when set, puts the inbox on NATS JetStream instead: the database backend is opened as without it, its
inbox replaced by the NATS inbox and both resources combined (`postgres+nats`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ghingest.ports.backend import Backend
from ghingest.ports.clock import SYSTEM_CLOCK, Clock
from ghingest.ports.github_api import GitHubApi

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


def open_github_api(settings: Settings, *, clock: Clock = SYSTEM_CLOCK, on_request: Any = None) -> GitHubApi:
    """The GitHub REST client of the configuration: a token (`GHINGEST_GITHUB_TOKEN`), a GitHub App
    (`GHINGEST_GITHUB_APP_ID` and its key: `GHINGEST_GITHUB_APP_PRIVATE_KEY_FILE`, or the PEM text in
    `GHINGEST_GITHUB_APP_PRIVATE_KEY`), or neither (public data only)."""
    from ghingest.adapters.github import AppCredentials, GitHubClient

    app = None
    if settings.github_app_id is not None:
        app = AppCredentials(app_id=settings.github_app_id, private_key=_app_private_key(settings))
    token = settings.github_token.get_secret_value() if settings.github_token is not None else None
    return GitHubClient(
        api_url=settings.github_api_url,
        token=token,
        app=app,
        clock=clock,
        mutation_interval=settings.github_mutation_interval,
        max_wait=settings.github_max_wait,
        on_request=on_request,
    )


def _app_private_key(settings: Settings) -> str:
    """The App's PEM key, from its file or as text (the settings refuse both)."""
    path, text = settings.github_app_private_key_file, settings.github_app_private_key
    if text is not None:
        return text.get_secret_value()
    if path is None:
        raise UnsupportedBackend(
            "GHINGEST_GITHUB_APP_ID needs GHINGEST_GITHUB_APP_PRIVATE_KEY_FILE (the App's PEM key), or its text in"
            " GHINGEST_GITHUB_APP_PRIVATE_KEY"
        )
    try:
        return path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise UnsupportedBackend(
            f"GHINGEST_GITHUB_APP_PRIVATE_KEY_FILE: cannot read {path}: {exc.__class__.__name__}"
        ) from None
