"""The management center's own disaster recovery: its database's standby in the DR site.

The management database (``--database-url``) streams to a PostgreSQL standby in the DR
site (``--standby-url``, env ``CLOUDCTL_MGMT_STANDBY_URL``) with PostgreSQL's own
streaming replication. Three operations, each safe to run again:

- ``status``: both servers' roles and the standby's lag (bytes of WAL not yet replayed,
  seconds since the last replayed commit), as each server reports it.
- ``promote`` (run from the DR site): fence the old primary if it answers (it refuses
  writes from then on, restarts included), wait for the standby to replay what it
  received, promote it, and record the promotion in the promoted database. A ``serve``
  pointed at the promoted database then leads (its lease epoch continues the old one) and
  drives recovery. An old primary that does not answer is fenced when it comes back:
  every ``serve`` replica that still points at it checks the DR peer and steps down
  (``peer_superseded``), and ``cloudctl mgmt fence`` fences it by hand.
- ``failback`` (run on the old primary's host, once it is back): keep its data directory
  aside (nothing is deleted), re-seed it from the promoted primary with ``pg_basebackup``
  and start it as the new standby. Swapping the roles back is a planned ``promote`` the
  other way round.

Invariant: nothing here writes to a database a ``serve`` leader may be writing to, except
the fence marker and the promotion record (``settings`` rows), and PostgreSQL settings.
"""

from __future__ import annotations

import datetime
import glob
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel

from cloudctl import errors
from cloudctl.model import states
from cloudctl.services import context as ctx_module
from cloudctl.store import pg_replication

CATCH_UP_TIMEOUT_S = 60.0
SLOT = "cloudctl_standby"


class ServerPublic(BaseModel):
    url: str
    reachable: bool
    role: str
    """``primary``, ``standby``, ``fenced`` (a primary refusing writes) or ``unreachable``."""
    timeline: int | None = None
    wal_lsn: str | None = None
    error: str | None = None


class StandbyPublic(BaseModel):
    name: str
    state: str
    sync_state: str
    lag_bytes: int
    replay_lag_s: float | None


class MgmtStatusPublic(BaseModel):
    primary: ServerPublic
    standby: ServerPublic | None
    streaming_to: list[StandbyPublic]
    """The standbys the primary streams to (``pg_stat_replication``)."""
    receiver: str | None
    """The standby's WAL receiver status (``streaming`` when connected)."""
    lag_bytes: int | None
    """WAL the standby has not replayed yet, as the primary and the standby report it."""
    replay_delay_s: float | None
    """Seconds since the newest commit the standby replayed was made on the primary."""


class PromotionPublic(BaseModel):
    promoted: str
    promoted_now: bool
    old_primary: str | None
    old_primary_fenced: bool
    sessions_ended: int
    lag_bytes_at_promotion: int | None
    note: str


class FailbackPublic(BaseModel):
    data_dir: str
    kept_aside: str | None
    seeded_from: str
    standby: ServerPublic


class ManagementLossPublic(BaseModel):
    """Management records acknowledged before a site was lost, and which the promoted database lacks."""

    table: str
    acknowledged: int
    lost: int
    lost_keys: list[str]
    rpo_s: float
    """From the first lost record's acknowledgement to the last acknowledgement (0 when none is lost)."""


def records_lost(
    *, promoted: str, acknowledged: Mapping[str, float], table: str = "requests"
) -> ManagementLossPublic:
    """Measure the management state's RPO after a promotion: ``acknowledged`` maps each record's
    key (a request id, an audit sequence number) to when its writer saw it acknowledged."""
    if table not in pg_replication.KEYED_TABLES:
        known = ", ".join(sorted(pg_replication.KEYED_TABLES))
        raise errors.InvalidInput(f"no table {table!r} (known: {known})", field="table")
    _require_postgres(promoted, field="promoted")
    kept = pg_replication.existing_keys(promoted, table=table, keys=list(acknowledged))
    lost = sorted((key for key in acknowledged if key not in kept), key=lambda key: (acknowledged[key], key))
    rpo_s = max(acknowledged.values()) - acknowledged[lost[0]] if lost else 0.0
    return ManagementLossPublic(
        table=table, acknowledged=len(acknowledged), lost=len(lost), lost_keys=lost, rpo_s=round(rpo_s, 3)
    )


