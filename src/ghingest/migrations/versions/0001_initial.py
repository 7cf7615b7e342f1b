"""Initial schema: the inbox (deliveries), events, releases with their changes, and the change feed.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("delivery_id", sa.Text, nullable=False, unique=True),
        sa.Column("event", sa.Text, nullable=False),
        sa.Column("hook_id", sa.Text),
        sa.Column("content_kind", sa.Text, nullable=False),
        sa.Column("headers", sa.Text, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("secret_index", sa.Integer, nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="received"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.Float, nullable=False, server_default="0"),
        sa.Column("lease_until", sa.Float, nullable=False, server_default="0"),
        sa.Column("processed_at", sa.Float),
        sa.Column("error", sa.Text),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_deliveries_pending",
        "deliveries",
        ["seq"],
        sqlite_where=sa.text("status = 'received'"),
        postgresql_where=sa.text("status = 'received'"),
    )
    op.create_index("ix_deliveries_received_at", "deliveries", ["received_at"])
    op.create_index("ix_deliveries_status_seq", "deliveries", ["status", "seq"])

    op.create_table(
        "events",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("delivery_id", sa.Text, nullable=False, unique=True),
        sa.Column("event", sa.Text, nullable=False),
        sa.Column("action", sa.Text),
        sa.Column("repository", sa.Text),
        sa.Column("organization", sa.Text),
        sa.Column("sender", sa.Text),
        sa.Column("installation_id", sa.BigInteger),
        sa.Column("hook_id", sa.BigInteger),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("processed_at", sa.Float),
    )
    op.create_index("ix_events_event_seq", "events", ["event", "seq"])
    op.create_index("ix_events_repository_seq", "events", ["repository", "seq"])
    op.create_index("ix_events_status_seq", "events", ["status", "seq"])
    op.create_index("ix_events_action_seq", "events", ["action", "seq"])

    op.create_table(
        "releases",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("repository", sa.Text),
        sa.Column("tag", sa.Text),
        sa.Column("name", sa.Text),
        sa.Column("author_login", sa.Text),
        sa.Column("author_avatar_url", sa.Text),
        sa.Column("draft", sa.Boolean, nullable=False),
        sa.Column("prerelease", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Text),
        sa.Column("published_at", sa.Text),
        sa.Column("html_url", sa.Text),
        sa.Column("body", sa.Text),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("sort_at", sa.Text, nullable=False),
        sa.Column("content_ts", sa.Text, nullable=False),
        sa.Column("content_seq", sa.Integer, nullable=False),
        sa.Column("first_seen_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_releases_sort", "releases", ["sort_at", "id"])
    op.create_index("ix_releases_repository_sort", "releases", ["repository", "sort_at", "id"])
    op.create_index("ix_releases_state_sort", "releases", ["state", "sort_at", "id"])

    op.create_table(
        "release_changes",
        sa.Column("delivery_id", sa.Text, primary_key=True),
        sa.Column("release_id", sa.BigInteger, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("order_ts", sa.Text, nullable=False),
        sa.Column("order_seq", sa.Integer, nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("content", sa.Text, nullable=False),
    )
    op.create_index("ix_release_changes_release", "release_changes", ["release_id"])

    op.create_table(
        "changes",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("ref", sa.Text, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    for table in ("changes", "release_changes", "releases", "events", "deliveries"):
        op.drop_table(table)
