"""The management database's streaming replication, seen and driven through PostgreSQL itself.

The management database streams to a standby in the DR site with PostgreSQL's physical
replication; nothing here copies data. These functions read the replication views
(``pg_stat_replication`` on the primary, ``pg_stat_wal_receiver`` and the replay
functions on the standby), promote a standby (``pg_promote``) and fence a former primary.

Invariants:
- Each function opens its own short-lived connection (no pool) with a connect timeout,
  so a site that is gone costs seconds, not a hang; an unreachable server raises
  ``errors.BackendUnavailable`` naming the URL's host and port.
- ``fence`` first records why in the ``settings`` table (so the reason is in the old
  primary's own data), then makes the server refuse writes for good:
  ``ALTER SYSTEM SET default_transaction_read_only = on`` is written to
  ``postgresql.auto.conf``, which survives a restart, and the client sessions are ended.
- ``promote`` is idempotent: a server already out of recovery is left as it is.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc

from cloudctl import errors
from cloudctl.store import db

CONNECT_TIMEOUT_S = 5
FENCE_KEY = "mgmt_fenced"
PROMOTED_KEY = "mgmt_promoted"


@dataclasses.dataclass(frozen=True)
class ServerState:
    url: str
    in_recovery: bool
    read_only: bool
    timeline: int
    wal_lsn: str
    """The primary's current WAL position, or the standby's last replayed one."""
    system_identifier: str


@dataclasses.dataclass(frozen=True)
class StandbyLink:
    """One standby as its primary sees it (``pg_stat_replication``)."""

    name: str
    client: str
    state: str
    sync_state: str
    lag_bytes: int
    replay_lag_s: float | None


@dataclasses.dataclass(frozen=True)
class ReceiverState:
    """A standby's own view: what it received and replayed, and how old the last replay is."""

    status: str | None
    """``streaming`` while connected to its primary; ``None`` when no WAL receiver runs."""
    received_lsn: str | None
    replayed_lsn: str | None
    replay_delay_s: float | None
    """Seconds since the last transaction it replayed was committed on the primary."""


def _where(url: str) -> str:
    return url.split("@", 1)[-1] if "@" in url else url


@contextlib.contextmanager
def connect(url: str, *, autocommit: bool = True) -> Iterator[sa.Connection]:
    engine = sa.create_engine(
        db.normalise_url(url),
        poolclass=sa.pool.NullPool,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
        isolation_level="AUTOCOMMIT" if autocommit else None,
    )
    try:
        with engine.connect() as connection:
            yield connection
    except exc.OperationalError as error:
        first = str(getattr(error, "orig", error)).strip().splitlines()[0]
        raise errors.BackendUnavailable(f"{_where(url)} did not answer: {first}", field="database") from error
    finally:
        engine.dispose()


def server_state(url: str) -> ServerState:
    with connect(url) as tx:
        row = tx.execute(
            sa.text(
                "SELECT pg_is_in_recovery() AS in_recovery,"
                " current_setting('default_transaction_read_only') = 'on' AS read_only,"
                # A promoted server's control file learns its new timeline only at its next
                # checkpoint; the name of the WAL file it writes carries it at once.
                " CASE WHEN pg_is_in_recovery() THEN (SELECT timeline_id FROM pg_control_checkpoint())"
                "      ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int"
                " END AS timeline,"
                " CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text"
                "      ELSE pg_current_wal_lsn()::text END AS wal_lsn,"
                " (SELECT system_identifier::text FROM pg_control_system()) AS system_identifier"
            )
        ).one()
    return ServerState(
        url=_where(url),
        in_recovery=bool(row.in_recovery),
        read_only=bool(row.read_only),
        timeline=int(row.timeline),
        wal_lsn=str(row.wal_lsn or ""),
        system_identifier=str(row.system_identifier),
    )


def standby_links(url: str) -> list[StandbyLink]:
    with connect(url) as tx:
        rows = tx.execute(
            sa.text(
                "SELECT application_name, coalesce(client_addr::text, 'local') AS client, state, sync_state,"
                " coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0)::bigint AS lag_bytes,"
                " extract(epoch FROM replay_lag)::float8 AS replay_lag_s"
                " FROM pg_stat_replication ORDER BY application_name"
            )
        ).all()
    return [
        StandbyLink(
            name=row.application_name,
            client=row.client,
            state=row.state,
            sync_state=row.sync_state,
            lag_bytes=int(row.lag_bytes),
            replay_lag_s=row.replay_lag_s,
        )
        for row in rows
    ]


def receiver_state(url: str) -> ReceiverState:
    with connect(url) as tx:
        row = tx.execute(
            sa.text(
                "SELECT (SELECT status FROM pg_stat_wal_receiver) AS status,"
                " pg_last_wal_receive_lsn()::text AS received, pg_last_wal_replay_lsn()::text AS replayed,"
                " extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8 AS delay"
            )
        ).one()
    return ReceiverState(
        status=row.status, received_lsn=row.received, replayed_lsn=row.replayed, replay_delay_s=row.delay
    )


