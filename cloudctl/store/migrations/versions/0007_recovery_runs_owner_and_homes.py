"""recovery runs: who started them and which process runs them; placement homes

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
    with op.batch_alter_table("recovery_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("started_by", sa.String(length=200), server_default="", nullable=False))
        batch_op.add_column(sa.Column("owner", sa.String(length=200), server_default="", nullable=False))
        batch_op.add_column(sa.Column("heartbeat_at", sa.Float(), nullable=True))
    op.create_table(
        "placement_homes",
        sa.Column("workload_id", sa.String(length=40), nullable=False),
        sa.Column("center", sa.String(length=40), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.PrimaryKeyConstraint("workload_id", "center", name=op.f("pk_placement_homes")),
    )


def downgrade() -> None:
    op.drop_table("placement_homes")
    with op.batch_alter_table("recovery_runs", schema=None) as batch_op:
        batch_op.drop_column("heartbeat_at")
        batch_op.drop_column("owner")
        batch_op.drop_column("started_by")
