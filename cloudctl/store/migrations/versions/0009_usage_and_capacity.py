"""usage hours, usage passes and capacity samples (showback and capacity forecast)

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
        "usage_hours",
        sa.Column("hour", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("node_id", sa.String(length=40), nullable=False),
        sa.Column("center", sa.String(length=40), nullable=False),
        sa.Column("tier", sa.String(length=40), nullable=False),
        sa.Column("resource", sa.String(length=20), nullable=False),
        sa.Column("allocated", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("consumed", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "allocated >= 0 AND (consumed IS NULL OR consumed >= 0)",
            name=op.f("ck_usage_hours_usage_not_negative"),
        ),
        sa.PrimaryKeyConstraint("hour", "node_id", "center", "tier", "resource", name=op.f("pk_usage_hours")),
    )
    op.create_table(
        "usage_passes",
        sa.Column("hour", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("recorded_at", sa.Float(), nullable=False),
        sa.Column("consumed_observed", sa.Boolean(), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("hour", name=op.f("pk_usage_passes")),
    )
    op.create_table(
        "capacity_samples",
        sa.Column("hour", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("center", sa.String(length=40), nullable=False),
        sa.Column("resource", sa.String(length=20), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("allocated", sa.BigInteger(), nullable=False),
        sa.Column("used", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("hour", "center", "resource", name=op.f("pk_capacity_samples")),
    )


def downgrade() -> None:
    op.drop_table("capacity_samples")
    op.drop_table("usage_passes")
    op.drop_table("usage_hours")
