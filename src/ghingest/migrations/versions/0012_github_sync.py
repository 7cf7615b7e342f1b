"""What ghingest keeps of its conversations with GitHub's REST API (`ghingest.ports.GitHubSyncState`).

- `github_gaps`: the deliveries GitHub lists for a hook that ghingest did not record from it, and the redeliveries
  requested for them, keyed (hook, delivery id); indexed for the newest-first list (all, or by state) and for each
  hook's open gaps (a partial index: missing or requested).
- `github_hook_scans`: each hook's last reconciliation run.
- `tracked_repositories`: repositories whose releases are polled, with the last poll's ETag and what it found.

On PostgreSQL the text keys compare bytewise (`COLLATE "C"`), as they do in SQLite and in the other backends, so
that the lists and their keyset cursors order the same everywhere (as `releases.repository` since 0010).

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_OPEN_GAP = "state IN ('missing', 'requested')"


def _key() -> sa.Text:
    """A text key: bytewise on PostgreSQL (SQLite's text compares bytewise already)."""
    return sa.Text(collation="C") if op.get_bind().dialect.name == "postgresql" else sa.Text()


def upgrade() -> None:
    op.create_table(
        "github_gaps",
        sa.Column("hook", _key(), primary_key=True),
        sa.Column("delivery_id", _key(), primary_key=True),
        sa.Column("github_id", sa.BigInteger, nullable=False),
        sa.Column("event", sa.Text, nullable=False),
        sa.Column("action", sa.Text),
        sa.Column("delivered_at", sa.Float, nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("github_status", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("found_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column("last_requested_at", sa.Float),
        sa.Column("arrived_at", sa.Float),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_github_gaps_sort", "github_gaps", ["delivered_at", "hook", "delivery_id"])
    op.create_index("ix_github_gaps_state_sort", "github_gaps", ["state", "delivered_at", "hook", "delivery_id"])
    op.create_index(
        "ix_github_gaps_open",
        "github_gaps",
        ["hook", "delivered_at", "delivery_id"],
        sqlite_where=sa.text(_OPEN_GAP),
        postgresql_where=sa.text(_OPEN_GAP),
    )
    op.create_table(
        "github_hook_scans",
        sa.Column("hook", _key(), primary_key=True),
        sa.Column("last_run_at", sa.Float, nullable=False),
        sa.Column("last_ok_at", sa.Float),
        sa.Column("error", sa.Text),
        sa.Column("newest_seen_at", sa.Float),
        sa.Column("deliveries_seen", sa.Integer, nullable=False),
        sa.Column("requests_made", sa.Integer, nullable=False),
    )
    op.create_table(
        "tracked_repositories",
        sa.Column("key", _key(), primary_key=True),
        sa.Column("full_name", sa.Text, nullable=False),
        sa.Column("added_at", sa.Float, nullable=False),
        sa.Column("added_by", sa.Text, nullable=False),
        sa.Column("repository_id", sa.BigInteger),
        sa.Column("etag", sa.Text),
        sa.Column("known", sa.Text, nullable=False),
        sa.Column("last_polled_at", sa.Float),
        sa.Column("last_status", sa.Integer),
        sa.Column("last_changed_at", sa.Float),
        sa.Column("last_error", sa.Text),
        sa.Column("next_poll_at", sa.Float, nullable=False),
        sa.Column("polls", sa.Integer, nullable=False),
        sa.Column("not_modified", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tracked_repositories")
    op.drop_table("github_hook_scans")
    op.drop_index("ix_github_gaps_open", table_name="github_gaps")
    op.drop_index("ix_github_gaps_state_sort", table_name="github_gaps")
    op.drop_index("ix_github_gaps_sort", table_name="github_gaps")
    op.drop_table("github_gaps")