def loss_across(
    *, promoted: str, acknowledged: Mapping[str, Mapping[str, float]]
) -> tuple[int, list[str], float]:
    """``records_lost`` over several tables at once (``{table: {key: acknowledged at}}``): how many
    were acknowledged, the lost ones as ``table:key`` oldest first, and the RPO over all of them."""
    at: dict[str, float] = {}
    lost: list[str] = []
    for table, keys in acknowledged.items():
        if keys:
            found = records_lost(promoted=promoted, acknowledged=keys, table=table)
            lost += [f"{table}:{key}" for key in found.lost_keys]
            at.update({f"{table}:{key}": when for key, when in keys.items()})
    lost.sort(key=lambda key: (at[key], key))
    rpo_s = max(at.values()) - at[lost[0]] if lost else 0.0
    return len(at), lost, round(rpo_s, 3)


def check_standby(ctx: ctx_module.Context, *, field: str) -> str:
    """The standby's URL, if the management database is PostgreSQL and has one; else one line."""
    try:
        primary_url(ctx)
        return standby_url(ctx, None)
    except errors.InvalidInput as error:
        raise errors.InvalidInput(
            f"losing the management site needs the management database on PostgreSQL with its DR "
            f"standby: {error.reason}",
            field=field,
        ) from None


def standby_url(ctx: ctx_module.Context, given: str | None) -> str:
    url = given or os.environ.get("CLOUDCTL_MGMT_STANDBY_URL")
    if not url:
        raise errors.InvalidInput(
            "no standby given; pass --standby-url or set CLOUDCTL_MGMT_STANDBY_URL", field="standby-url"
        )
    _require_postgres(url, field="standby-url")
    return url


def primary_url(ctx: ctx_module.Context) -> str:
    url = ctx.settings.database_url or ""
    _require_postgres(url, field="database-url")
    return url


def _require_postgres(url: str, *, field: str) -> None:
    if not url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        raise errors.InvalidInput(
            "the management database's DR copy needs PostgreSQL (a postgresql:// URL)", field=field
        )


def _server(url: str) -> ServerPublic:
    try:
        state = pg_replication.server_state(url)
    except errors.BackendUnavailable as error:
        return ServerPublic(
            url=url.split("@", 1)[-1],
            reachable=False,
            role=states.DatabaseRole.UNREACHABLE,
            error=error.reason,
        )
    role = (
        states.DatabaseRole.STANDBY
        if state.in_recovery
        else (states.DatabaseRole.FENCED if state.read_only else states.DatabaseRole.PRIMARY)
    )
    return ServerPublic(
        url=state.url, reachable=True, role=role, timeline=state.timeline, wal_lsn=state.wal_lsn
    )


def status(ctx: ctx_module.Context, *, standby: str | None) -> MgmtStatusPublic:
    primary = primary_url(ctx)
    dr = standby_url(ctx, standby)
    primary_view = _server(primary)
    standby_view = _server(dr)
    links: list[StandbyPublic] = []
    if primary_view.reachable:
        links = [
            StandbyPublic(
                name=link.name,
                state=link.state,
                sync_state=link.sync_state,
                lag_bytes=link.lag_bytes,
                replay_lag_s=link.replay_lag_s,
            )
            for link in pg_replication.standby_links(primary)
        ]
    receiver = None
    lag_bytes: int | None = None
    delay: float | None = None
    if standby_view.reachable and standby_view.role == states.DatabaseRole.STANDBY:
        state = pg_replication.receiver_state(dr)
        receiver = state.status
        delay = state.replay_delay_s
        if primary_view.reachable and primary_view.wal_lsn and state.replayed_lsn:
            lag_bytes = pg_replication.lsn_lag_bytes(
                primary, ahead=primary_view.wal_lsn, behind=state.replayed_lsn
            )
    return MgmtStatusPublic(
        primary=primary_view,
        standby=standby_view,
        streaming_to=links,
        receiver=receiver,
        lag_bytes=lag_bytes,
        replay_delay_s=delay,
    )


