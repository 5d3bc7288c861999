"""wake answers (what woke the device, per answered clip, kept past annotation retention), the
program owner's follow-up of safety escalations, and export membership kept after a prune

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import earmark.models

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "wake_answers",
        sa.Column("clip_id", sa.Integer(), nullable=False),
        sa.Column("annotation_id", sa.Integer(), nullable=False),
        sa.Column("answered_at", earmark.models.UTCDateTime(), nullable=False),
        sa.Column("label", sa.String(length=32), nullable=False),
        sa.Column("device_type", sa.String(length=32), nullable=False),
        sa.Column("wake_score", sa.Float(), nullable=True),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["clip_id"], ["clips.id"]),
        sa.PrimaryKeyConstraint("clip_id"),
    )
    op.create_index(op.f("ix_wake_answers_answered_at"), "wake_answers", ["answered_at"], unique=False)
    with op.batch_alter_table("export_clips") as batch:
        batch.add_column(sa.Column("removed_at", earmark.models.UTCDateTime(), nullable=True))
    with op.batch_alter_table("exports") as batch:
        batch.add_column(sa.Column("forgotten_at", earmark.models.UTCDateTime(), nullable=True))
    with op.batch_alter_table("safety_outcomes") as batch:
        batch.add_column(sa.Column("resolution", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("resolved_by", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("resolved_at", earmark.models.UTCDateTime(), nullable=True))
        batch.create_foreign_key("fk_safety_outcomes_resolved_by_users", "users", ["resolved_by"], ["id"])
    # The answers given so far: each answered clip's newest, as the figures counted them before;
    # not an erased clip's, nor one of an account that withdrew (a withdrawal deletes the rows).
    op.execute(
        """
        INSERT INTO wake_answers (clip_id, annotation_id, answered_at, label, device_type, wake_score, weight)
        SELECT a.clip_id, a.id, a.created_at, a.reason, COALESCE(c.device_type, '(unknown)'), c.wake_score,
               CASE WHEN c.inclusion_probability > 0 THEN 1.0 / c.inclusion_probability ELSE 1.0 END
        FROM annotations a
        JOIN clips c ON c.id = a.clip_id
        JOIN accounts acc ON acc.id = c.account_id
        WHERE a.id IN (SELECT MAX(id) FROM annotations WHERE kind = 'wakeword' GROUP BY clip_id)
          AND c.erased_at IS NULL
          AND (acc.human_review IS NULL OR acc.human_review <> 'deny')
        """
    )


def downgrade() -> None:
    # 0008 deleted a pruned clip's row and knew no `gone` export: as it would have left them.
    op.execute("DELETE FROM export_clips WHERE removed_at IS NOT NULL")
    op.execute("UPDATE exports SET state = 'superseded' WHERE state = 'gone'")
    with op.batch_alter_table("export_clips") as batch:
        batch.drop_column("removed_at")
    # Not a batch: SQLite would copy `exports`, which export_clips refers to (DROP COLUMN, 3.35+).
    op.drop_column("exports", "forgotten_at")
    with op.batch_alter_table("safety_outcomes") as batch:
        batch.drop_constraint("fk_safety_outcomes_resolved_by_users", type_="foreignkey")
        batch.drop_column("resolved_at")
        batch.drop_column("resolved_by")
        batch.drop_column("resolution")
    op.drop_index(op.f("ix_wake_answers_answered_at"), table_name="wake_answers")
    op.drop_table("wake_answers")
