"""the simulator's documents: what they are members of, in indexed columns

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_FIELDS = ("attached_to", "volume_id")


def upgrade() -> None:
    with op.batch_alter_table("sim_objects", schema=None) as batch_op:
        for field in _FIELDS:
            batch_op.add_column(sa.Column(field, sa.Text(), nullable=True))
    # The documents stored so far: each field where it is a string, as the store now writes it.
    table = sa.table("sim_objects", sa.column("doc", sa.JSON()), *(sa.column(f, sa.Text()) for f in _FIELDS))
    postgresql = op.get_bind().dialect.name == "postgresql"
    for field in _FIELDS:
        value = table.c.doc[field]
        string = sa.func.json_type(table.c.doc, f"$.{field}") == "text"
        if postgresql:
            string = sa.func.json_typeof(value) == "string"
        op.execute(table.update().where(string).values({field: value.as_string()}))
        op.create_index(f"ix_sim_objects_{field}", "sim_objects", ["center", "kind", field], unique=False)


def downgrade() -> None:
    for field in reversed(_FIELDS):
        op.drop_index(f"ix_sim_objects_{field}", table_name="sim_objects")
    with op.batch_alter_table("sim_objects", schema=None) as batch_op:
        for field in reversed(_FIELDS):
            batch_op.drop_column(field)
