"""Byte-bounded claims, schema warnings on events, and every hook's sighting of a delivery id.

- `delivery_states.size`: the body's length, set by the append trigger, so that a claim can stop at a byte
  budget without touching the deliveries' rows (the worker's claim is bounded by bytes as well as by count).
- `events.shape_warning`: how a payload does not fit its event's published schema (the event is still processed).
- `delivery_sightings`: each (delivery id, hook id) that delivered a delivery id already recorded. GitHub gives
  every hook subscribed to an event the same `X-GitHub-Delivery`; the first delivery is recorded, the others
  are answered as duplicates and counted here, so no hook's delivery disappears silently
  (docs/adr/0010-dedupe-key.md).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("delivery_states", sa.Column("size", sa.Integer, nullable=False, server_default="0"))
    op.add_column("events", sa.Column("shape_warning", sa.Text))
    op.create_table(
        "delivery_sightings",
        sa.Column("delivery_id", sa.Text, primary_key=True),
        sa.Column("hook_id", sa.Text, primary_key=True),  # '' when the request named no hook
        sa.Column("first_at", sa.Float, nullable=False),
        sa.Column("last_at", sa.Float, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("same_body", sa.Boolean, nullable=False),  # the body was byte-for-byte the recorded one's
        sa.Column("secret_index", sa.Integer, nullable=False),
    )
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER deliveries_state")
        op.execute(
            "CREATE TRIGGER deliveries_state AFTER INSERT ON deliveries BEGIN"
            " INSERT INTO delivery_states (seq, size) VALUES (new.seq, length(new.body)); END"
        )
        op.execute(
            "UPDATE delivery_states SET size ="
            " (SELECT length(body) FROM deliveries d WHERE d.seq = delivery_states.seq) WHERE status = 'received'"
        )


def downgrade() -> None:
    raise NotImplementedError("0008 is not reversible: restore the database from a backup instead")
