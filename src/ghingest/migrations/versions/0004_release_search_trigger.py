"""Keep the release search index only when tag, name or notes really change.

`releases_fts_update` fired on every upsert of a release, since the upsert names tag, name and body in its SET
list even when their values stay the same: each delivery of a release (created, published, released, …) then
deleted and re-tokenised its notes in the FTS index. Most deliveries do not change the text; the trigger now
fires only when one of the three columns differs (measured: docs/adr/0006-ingest-and-processing-throughput.md).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_BODY = (
    " BEGIN INSERT INTO releases_fts(releases_fts, rowid, tag, name, body)"
    " VALUES ('delete', old.id, old.tag, old.name, old.body);"
    " INSERT INTO releases_fts(rowid, tag, name, body) VALUES (new.id, new.tag, new.name, new.body); END"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS releases_fts_update")
        op.execute(
            "CREATE TRIGGER releases_fts_update AFTER UPDATE OF tag, name, body ON releases"
            " WHEN old.tag IS NOT new.tag OR old.name IS NOT new.name OR old.body IS NOT new.body" + _BODY
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS releases_fts_update")
        op.execute("CREATE TRIGGER releases_fts_update AFTER UPDATE OF tag, name, body ON releases" + _BODY)
