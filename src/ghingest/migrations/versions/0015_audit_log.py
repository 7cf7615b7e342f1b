"""The audit log (`ghingest.ports.AuditLog`): one row per operator action or sign-in, never changed; listed newest
first, by every entry or by action or actor (an index each).

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("client", sa.Text),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("selection", sa.Text, nullable=False),
        sa.Column("result", sa.Text, nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
    )
    op.create_index("ix_audit_log_sort", "audit_log", ["at", "id"])
    op.create_index("ix_audit_log_action_sort", "audit_log", ["action", "at", "id"])
    op.create_index("ix_audit_log_actor_sort", "audit_log", ["actor", "at", "id"])


def downgrade() -> None:
    op.drop_table("audit_log")
