"""A store URL that is no SQLite or PostgreSQL URL is one line naming ``database_url``, before
any driver is loaded or any file made."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudctl import errors
from cloudctl.store import db


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("garbage", "not a database URL"),
        ("mysql://x@127.0.0.1/y", "'mysql' is not a store database"),
        ("oracle://x@127.0.0.1/y", "'oracle' is not a store database"),
    ],
)
def test_a_url_of_no_store_database_is_refused_naming_it(url: str, reason: str) -> None:
    with pytest.raises(errors.InvalidInput) as refused:
        db.Store(url)
    assert refused.value.field == "database_url"
    assert refused.value.reason.startswith(reason)
    assert "\n" not in refused.value.one_line()


def test_sqlite_and_postgresql_urls_pass_the_check(tmp_path: Path) -> None:
    db.check_url(db.sqlite_url(tmp_path))
    db.check_url("postgresql://postgres@127.0.0.1:5432/postgres")
    db.check_url("postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    db.check_url(db.normalise_url("postgres://postgres@127.0.0.1:5432/postgres"))  # libpq's short scheme
