"""data items and data grants (cross-department sharing)

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "data_items",
        sa.Column("id", sa.String(length=60), nullable=False),
        sa.Column("owner", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("workload_id", sa.String(length=40), nullable=True),
        sa.Column("prefix", sa.String(length=512), nullable=True),
        sa.Column("dataset", sa.String(length=200), nullable=True),
        sa.Column("data_class", sa.String(length=20), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("published_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_items")),
    )
    op.create_index(op.f("ix_data_items_owner"), "data_items", ["owner"])
    op.create_table(
        "data_grants",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("item_id", sa.String(length=60), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("consumer", sa.String(length=40), nullable=False),
        sa.Column("data_class", sa.String(length=20), nullable=False),
        sa.Column("consumer_data_class", sa.String(length=20), nullable=False),
        sa.Column("purpose", sa.String(length=60), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("needs_bureau", sa.Boolean(), nullable=False),
        sa.Column("provider_approved_by", sa.String(length=100), nullable=True),
        sa.Column("bureau_approved_by", sa.String(length=100), nullable=True),
        sa.Column("requested_by", sa.String(length=100), nullable=False),
        sa.Column("ended_by", sa.String(length=100), nullable=True),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column("enforced_in", sa.JSON(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"], ["data_items.id"], name=op.f("fk_data_grants_item_id_data_items")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_grants")),
    )
    op.create_index(op.f("ix_data_grants_item_id"), "data_grants", ["item_id"])
    op.create_index(op.f("ix_data_grants_provider"), "data_grants", ["provider"])
    op.create_index(op.f("ix_data_grants_consumer"), "data_grants", ["consumer"])
    op.create_index(op.f("ix_data_grants_state"), "data_grants", ["state"])
    op.create_index(op.f("ix_data_grants_expires_at"), "data_grants", ["expires_at"])


def downgrade() -> None:
    op.drop_table("data_grants")
    op.drop_table("data_items")
