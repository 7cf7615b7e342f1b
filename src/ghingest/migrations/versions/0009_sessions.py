"""Dashboard sessions: revoked session ids (sign-outs), so that a signed-out cookie is refused after a restart and
by every process on the database; rows go once the cookie would have expired anyway.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "session_revocations",
        sa.Column("session_id", sa.Text, primary_key=True),
        sa.Column("revoked_at", sa.Float, nullable=False),
        sa.Column("until", sa.Float, nullable=False),
    )
    op.create_index("ix_session_revocations_until", "session_revocations", ["until"])


def downgrade() -> None:
    op.drop_index("ix_session_revocations_until", table_name="session_revocations")
    op.drop_table("session_revocations")
