"""Full-text search over release tag, name and notes (SQLite FTS5, kept in step by triggers).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_SQLITE_UP = (
    "CREATE VIRTUAL TABLE releases_fts USING fts5(tag, name, body, content='releases', content_rowid='id',"
    " tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER releases_fts_insert AFTER INSERT ON releases BEGIN"
    " INSERT INTO releases_fts(rowid, tag, name, body) VALUES (new.id, new.tag, new.name, new.body); END",
    "CREATE TRIGGER releases_fts_delete AFTER DELETE ON releases BEGIN"
    " INSERT INTO releases_fts(releases_fts, rowid, tag, name, body)"
    " VALUES ('delete', old.id, old.tag, old.name, old.body); END",
    "CREATE TRIGGER releases_fts_update AFTER UPDATE OF tag, name, body ON releases BEGIN"
    " INSERT INTO releases_fts(releases_fts, rowid, tag, name, body)"
    " VALUES ('delete', old.id, old.tag, old.name, old.body);"
    " INSERT INTO releases_fts(rowid, tag, name, body) VALUES (new.id, new.tag, new.name, new.body); END",
    "INSERT INTO releases_fts(releases_fts) VALUES ('rebuild')",
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for statement in _SQLITE_UP:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("releases_fts_insert", "releases_fts_delete", "releases_fts_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS releases_fts")
