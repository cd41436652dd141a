"""replication points of a workload's object data: a kind per point

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
    # Every point recorded so far is a volume snapshot's.
    with op.batch_alter_table("replication_points", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=20), server_default="volume", nullable=False))


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM replication_points WHERE kind <> 'volume'"))
    with op.batch_alter_table("replication_points", schema=None) as batch_op:
        batch_op.drop_column("kind")