def _wait_caught_up(primary: str, standby: str, *, timeout_s: float, clock_sleep: float = 0.2) -> int:
    """After the primary stopped taking writes: wait until the standby replayed all of it."""
    target = pg_replication.server_state(primary).wal_lsn
    deadline = time.monotonic() + timeout_s
    while True:
        replayed = pg_replication.receiver_state(standby).replayed_lsn or "0/0"
        lag = pg_replication.lsn_lag_bytes(standby, ahead=target, behind=replayed)
        if lag == 0 or time.monotonic() >= deadline:
            return lag
        time.sleep(clock_sleep)  # polling another server's replay: there is nothing to wait on


def promote(
    ctx: ctx_module.Context,
    *,
    standby: str | None,
    old_primary: str | None = None,
    operator: str,
    why: str = "",
    site_lost: bool = False,
) -> PromotionPublic:
    """Promote the DR standby and fence the old primary; see the module docstring.

    ``site_lost`` (a drill of the site's loss): the standby is promoted with what it holds at
    this instant, without waiting for it to replay the rest; the old primary is fenced first,
    so it takes nothing the standby will not have had the chance to receive.
    """
    dr = standby_url(ctx, standby)
    old = old_primary or ctx.settings.database_url
    if old:
        _require_postgres(old, field="old-primary")
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    reason = {
        "fenced_at": now,
        "by": operator,
        "promoted": dr.split("@", 1)[-1],
        "host": socket.gethostname(),
        "reason": why,
    }
    fenced = False
    sessions = 0
    lag: int | None = None
    old_state = _server(old) if old else None
    if old and old_state is not None and old_state.role == states.DatabaseRole.FENCED:
        fenced = True
    elif old and old_state is not None and old_state.role == states.DatabaseRole.PRIMARY:
        sessions = pg_replication.fence(old, reason=reason)
        fenced = True
        if pg_replication.server_state(dr).in_recovery:
            lag = _wait_caught_up(old, dr, timeout_s=0.0 if site_lost else CATCH_UP_TIMEOUT_S)
    promoted_now = pg_replication.promote(dr)
    _audit_promotion(ctx, dr, why=why, detail={**reason, "old_primary_fenced": fenced})
    pg_replication.record(dr, key=pg_replication.PROMOTED_KEY, value={**reason, "old_primary": _where(old)})
    # A fence marker written on the old primary before it stopped may have streamed here.
    pg_replication.delete_marker(dr, key=pg_replication.FENCE_KEY)
    if fenced:
        note = (
            "the old primary refuses writes (restarts included); point every serve at the promoted database"
        )
    elif old_state is not None and old_state.role == states.DatabaseRole.STANDBY:
        note = "the old primary is a standby already; nothing to fence"
    else:
        note = (
            "the old primary did not answer: it is fenced when it comes back (its serve replicas see the "
            "promoted peer and step down), or run `cloudctl mgmt fence` against it"
        )
    return PromotionPublic(
        promoted=_where(dr),
        promoted_now=promoted_now,
        old_primary=_where(old) if old else None,
        old_primary_fenced=fenced,
        sessions_ended=sessions,
        lag_bytes_at_promotion=lag,
        note=note,
    )


def _audit_promotion(ctx: ctx_module.Context, url: str, *, why: str, detail: dict[str, object]) -> None:
    """The promotion's audit records go into the promoted database, the one that carries on:
    the break-glass use (OS user, host, reason; counted), then the promotion itself."""
    record_break_glass(ctx, url, why=why, action="mgmt.promote", target_id=_where(url), detail=detail)


def record_break_glass(
    ctx: ctx_module.Context,
    url: str,
    *,
    why: str,
    action: str,
    target_id: str,
    detail: dict[str, object],
) -> None:
    """A ``mgmt`` command's break-glass use and its action, audited in the database at ``url``.

    ``mgmt`` commands act on the PostgreSQL servers themselves (the API may be down with its
    database), so they record into the server that carries on rather than through the API.
    """
    from cloudctl.services import audit

    carrying_on = ctx_module.Context(
        settings=ctx.settings.model_copy(update={"database_url": url}), clock=ctx.clock
    )
    try:
        principal = audit.record_break_glass(carrying_on, role="sysadmin", reason=why)
        audit.record(
            carrying_on,
            principal=principal,
            action=action,
            target_type="ManagementDatabase",
            target_id=target_id,
            outcome="success",
            detail=detail,
        )
    finally:
        carrying_on.close()


