"""learning loop: sampling metadata (device type, child profile, n-best), training-use consent, exports

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import earmark.models

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clips", schema=None) as batch_op:
        batch_op.add_column(sa.Column("device_asr_alternatives", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("device_type", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("sample_policy", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("child_profile", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("training_use", sa.String(length=8), nullable=True))
    op.create_table(
        "clip_errors",
        sa.Column("clip_id", sa.Integer(), nullable=False),
        sa.Column("annotation_id", sa.Integer(), nullable=False),
        sa.Column("labelled_at", earmark.models.UTCDateTime(), nullable=False),
        sa.Column("locale", sa.String(length=16), nullable=False),
        sa.Column("intent", sa.String(length=64), nullable=False),
        sa.Column("device_type", sa.String(length=32), nullable=False),
        sa.Column("device_intent", sa.String(length=64), nullable=True),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("asr_errors", sa.Integer(), nullable=True),
        sa.Column("asr_words", sa.Integer(), nullable=True),
        sa.Column("intent_right", sa.Integer(), nullable=True),
        sa.Column("slot_tp", sa.Integer(), nullable=False),
        sa.Column("slot_fp", sa.Integer(), nullable=False),
        sa.Column("slot_fn", sa.Integer(), nullable=False),
        sa.Column("corrected", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["clip_id"], ["clips.id"]),
        sa.PrimaryKeyConstraint("clip_id"),
    )
    op.create_table(
        "exports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("audio", sa.String(length=16), nullable=True),
        sa.Column("clips", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("policy", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", earmark.models.UTCDateTime(), nullable=False),
        sa.Column("pruned_at", earmark.models.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_exports_name"), "exports", ["name"], unique=False)
    op.create_table(
        "export_clips",
        sa.Column("export_id", sa.Integer(), nullable=False),
        sa.Column("clip_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["clip_id"], ["clips.id"]),
        sa.ForeignKeyConstraint(["export_id"], ["exports.id"]),
        sa.PrimaryKeyConstraint("export_id", "clip_id"),
    )
    op.create_index(op.f("ix_export_clips_clip_id"), "export_clips", ["clip_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_export_clips_clip_id"), table_name="export_clips")
    op.drop_table("export_clips")
    op.drop_index(op.f("ix_exports_name"), table_name="exports")
    op.drop_table("exports")
    op.drop_table("clip_errors")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("training_use")
    with op.batch_alter_table("clips", schema=None) as batch_op:
        batch_op.drop_column("child_profile")
        batch_op.drop_column("sample_policy")
        batch_op.drop_column("device_type")
        batch_op.drop_column("device_asr_alternatives")
