"""What only the PostgreSQL schema has (docs/adr/0014-postgresql-backend.md); nothing changes in SQLite.

- Extensions `unaccent` and `pg_trgm`, and `ghingest_unaccent(text)`: an IMMUTABLE wrapper of `unaccent` with
  its dictionary named, so that an index and a generated column may use it.
- `releases.search`: a generated `tsvector` of tag, name and notes (the `simple` configuration: no stemming, like
  SQLite's unicode61 tokenizer; accents folded), with a GIN index: the release search.
- A GIN trigram index on `releases.repository`: the typeahead's `ILIKE '%text%'` and `LIKE 'text%'`.
- `releases.repository` and `releases.sort_at` compare bytewise (`COLLATE "C"`), as they do in SQLite, whatever
  the database's collation: keyset cursors and prefix ranges then order the same in both.
- `delivery_states.claim`: the claim token (from the sequence `delivery_claims`), so that a stale claim's settle
  or extend changes nothing; `forward_jobs.lease_owner`: which forwarder holds a job's lease, so that `release`
  and `recover` touch only the jobs this forwarder holds (many forwarders share one database).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_EXTENSIONS = ("unaccent", "pg_trgm")


def _create_extension(name: str) -> str:
    """Create extension `name` unless it exists; its schema. Fail with a clear message when it cannot be."""
    bind = op.get_bind()
    schema = bind.execute(
        sa.text("SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = :n"), {"n": name}
    ).scalar()
    if schema is not None:
        return str(schema)
    available = bind.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = :n"), {"n": name}).scalar()
    if available is None:
        raise RuntimeError(
            f"the PostgreSQL extension {name!r} is not installed on the server (Debian/Ubuntu: postgresql-contrib);"
            f" ghingest needs {', '.join(_EXTENSIONS)}"
        )
    try:
        with bind.begin_nested():
            bind.execute(sa.text(f"CREATE EXTENSION IF NOT EXISTS {name}"))
    except sa.exc.DBAPIError as exc:
        raise RuntimeError(
            f"the PostgreSQL extension {name!r} cannot be created ({exc.orig.__class__.__name__}): run"
            f" `CREATE EXTENSION {name};` in this database as a user allowed to, then `ghingest db upgrade` again"
        ) from None
    schema = bind.execute(
        sa.text("SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = :n"), {"n": name}
    ).scalar()
    return str(schema)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    unaccent_schema = _create_extension("unaccent")
    trgm_schema = _create_extension("pg_trgm")
    op.execute(
        "CREATE FUNCTION ghingest_unaccent(text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS"
        f" $$ SELECT {unaccent_schema}.unaccent('{unaccent_schema}.unaccent'::regdictionary, $1) $$"
    )
    op.execute('ALTER TABLE releases ALTER COLUMN repository TYPE text COLLATE "C"')
    op.execute('ALTER TABLE releases ALTER COLUMN sort_at TYPE text COLLATE "C"')
    op.execute(
        "ALTER TABLE releases ADD COLUMN search tsvector GENERATED ALWAYS AS (to_tsvector('simple'::regconfig,"
        " ghingest_unaccent(coalesce(tag, '') || ' ' || coalesce(name, '') || ' ' || coalesce(body, '')))) STORED"
    )
    op.execute("CREATE INDEX ix_releases_search ON releases USING gin (search)")
    trigrams = f"{trgm_schema}.gin_trgm_ops"
    op.execute(f"CREATE INDEX ix_releases_repository_trgm ON releases USING gin (repository {trigrams})")
    op.execute("CREATE SEQUENCE delivery_claims")
    op.add_column("delivery_states", sa.Column("claim", sa.BigInteger, nullable=False, server_default="0"))
    op.add_column("forward_jobs", sa.Column("lease_owner", sa.Text))


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_column("forward_jobs", "lease_owner")
    op.drop_column("delivery_states", "claim")
    op.execute("DROP SEQUENCE delivery_claims")
    op.execute("DROP INDEX ix_releases_repository_trgm")
    op.execute("DROP INDEX ix_releases_search")
    op.execute("ALTER TABLE releases DROP COLUMN search")
    op.execute("ALTER TABLE releases ALTER COLUMN sort_at TYPE text")
    op.execute("ALTER TABLE releases ALTER COLUMN repository TYPE text")
    op.execute("DROP FUNCTION ghingest_unaccent(text)")
