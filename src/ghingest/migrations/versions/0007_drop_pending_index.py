"""Drop `ix_delivery_states_pending`: `ix_delivery_states_status_seq` (status, seq) serves the claim query too.

SQLite's planner chose the (status, seq) index for the claim all along; the partial index only cost a B-tree
insert per appended delivery and a delete per processed one, on the writer thread that acknowledges deliveries.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_delivery_states_pending", table_name="delivery_states")


def downgrade() -> None:
    op.create_index(
        "ix_delivery_states_pending",
        "delivery_states",
        ["seq"],
        sqlite_where=sa.text("status = 'received'"),
        postgresql_where=sa.text("status = 'received'"),
    )
