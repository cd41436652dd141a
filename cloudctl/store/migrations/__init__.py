"""Alembic migrations of the store, run in-process (no alembic.ini needed).

``upgrade(engine)`` brings any database to the newest revision; the revisions in
``versions/`` are the only place the schema changes.

Asking whether a database is current (``is_current``) does not import Alembic: the newest
revision is read from the ``revision``/``down_revision`` lines of the files in ``versions/``
and compared with the ``alembic_version`` row, so commands that only read the state start
fast. ``head_revision()`` (Alembic's own answer) must agree with ``script_head()``.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from alembic.config import Config

_HERE = Path(__file__).parent
_VERSIONS = _HERE / "versions"
_REVISION = re.compile(r"^revision\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision\s*(?::[^=]*)?=\s*(None|['\"]([^'\"]+)['\"])", re.MULTILINE)
_VERSION_TABLE = sa.table("alembic_version", sa.column("version_num"))


def _config(connection: sa.Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_HERE))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    from alembic import command

    with engine.begin() as connection:
        command.upgrade(_config(connection), revision)


def downgrade(engine: sa.Engine, revision: str) -> None:
    """Back to ``revision`` (``-1``: the one before): how a store written by an older cloudctl looks."""
    from alembic import command

    with engine.begin() as connection:
        command.downgrade(_config(connection), revision)


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config()).get_current_head()


@functools.cache
def _scripts() -> tuple[frozenset[str], frozenset[str]]:
    """Every revision in ``versions/``, and every one another names as its parent."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in _VERSIONS.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        revision = _REVISION.search(text)
        if revision is None:
            continue
        revisions.add(revision.group(1))
        parent = _DOWN_REVISION.search(text)
        if parent is not None and parent.group(2):
            parents.add(parent.group(2))
    return frozenset(revisions), frozenset(parents)


def script_revisions() -> frozenset[str]:
    """The revisions this cloudctl knows: a database at another was written by a newer one."""
    return _scripts()[0]


@functools.cache
def script_head() -> str | None:
    """The newest revision in ``versions/``: the one no other revision names as its parent."""
    revisions, parents = _scripts()
    heads = set(revisions - parents)
    if len(heads) > 1:
        raise RuntimeError(f"the migrations have several heads: {', '.join(sorted(heads))}")
    return heads.pop() if heads else None


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as connection:
        if not engine.dialect.has_table(connection, "alembic_version"):
            return None
        return connection.execute(sa.select(_VERSION_TABLE.c.version_num)).scalar()


def is_current(engine: sa.Engine) -> bool:
    return current_revision(engine) == script_head()


def behind_or_ahead(revision: str | None) -> str | None:
    """What is wrong with a database at ``revision`` for this cloudctl, in words; ``None``: nothing
    (it is current) or nothing migrations can say (no schema at all)."""
    head = script_head()
    if revision is None or revision == head:
        return None
    if revision in script_revisions():
        return (
            f"is at schema revision {revision} and this cloudctl needs {head}: run `cloudctl init` "
            "to upgrade it in place (what it holds is kept)"
        )
    return (
        f"is at schema revision {revision}, which this cloudctl does not know (its newest is {head}): "
        "it was written by a newer cloudctl; run that one or a newer one"
    )
