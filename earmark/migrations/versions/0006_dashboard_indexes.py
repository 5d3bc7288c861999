"""dashboard indexes: reviews closed per hour, a reviewer's day

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 09:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.create_index("ix_assignments_state_closed", ["state", "closed_at"], unique=False)
    with op.batch_alter_table("annotations", schema=None) as batch_op:
        batch_op.create_index("ix_annotations_user_created", ["user_id", "created_at", "ms"], unique=False)
        batch_op.create_index("ix_annotations_kind_clip", ["kind", "clip_id"], unique=False)
        batch_op.create_index("ix_annotations_gold", ["gold_correct", "user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("annotations", schema=None) as batch_op:
        batch_op.drop_index("ix_annotations_gold")
        batch_op.drop_index("ix_annotations_kind_clip")
        batch_op.drop_index("ix_annotations_user_created")
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.drop_index("ix_assignments_state_closed")
