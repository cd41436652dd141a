"""keyed audit chain: source address and key id per record; orphaned tokens revoked

Revision ID: 0006
Revises: 0005

Records already in the log keep their unkeyed hashes: the marker ``audit_legacy_through``
names the last of them, every later record must carry a key id, and the first keyed record
covers the last unkeyed one in its ``prev_hash`` (so the old part is anchored by the key
from then on). No record is changed or removed.

Tokens of departments that no longer exist are revoked (kept, with ``revoked_at`` set), so
a department created again under the same id never inherits them.
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

LEGACY_THROUGH_KEY = "audit_legacy_through"


def upgrade() -> None:
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source", sa.String(length=64), server_default="", nullable=False))
        batch_op.add_column(sa.Column("key_id", sa.String(length=40), server_default="", nullable=False))
    connection = op.get_bind()
    head = connection.execute(sa.text("SELECT seq FROM audit_head WHERE id = 1")).scalar()
    connection.execute(sa.text("DELETE FROM settings WHERE key = :key"), {"key": LEGACY_THROUGH_KEY})
    connection.execute(
        sa.text("INSERT INTO settings (key, value) VALUES (:key, :value)"),
        {"key": LEGACY_THROUGH_KEY, "value": str(int(head or 0))},
    )
    connection.execute(
        sa.text(
            "UPDATE tokens SET revoked_at = :now WHERE revoked_at IS NULL AND department <> '' "
            "AND department NOT IN (SELECT id FROM org_nodes)"
        ),
        {"now": time.time()},
    )


def downgrade() -> None:
    op.get_bind().execute(sa.text("DELETE FROM settings WHERE key = :key"), {"key": LEGACY_THROUGH_KEY})
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.drop_column("key_id")
        batch_op.drop_column("source")
