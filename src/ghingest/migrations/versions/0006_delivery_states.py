"""Move what processing changes (status, attempts, lease, error) out of `deliveries` into `delivery_states`.

SQLite rewrites a whole row, overflow pages included, on any update: claiming a delivery and recording its outcome
rewrote its ~8 KB body twice. Now `deliveries` is written once and never updated; a trigger creates the small
state row in the same statement as the append, so the receiver's one durable INSERT is unchanged.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_STATE_COLUMNS = ("status", "attempts", "next_attempt_at", "lease_until", "processed_at", "error")


def upgrade() -> None:
    op.create_table(
        "delivery_states",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("status", sa.Text, nullable=False, server_default="received"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.Float, nullable=False, server_default="0"),
        sa.Column("lease_until", sa.Float, nullable=False, server_default="0"),
        sa.Column("processed_at", sa.Float),
        sa.Column("error", sa.Text),
    )
    columns = ", ".join(_STATE_COLUMNS)
    op.execute(f"INSERT INTO delivery_states (seq, {columns}) SELECT seq, {columns} FROM deliveries")  # noqa: S608
    op.drop_index("ix_deliveries_pending", table_name="deliveries")
    op.drop_index("ix_deliveries_status_seq", table_name="deliveries")
    if op.get_bind().dialect.name == "sqlite":
        for column in _STATE_COLUMNS:  # SQLite >= 3.35 drops a column in place, without copying the table
            op.execute(f"ALTER TABLE deliveries DROP COLUMN {column}")
        op.execute(
            "CREATE TRIGGER deliveries_state AFTER INSERT ON deliveries BEGIN"
            " INSERT INTO delivery_states (seq) VALUES (new.seq); END"
        )
    else:
        for column in _STATE_COLUMNS:
            op.drop_column("deliveries", column)
    op.create_index(
        "ix_delivery_states_pending",
        "delivery_states",
        ["seq"],
        sqlite_where=sa.text("status = 'received'"),
        postgresql_where=sa.text("status = 'received'"),
    )
    op.create_index("ix_delivery_states_status_seq", "delivery_states", ["status", "seq"])


def downgrade() -> None:
    raise NotImplementedError("0006 is not reversible: restore the database from a backup instead")
