"""Alembic environment: runs on the connection handed in by ``migrations.upgrade``."""

from __future__ import annotations

from alembic import context

from cloudctl.store import schema

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=schema.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