def lsn_lag_bytes(url: str, *, ahead: str, behind: str) -> int:
    """Bytes of WAL between two positions (computed by the server at ``url``)."""
    with connect(url) as tx:
        value = tx.execute(
            sa.text("SELECT pg_wal_lsn_diff(CAST(:ahead AS pg_lsn), CAST(:behind AS pg_lsn))::bigint"),
            {"ahead": ahead, "behind": behind},
        ).scalar_one()
    return max(int(value), 0)


def promote(url: str, *, wait_s: int = 60) -> bool:
    """End the standby's recovery; whether this call promoted it (``False``: it already was)."""
    with connect(url) as tx:
        if not tx.execute(sa.text("SELECT pg_is_in_recovery()")).scalar_one():
            return False
        promoted = tx.execute(sa.text("SELECT pg_promote(true, :wait)"), {"wait": wait_s}).scalar_one()
    if not promoted:
        raise errors.OperationFailed(
            f"{_where(url)} did not finish promoting within {wait_s} s", field="standby"
        )
    return True


def record(url: str, *, key: str, value: dict[str, Any]) -> None:
    """Write a marker into the cloudctl ``settings`` table of the database at ``url``."""
    with connect(url) as tx:
        tx.execute(
            sa.text(
                "INSERT INTO settings (key, value) VALUES (:key, :value)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
            ),
            {"key": key, "value": json.dumps(value, sort_keys=True)},
        )


def delete_marker(url: str, *, key: str) -> None:
    with connect(url) as tx:
        tx.execute(sa.text("DELETE FROM settings WHERE key = :key"), {"key": key})


def superseded_by(own_url: str, peer_url: str) -> ServerState | None:
    """The peer, when it is a primary of the same cluster on a later timeline than ``own_url``
    (it was promoted after this one stopped streaming to it); else ``None``. A peer that does
    not answer supersedes nothing."""
    try:
        peer = server_state(peer_url)
    except errors.BackendUnavailable:
        return None
    own = server_state(own_url)
    if peer.in_recovery or own.in_recovery or peer.system_identifier != own.system_identifier:
        return None
    return peer if peer.timeline > own.timeline else None


def read_marker(url: str, *, key: str) -> dict[str, Any] | None:
    with connect(url) as tx:
        value = tx.execute(sa.text("SELECT value FROM settings WHERE key = :key"), {"key": key}).scalar()
    return json.loads(value) if value else None


def fence(url: str, *, reason: dict[str, Any]) -> int:
    """Make the server at ``url`` refuse writes from now on, restarts included; sessions ended."""
    with connect(url) as tx:
        in_recovery, read_only = tx.execute(
            sa.text("SELECT pg_is_in_recovery(), current_setting('default_transaction_read_only') = 'on'")
        ).one()
        if not in_recovery and not read_only:
            tx.execute(
                sa.text(
                    "INSERT INTO settings (key, value) VALUES (:key, :value)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
                ),
                {"key": FENCE_KEY, "value": json.dumps(reason, sort_keys=True)},
            )
        tx.execute(sa.text("ALTER SYSTEM SET default_transaction_read_only = on"))
        tx.execute(sa.text("SELECT pg_reload_conf()"))
        ended = tx.execute(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
            )
        ).scalar_one()
    return int(ended)


def unfence(url: str) -> None:
    """Undo ``fence`` on a server that is a standby again (after ``failback`` re-seeded it)."""
    with connect(url) as tx:
        tx.execute(sa.text("ALTER SYSTEM RESET default_transaction_read_only"))
        tx.execute(sa.text("SELECT pg_reload_conf()"))


def create_slot(url: str, name: str) -> None:
    with connect(url) as tx:
        tx.execute(
            sa.text(
                "SELECT pg_create_physical_replication_slot(:name) WHERE NOT EXISTS"
                " (SELECT 1 FROM pg_replication_slots WHERE slot_name = :name)"
            ),
            {"name": name},
        )


KEYED_TABLES = {
    "requests": "id",
    "workloads": "id",
    "audit_records": "seq",
    "changes": "workload_id || ':' || CAST(seq AS text)",
}
"""Management tables whose records a drill can count as kept or lost, with their key (a column, or
for the write log an expression: ``workload:seq``)."""


def existing_keys(url: str, *, table: str, keys: list[str]) -> set[str]:
    """Which of ``keys`` the database at ``url`` holds in ``table`` (one of ``KEYED_TABLES``)."""
    column = KEYED_TABLES[table]
    found: set[str] = set()
    with connect(url) as tx:
        for start in range(0, len(keys), 5000):
            chunk = keys[start : start + 5000]
            rows = tx.execute(
                sa.text(
                    f"SELECT CAST({column} AS text) FROM {table} WHERE CAST({column} AS text) = ANY(:keys)"
                ),
                {"keys": chunk},
            )
            found.update(str(row[0]) for row in rows)
    return found