def fence(ctx: ctx_module.Context, *, url: str, operator: str, why: str = "") -> int:
    """Fence a former primary by hand (it came back after a promotion); sessions ended.

    Audited in this site's database (``--database-url``) when that is another, writable server.
    """
    _require_postgres(url, field="url")
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    mark: dict[str, object] = {"fenced_at": now, "by": operator, "host": socket.gethostname(), "reason": why}
    ended = pg_replication.fence(url, reason=mark)
    here = ctx.settings.database_url
    if here and _where(here) != _where(url) and _server(here).role == states.DatabaseRole.PRIMARY:
        record_break_glass(ctx, here, why=why, action="mgmt.fence", target_id=_where(url), detail=mark)
    return ended


def _where(url: str | None) -> str:
    return (url or "").split("@", 1)[-1]


# --- failback: re-seed the old site as the standby --------------------------------------------


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: [int(x) for x in p.split("/")[4:5]])
    if found:
        return Path(found[-1])
    pg_config = shutil.which("pg_config")
    if pg_config:
        return Path(
            subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True).stdout.strip()
        )
    raise errors.InvalidInput("PostgreSQL's server binaries are not installed here", field="data-dir")


def _as_postgres(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _run(command: list[str], *, what: str) -> None:
    finished = subprocess.run(_as_postgres(command), capture_output=True, text=True, check=False, timeout=600)
    if finished.returncode != 0:
        detail = (finished.stderr or finished.stdout).strip().splitlines()
        raise errors.OperationFailed(
            f"{what} failed: {detail[-1] if detail else finished.returncode}", field="failback"
        )


def failback(
    ctx: ctx_module.Context,
    *,
    data_dir: Path,
    port: int,
    new_primary: str,
    slot: str = SLOT,
    why: str = "",
) -> FailbackPublic:
    """Re-seed the old primary's data directory as a standby of ``new_primary`` and start it."""
    _require_postgres(new_primary, field="from")
    if pg_replication.server_state(new_primary).in_recovery:
        raise errors.InvalidInput(f"{_where(new_primary)} is not a primary", field="from")
    bindir = _bindir()
    data_dir = data_dir.resolve()
    kept: str | None = None
    if (data_dir / "PG_VERSION").exists():
        status = subprocess.run(
            _as_postgres([str(bindir / "pg_ctl"), "-D", str(data_dir), "status"]),
            capture_output=True,
            check=False,
        )
        if status.returncode == 0:
            _run(
                [str(bindir / "pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "stop"],
                what="stopping the old primary",
            )
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
        aside = data_dir.with_name(f"{data_dir.name}.before-failback-{stamp}")
        data_dir.rename(aside)
        kept = str(aside)
    pg_replication.create_slot(new_primary, slot)
    primary = new_primary.split("://", 1)[1]
    user_host, _database = primary.rsplit("/", 1) if "/" in primary else (primary, "")
    user, host_port = user_host.split("@", 1) if "@" in user_host else ("postgres", user_host)
    host, primary_port = host_port.rsplit(":", 1) if ":" in host_port else (host_port, "5432")
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(data_dir.parent, user="postgres")
    _run(
        [
            str(bindir / "pg_basebackup"),
            "-h",
            host,
            "-p",
            primary_port,
            "-U",
            user,
            "-D",
            str(data_dir),
            "-R",
            "-X",
            "stream",
            "-S",
            slot,
            "--checkpoint=fast",
        ],
        what="seeding from the new primary",
    )
    options = f"-h 127.0.0.1 -p {port} -k {data_dir} -c cluster_name={data_dir.name}"
    pg_ctl = [str(bindir / "pg_ctl"), "-D", str(data_dir), "-l", str(data_dir / "server.log")]
    _run([*pg_ctl, "-w", "-t", "120", "-o", options, "start"], what="starting the new standby")
    standby = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    result = FailbackPublic(
        data_dir=str(data_dir), kept_aside=kept, seeded_from=_where(new_primary), standby=_server(standby)
    )
    record_break_glass(
        ctx,
        new_primary,
        why=why,
        action="mgmt.failback",
        target_id=_where(standby),
        detail={"data_dir": result.data_dir, "kept_aside": kept, "host": socket.gethostname()},
    )
    return result
