"""the simulator's documents: their name in an indexed column

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sim_objects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("name", sa.Text(), nullable=True))
    # The documents stored so far: their string ``name`` field, as the store now writes it.
    table = sa.table("sim_objects", sa.column("doc", sa.JSON()), sa.column("name", sa.Text()))
    name = table.c.doc["name"]
    string = sa.func.json_type(table.c.doc, "$.name") == "text"
    if op.get_bind().dialect.name == "postgresql":
        string = sa.func.json_typeof(name) == "string"
    op.execute(table.update().where(string).values(name=name.as_string()))
    op.create_index("ix_sim_objects_name", "sim_objects", ["center", "kind", "name"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_sim_objects_name", table_name="sim_objects")
    with op.batch_alter_table("sim_objects", schema=None) as batch_op:
        batch_op.drop_column("name")
