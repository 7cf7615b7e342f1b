"""Apply the schema migrations (Alembic) to a database URL."""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool

from ghingest.core.errors import StoreUnavailable


def sqlalchemy_url(url: str) -> str:
    """The SQLAlchemy URL of a database URL: `postgresql://` and `postgres://` use the psycopg (3) driver."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url.removeprefix(scheme)
    return url


def _config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", "ghingest:migrations")
    # Alembic's Config interpolates `%`: a percent-encoded password (`p%40ss`) must reach SQLAlchemy as it is.
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(_config(url), revision)


def current_revision(url: str) -> str | None:
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


@functools.cache
def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config("sqlite://")).get_current_head()


def require_head(version: object) -> None:
    """Raise `StoreUnavailable` unless `version` (the database's) is the revision this release expects."""
    expected = head_revision()
    if version != expected:
        raise StoreUnavailable(f"the schema is at revision {version}, not {expected}: run `ghingest db upgrade`")
