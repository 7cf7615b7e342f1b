"""Refused webhook requests (`ghingest.ports.RejectionLog`): one row per bucket of (minute, reason, client, event,
hook id) with its count, first and last time and newest delivery id. The primary key is the list's order (newest
minute first); the adapters keep the table bounded (by age and by row count) on every batch they record.

On PostgreSQL the text keys compare bytewise (`COLLATE "C"`), as they do in SQLite and the other backends, so that
the list and its keyset cursor order the same everywhere.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def _key() -> sa.Text:
    return sa.Text(collation="C") if op.get_bind().dialect.name == "postgresql" else sa.Text()


def upgrade() -> None:
    op.create_table(
        "rejections",
        sa.Column("minute", sa.BigInteger, primary_key=True),
        sa.Column("reason", _key(), primary_key=True),
        sa.Column("client", _key(), primary_key=True),
        sa.Column("event", _key(), primary_key=True),
        sa.Column("hook_id", _key(), primary_key=True),
        sa.Column("delivery_id", sa.Text, nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("first_at", sa.Float, nullable=False),
        sa.Column("last_at", sa.Float, nullable=False),
        sa.Column("aggregated", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rejections")
