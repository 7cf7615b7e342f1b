"""Forwarding: the outbox of forward jobs, every attempt, and per-destination counters for the dashboard.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_ACTIVE_FORWARD = "status IN ('pending', 'retry', 'delivering')"


def upgrade() -> None:
    op.create_table(
        "forward_jobs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("delivery_seq", sa.Integer, nullable=False),
        sa.Column("delivery_id", sa.Text, nullable=False),
        sa.Column("destination", sa.Text, nullable=False),
        sa.Column("route", sa.Text),
        sa.Column("generation", sa.Integer, nullable=False, server_default="0"),
        sa.Column("replay", sa.Boolean, nullable=False, server_default="0"),
        sa.Column("status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("next_attempt_at", sa.Float, nullable=False),
        sa.Column("first_attempt_at", sa.Float),
        sa.Column("last_attempt_at", sa.Float),
        sa.Column("last_status_code", sa.Integer),
        sa.Column("last_error", sa.Text),
        sa.Column("completed_at", sa.Float),
        sa.UniqueConstraint("delivery_seq", "destination", "generation", name="uq_forward_jobs_delivery_destination"),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_forward_jobs_due",
        "forward_jobs",
        ["destination", "next_attempt_at"],
        sqlite_where=sa.text(_ACTIVE_FORWARD),
        postgresql_where=sa.text(_ACTIVE_FORWARD),
    )
    op.create_index("ix_forward_jobs_status_destination", "forward_jobs", ["status", "destination", "id"])

    op.create_table(
        "forward_attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.Integer, nullable=False),
        sa.Column("delivery_seq", sa.Integer, nullable=False),
        sa.Column("destination", sa.Text, nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("replay", sa.Boolean, nullable=False, server_default="0"),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("latency", sa.Float, nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("response_excerpt", sa.Text),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_forward_attempts_delivery", "forward_attempts", ["delivery_seq", "id"])

    op.create_table(
        "forward_stats",
        sa.Column("destination", sa.Text, primary_key=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("delivered", sa.Integer, nullable=False, server_default="0"),
        sa.Column("failed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_attempt_at", sa.Float),
        sa.Column("last_success_at", sa.Float),
        sa.Column("last_error", sa.Text),
        sa.Column("last_error_at", sa.Float),
    )


def downgrade() -> None:
    for table in ("forward_stats", "forward_attempts", "forward_jobs"):
        op.drop_table(table)
