"""The dashboard's events page filters by event type and action together: one index serves that pair in order.

Without it, a rare pair (e.g. `push` + `opened`) walks every event of the type to find none. The index is partial
(`action IS NOT NULL`), so that a query on the event type alone keeps using `ix_events_event_seq`, already in `seq`
order: SQLite uses a partial index only when the query implies its condition, and `action = ?` does.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_events_event_action_seq",
        "events",
        ["event", "action", "seq"],
        sqlite_where=sa.text("action IS NOT NULL"),
        postgresql_where=sa.text("action IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_events_event_action_seq", table_name="events")
