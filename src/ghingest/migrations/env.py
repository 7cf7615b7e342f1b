"""Alembic environment: migrations run against the URL the caller puts in the Alembic config.

The same revisions build the SQLite and the PostgreSQL schema: what only one dialect has (SQLite's FTS5 table and
triggers; PostgreSQL's extensions, tsvector column, trigram index and lease columns in 0010) is created in a branch
on `op.get_bind().dialect.name`. Batch mode (copy-and-move tables) is SQLite's way of altering tables only.

On PostgreSQL the migrations run under a transaction-scoped advisory lock: processes started at once (N receivers,
each migrating first) apply them one after the other, and every one after the first finds nothing left to do
(docs/adr/0015-scale-out-processes.md). SQLite's single writer serialises them already.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text

from ghingest.adapters.sql.schema import metadata

MIGRATION_LOCK = 0x67686902  # pg_advisory_xact_lock(bigint): one migrating process at a time

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url, "ghingest.adapters.sql.migrate sets sqlalchemy.url"

if context.is_offline_mode():
    context.configure(url=url, target_metadata=metadata, literal_binds=True, render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                connection.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
            context.run_migrations()
    engine.dispose()
