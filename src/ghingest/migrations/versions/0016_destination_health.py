"""Destination health and control (ADR 0024): `forward_destinations` (an operator's pause, the last test delivery)
and the index that reads a destination's attempts by time (its health windows, its most recent attempts).

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "forward_destinations",
        sa.Column("destination", sa.Text, primary_key=True),
        sa.Column("paused_by", sa.Text),
        sa.Column("paused_at", sa.Float),
        sa.Column("test_delivery_id", sa.Text),
        sa.Column("test_by", sa.Text),
        sa.Column("test_at", sa.Float),
        sa.Column("test_latency", sa.Float),
        sa.Column("test_status_code", sa.Integer),
        sa.Column("test_error", sa.Text),
        sa.Column("test_excerpt", sa.Text),
    )
    op.create_index("ix_forward_attempts_destination_started", "forward_attempts", ["destination", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_forward_attempts_destination_started", table_name="forward_attempts")
    op.drop_table("forward_destinations")
