"""A fresh PostgreSQL database per test, from a template migrated once per session.

`GHINGEST_TEST_POSTGRES_URL` names the server (default: postgresql://postgres@127.0.0.1:5432/postgres, the
maintenance database, on which the test databases are created and dropped). Without a reachable server the tests
that need one are skipped, or fail when the `CI` environment variable is set (CI must not skip them silently).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import secrets
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# Read once, at import: every test runs with the GHINGEST_* variables scrubbed (tests/conftest.py).
_SERVER_URL = os.environ.get("GHINGEST_TEST_POSTGRES_URL", DEFAULT_URL)
_lock = threading.Lock()
_template: str | None = None


def server_url() -> str:
    return _SERVER_URL


def database_url(name: str) -> str:
    """The server's URL with another database."""
    parts = urlsplit(server_url())
    return urlunsplit(parts._replace(path=f"/{name}"))


@functools.cache
def _unreachable() -> str | None:
    """Why the server cannot be used (None: it can)."""
    try:
        with psycopg.connect(server_url(), connect_timeout=3, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"no PostgreSQL at GHINGEST_TEST_POSTGRES_URL ({exc.__class__.__name__}): set it to a server's URL"
    return None


def require_postgres() -> None:
    """Skip the calling test without a server (fail under CI)."""
    reason = _unreachable()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def admin() -> psycopg.Connection[tuple[object, ...]]:
    """An autocommit connection to the maintenance database (CREATE and DROP DATABASE)."""
    return psycopg.connect(server_url(), connect_timeout=5, autocommit=True)


def _template_database() -> str:
    """The migrated template (made once per session, dropped when the session ends)."""
    global _template
    with _lock:
        if _template is None:
            from ghingest.adapters.sql import migrate

            name = f"ghingest_template_{secrets.token_hex(4)}"
            with admin() as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            atexit.register(drop_database, name)
            migrate.upgrade(database_url(name))
            _template = name
        return _template


def create_database() -> str:
    """A new database with the migrated schema and nothing in it; its name."""
    require_postgres()
    template = _template_database()
    name = f"ghingest_test_{secrets.token_hex(6)}"
    with admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return name


def drop_database(name: str) -> None:
    with contextlib.suppress(psycopg.Error), admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """The URL of a new, migrated, empty database, dropped afterwards."""
    name = create_database()
    try:
        yield database_url(name)
    finally:
        drop_database(name)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url
