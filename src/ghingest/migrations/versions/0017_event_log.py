"""The event log's filters and the overview's counts, index-backed: events by sender and by time of receipt (with
the status, so that the overview's counts per hour read the index alone), forward jobs by destination and status
(the events forwarded there), and dead-lettered jobs by when they died.

`events.sender` (the payload's `sender.login`) has been recorded since the first revision: no backfill.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_DEAD = sa.text("status = 'dead'")


def upgrade() -> None:
    op.create_index("ix_events_sender_seq", "events", ["sender", "seq"])
    op.create_index("ix_events_received_status", "events", ["received_at", "status"])
    op.create_index("ix_forward_jobs_destination_status_seq", "forward_jobs", ["destination", "status", "delivery_seq"])
    op.create_index("ix_forward_jobs_status_seq", "forward_jobs", ["status", "delivery_seq"])
    op.create_index(
        "ix_forward_jobs_dead_at", "forward_jobs", ["completed_at"], sqlite_where=_DEAD, postgresql_where=_DEAD
    )


def downgrade() -> None:
    for name, table in (
        ("ix_forward_jobs_dead_at", "forward_jobs"),
        ("ix_forward_jobs_status_seq", "forward_jobs"),
        ("ix_forward_jobs_destination_status_seq", "forward_jobs"),
        ("ix_events_received_status", "events"),
        ("ix_events_sender_seq", "events"),
    ):
        op.drop_index(name, table_name=table)
