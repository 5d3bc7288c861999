"""key state: the workspace key new account keys are wrapped under, as the database knows it

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 04:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import earmark.models

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "key_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("active_key_id", sa.String(length=32), nullable=True),
        sa.Column("changed_at", earmark.models.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    # The row exists from the start, so the first rotation and a first wrap lock the same row.
    op.bulk_insert(table, [{"id": 1, "active_key_id": None, "changed_at": None}])


def downgrade() -> None:
    op.drop_table("key_state")
