"""`delivery_sightings.same_body` may be NULL: not known, because the delivery itself was not recorded yet when this
hook's copy arrived (its inbox is a broker's, and the store records a delivery with its first outcome).

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("delivery_sightings") as batch:
        batch.alter_column("same_body", existing_type=sa.Boolean, nullable=True)


def downgrade() -> None:
    op.execute("UPDATE delivery_sightings SET same_body = FALSE WHERE same_body IS NULL")
    with op.batch_alter_table("delivery_sightings") as batch:
        batch.alter_column("same_body", existing_type=sa.Boolean, nullable=False)
