"""Audit: every write, every refused write and every failed authentication leaves a record.

Each record names the principal (id, role, department), the source address (after the
trusted-proxy rule, ``api``), the request id, the action and target, the outcome and, for a
refusal, the reason. Services record their own writes and refusals, so the API and the
command line leave the same records; the API adds the refusals that happen before a
service is reached (body validation, size limits).

Invariants:
- ``record`` appends in the caller's transaction when one is given (so the record commits or
  rolls back with the change it describes) or in its own.
- ``record`` takes plain actor fields (anything with ``id``, ``role`` and ``department``), so
  this module needs nothing from ``services.identity``; reading the log is authorised through
  ``services.access`` (policy ``audit.read``/``audit.verify``: the auditor's power alone).
- Field sizes are bounded before they reach the store: nothing a caller sends can make a
  record larger than its columns.
- A refusal is recorded once: ``record_refusal`` marks the error, and whoever sees a marked
  error (an outer service, the API) records nothing more.
- The chain is keyed (``store.audit``) under the ring of ``services.audit_keys``; ``verify``
  needs the key ring and also checks the newest signed checkpoint written outside the
  database, so a truncated or re-written log is detected. Nothing here changes or deletes a
  record except retention, which archives first.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import json
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import BaseModel, ConfigDict

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.model import states
from cloudctl.services import access, audit_keys, pages, public
from cloudctl.services import context as ctx_module
from cloudctl.store import audit
from cloudctl.store.db import Transaction

F = TypeVar("F", bound=Callable[..., Any])

OUTCOMES = ("success", "denied", "refused", "failed")
MAX_TARGET_ID = 100
MAX_ACTOR = 100
MAX_SOURCE = 64
MAX_REQUEST_ID = 64
MAX_DETAIL_CHARS = 4000
MAX_SEQ = 2**63 - 1
"""The largest seq the store can hold (a signed 64-bit integer on SQLite and PostgreSQL)."""


class Actor(Protocol):
    """Who acted, as a record names them (a ``Principal`` fits)."""

    @property
    def id(self) -> str: ...

    @property
    def role(self) -> str: ...

    @property
    def department(self) -> str: ...


# --- the request a record belongs to ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RequestScope:
    request_id: str
    source: str


_scope: contextvars.ContextVar[RequestScope | None] = contextvars.ContextVar("cloudctl_request", default=None)


def local_source() -> str:
    """The source of a command run at the management center's own console."""
    return _bounded(f"local@{socket.gethostname()}", MAX_SOURCE)


@contextlib.contextmanager
def request_scope(request_id: str | None = None, *, source: str | None = None) -> Iterator[RequestScope]:
    """Tag everything done inside (logs, audit records) with one request id and source."""
    scope = RequestScope(
        request_id=_bounded(request_id or uuid.uuid4().hex, MAX_REQUEST_ID),
        source=_bounded(source if source is not None else local_source(), MAX_SOURCE),
    )
    token = _scope.set(scope)
    try:
        yield scope
    finally:
        _scope.reset(token)


def current_scope() -> RequestScope:
    scope = _scope.get()
    if scope is None:
        scope = RequestScope(request_id=uuid.uuid4().hex, source=local_source())
        _scope.set(scope)
    return scope


def current_request_id() -> str:
    return current_scope().request_id


# --- writing ------------------------------------------------------------------------------------------


def _bounded(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _bounded_detail(detail: dict[str, Any]) -> dict[str, Any]:
    text = json.dumps(detail, ensure_ascii=False, default=str)
    if len(text) <= MAX_DETAIL_CHARS:
        return detail
    return {"truncated": True, "excerpt": text[: MAX_DETAIL_CHARS - 100]}


def signing_keys(ctx: ctx_module.Context) -> audit_keys.KeyProvider:
    ring = ctx.cache.get("audit_keys")
    if ring is None:
        ring = audit_keys.provider(ctx.settings)
        ctx.cache["audit_keys"] = ring
    return ring


def entry(
    ctx: ctx_module.Context,
    *,
    principal: Actor,
    action: str,
    target_type: str,
    target_id: str,
    outcome: str,
    detail: dict[str, Any] | None = None,
) -> audit.Entry:
    """A record as the store takes it, stamped with the current request's id and source."""
    scope = current_scope()
    return audit.Entry(
        at=ctx.clock.now(),
        actor=_bounded(principal.id, MAX_ACTOR),
        role=_bounded(principal.role, 20),
        department=_bounded(principal.department, 40),
        action=_bounded(action, 60),
        target_type=_bounded(target_type, 40),
        target_id=_bounded(target_id or "-", MAX_TARGET_ID),
        outcome=outcome,
        detail=_bounded_detail(detail or {}),
        request_id=scope.request_id,
        source=scope.source,
    )


def record(
    ctx: ctx_module.Context,
    *,
    principal: Actor,
    action: str,
    target_type: str,
    target_id: str,
    outcome: str,
    detail: dict[str, Any] | None = None,
    tx: Transaction | None = None,
) -> None:
    item = entry(
        ctx,
        principal=principal,
        action=action,
        target_type=target_type,
        target_id=target_id,
        outcome=outcome,
        detail=detail,
    )
    append_entries(ctx, [item], tx=tx)


def append_entries(
    ctx: ctx_module.Context, items: list[audit.Entry], *, tx: Transaction | None = None
) -> None:
    """Append several records at once (one head update), in ``tx`` or in their own transaction."""
    key = signing_keys(ctx).current()
    if tx is not None:
        audit.append_many(tx, items, key=key)
        return
    with ctx.transaction() as own:
        audit.append_many(own, items, key=key)


def outcome_of(error: BaseException) -> str:
    if isinstance(error, errors.PolicyDenied | errors.AuthenticationFailed):
        return "denied"
    if isinstance(error, errors.InvalidInput):
        return "refused"
    return "failed"


def is_recorded(error: BaseException) -> bool:
    return bool(getattr(error, "audit_recorded", False))


def mark_recorded(error: BaseException) -> BaseException:
    """Say that ``error`` is in the log already (whoever sees it records nothing more)."""
    with contextlib.suppress(AttributeError):
        error.audit_recorded = True  # type: ignore[attr-defined]
    return error


def record_refusal(
    ctx: ctx_module.Context,
    *,
    principal: Actor,
    action: str,
    target_type: str,
    target_id: str,
    error: BaseException,
    detail: dict[str, Any] | None = None,
    outcome: str | None = None,
) -> None:
    """Record that ``action`` was refused with ``error`` (once: the error is marked)."""
    if is_recorded(error):
        return
    reason = error.one_line() if isinstance(error, errors.CloudctlError) else type(error).__name__
    try:
        record(
            ctx,
            principal=principal,
            action=action,
            target_type=target_type,
            target_id=target_id,
            outcome=outcome or outcome_of(error),
            detail={**(detail or {}), "reason": reason},
        )
    except errors.BackendUnavailable:
        return  # the store is down: the refusal it caused cannot be written either
    mark_recorded(error)


def audits_refusals(
    *, action: str | None = None, target_type: str, target: str | None = None
) -> Callable[[F], F]:
    """Record a refusal of the decorated service call (a ``CloudctlError`` escaping it).

    The call's ``principal`` keyword names the actor (``access.local_operator()`` when there is
    none); ``action`` defaults to the call's ``action`` keyword; ``target`` names the keyword
    holding the target id. Successes are recorded by the service, in its transaction.
    """

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def wrapper(ctx: ctx_module.Context, *args: Any, **kwargs: Any) -> Any:
            try:
                return function(ctx, *args, **kwargs)
            except errors.CloudctlError as error:
                if not is_recorded(error) and not isinstance(error, errors.BackendUnavailable):
                    record_refusal(
                        ctx,
                        principal=kwargs.get("principal") or access.local_operator(),
                        action=action or str(kwargs.get("action", function.__name__)),
                        target_type=target_type,
                        target_id=str(kwargs.get(target, "-") if target else "-"),
                        error=error,
                    )
                raise

        return wrapper  # type: ignore[return-value]

    return decorate


MAX_REASON_CHARS = 500
"""The longest reason a break-glass use may give (it is read in the auditor's tables)."""


def record_break_glass(
    ctx: ctx_module.Context, *, role: str, reason: str, token_id: str | None = None
) -> access.Principal:
    """Direct database access with a named identity: recorded with the OS user, host and reason.

    Returns the principal the command then acts as (``breakglass:<os user>`` with ``role``).
    The count of uses is kept beside the log (``cloudctl_break_glass_total``).
    """
    if role not in access.ROLES:
        raise errors.InvalidInput(f"unknown role {role!r} (known: {', '.join(access.ROLES)})", field="as")
    if token_id is None and role not in access.OPERATOR_ROLES:
        # A role alone names no department: only a department's token says which one it is.
        raise errors.InvalidInput(
            f"{role!r} is not an operator's role ({', '.join(access.OPERATOR_ROLES)}): a department breaks "
            "glass with its token (`--break-glass`)",
            field="as",
        )
    if not reason.strip():
        raise errors.InvalidInput("say why direct access is needed", field="reason")
    if len(reason) > MAX_REASON_CHARS:
        raise errors.InvalidInput(f"at most {MAX_REASON_CHARS} characters", field="reason")
    from cloudctl.model import topology as topo

    topo.check_one_line(reason, field="reason")  # the auditor reads it in a table: no escapes, no lines
    principal = access.Principal(id=f"breakglass:{access.os_user()}", role=role)
    item = entry(
        ctx,
        principal=principal,
        action="break-glass",
        target_type="Store",
        target_id=token_id or role,
        outcome="success",
        detail={"os_user": access.os_user(), "host": socket.gethostname(), "reason": reason.strip()},
    )
    with ctx.transaction() as tx:
        audit.append_many(tx, [item], key=signing_keys(ctx).current())
        audit.bump_counter(tx, "break_glass")
    return principal


def break_glass_total(ctx: ctx_module.Context) -> int:
    with ctx.read() as tx:
        return audit.counter(tx, "break_glass")


# --- reading ------------------------------------------------------------------------------------------


AUDIT_RECORD_EXAMPLE: dict[str, Any] = {
    "seq": 48213,
    "at": "2026-12-04T22:44:03Z",
    "actor": "token:0eb685578843c699",
    "role": "dept-admin",
    "department": "hrss-insurance",
    "action": "request.create",
    "target_type": "Request",
    "target_id": "req-001a2433a99553b7d04e9",
    "outcome": "success",
    "detail": {"count": 2, "offering": "vm.medium", "state": states.WorkloadState.APPROVED, "tier": "gold"},
    "request_id": "8f6728b962f8e4872d155f7195457a25",
    "source": "10.20.3.17",
    "key_id": "k20261101-3c3e91",
    "hash": "3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d",
}
VERIFICATION_EXAMPLE: dict[str, Any] = {
    "ok": True,
    "records": 48213,
    "head_seq": 48213,
    "first_bad_seq": None,
    "problem": None,
    "key_ids": ["k20260901-a41f07", "k20261101-3c3e91"],
    "checkpoint_seq": 48200,
}


class AuditRecordPublic(BaseModel):
    """One record of the audit log: who did what to which target, from where, and how it ended."""

    model_config = ConfigDict(
        use_attribute_docstrings=True,
        from_attributes=True,
        json_schema_extra={"examples": [AUDIT_RECORD_EXAMPLE]},
    )

    seq: int
    """The record's place in the chain, from 1, without gaps; pass it as ``cursor`` or ``after``."""
    at: public.Timestamp
    """When it was written (ISO 8601, UTC, to the second)."""
    actor: str
    """``token:<token id>``, ``local:<user>``, ``breakglass:<user>``, ``system:<job>`` or ``anonymous``."""
    role: str
    """``dept-admin``, ``dept-user``, ``sysadmin``, ``secadmin``, ``auditor``, ``system`` or ``anonymous``."""
    department: str
    """The actor's org node for department roles; empty for operators and the system."""
    action: str
    """What was done or tried, as the policies name it (e.g. ``request.create``, ``auth.authenticate``)."""
    target_type: str
    """The kind of object acted on (e.g. ``Request``, ``Workload``, ``Quota``, ``Token``)."""
    target_id: str
    """The object's id; ``-`` when there is none (a refused creation)."""
    outcome: str
    """``success``, ``denied``, ``failed`` or ``refused``."""
    detail: dict[str, Any]
    """What else the action records (sizes, a refusal's ``reason``); at most 4000 characters of JSON."""
    request_id: str
    """The ``X-Request-ID`` of the call (the client's, or 32 hex digits the API made)."""
    source: str
    """Where the call came from: the client address (after the trusted-proxy rule) or ``local@host``."""
    key_id: str
    """The key the record's hash was computed under (empty: written before the chain was keyed)."""
    hash: str
    """HMAC-SHA256 over the previous record's hash and this record's fields, 64 hex digits."""


class VerificationPublic(BaseModel):
    """The result of recomputing the audit chain under the key ring and the newest signed checkpoint."""

    model_config = ConfigDict(
        use_attribute_docstrings=True, json_schema_extra={"examples": [VERIFICATION_EXAMPLE]}
    )

    ok: bool
    """Whether every record and the checkpoint check out."""
    records: int
    """How many records were verified (those kept in the store; archived ones are not counted)."""
    head_seq: int
    """The sequence number of the newest record."""
    first_bad_seq: int | None
    """The first record that does not verify; ``None`` when all do (or the checkpoint file is bad)."""
    problem: str | None
    """What is wrong, in one sentence; ``None`` when ``ok``."""
    key_ids: list[str] = []
    """Keys the verified records were signed with, oldest first."""
    checkpoint_seq: int | None = None
    """The newest signed checkpoint the chain was checked against."""


def _public(item: audit.AuditRecord) -> AuditRecordPublic:
    return AuditRecordPublic.model_validate(item)


def _authorize_reading(ctx: ctx_module.Context, principal: Actor, action: str) -> None:
    access.authorize(
        ctx,
        principal=access.Principal(id=principal.id, role=principal.role, department=principal.department),
        action=action,
        resource_type="AuditLog",
        resource_id="audit",
    )


def list_records(
    ctx: ctx_module.Context,
    *,
    principal: Actor,
    after_seq: int = 0,
    limit: int = 100,
    action: str | None = None,
    outcome: str | None = None,
) -> list[AuditRecordPublic]:
    _authorize_reading(ctx, principal, "audit.read")
    if outcome is not None and outcome not in OUTCOMES:
        raise errors.InvalidInput(f"{outcome!r} is not an outcome ({', '.join(OUTCOMES)})", field="outcome")
    with ctx.read() as tx:
        items = audit.list_records(tx, after_seq=after_seq, limit=limit, action=action, outcome=outcome)
    return [_public(item) for item in items]


def list_page(
    ctx: ctx_module.Context,
    *,
    principal: Actor,
    cursor: str | None,
    limit: int,
    action: str | None = None,
    outcome: str | None = None,
) -> tuple[list[AuditRecordPublic], str | None]:
    """One page of records after ``cursor`` (the seq the previous page ended at)."""
    if cursor is not None and not (cursor.isascii() and cursor.isdigit() and int(cursor) <= MAX_SEQ):
        raise errors.InvalidInput("not a cursor this list returned", field="cursor")
    return pages.one_page(
        lambda size: list_records(
            ctx,
            principal=principal,
            after_seq=int(cursor) if cursor else 0,
            limit=size,
            action=action,
            outcome=outcome,
        ),
        limit=limit,
        cursor_of=lambda item: str(item.seq),
    )


def _newest_checkpoint(
    ctx: ctx_module.Context, keys: dict[str, bytes]
) -> tuple[audit_keys.Checkpoint | None, str | None]:
    """The newest checkpoint signed by a key of the ring, or a problem with the checkpoint file."""
    newest: audit_keys.Checkpoint | None = None
    for number, checkpoint in enumerate(
        audit_keys.read_checkpoints(ctx.settings.resolved_audit_checkpoint_file()), 1
    ):
        if checkpoint is None or not audit_keys.checkpoint_valid(checkpoint, keys):
            return None, f"checkpoint {number} is not signed by a key of the audit key ring"
        if newest is None or checkpoint.seq >= newest.seq:
            newest = checkpoint
    return newest, None


def _against_checkpoint(tx: Transaction, checkpoint: audit_keys.Checkpoint, head_seq: int) -> str | None:
    anchor_seq, anchor_hash = audit.anchor(tx)
    if checkpoint.seq > head_seq:
        return (
            f"the log ends at record {head_seq} but a checkpoint of {clocks.isoformat(checkpoint.at)} "
            f"saw record {checkpoint.seq}: records were removed"
        )
    if checkpoint.seq < anchor_seq or checkpoint.seq == 0:
        return None  # archived by retention since
    found = (
        anchor_hash
        if checkpoint.seq == anchor_seq
        else getattr(audit.record_at(tx, checkpoint.seq), "hash", None)
    )
    if found != checkpoint.hash:
        return f"record {checkpoint.seq} is not the one checkpointed at {clocks.isoformat(checkpoint.at)}"
    return None


def _verify(ctx: ctx_module.Context, *, full: bool) -> VerificationPublic:
    keys = dict(signing_keys(ctx).keys())
    checkpoint, file_problem = _newest_checkpoint(ctx, keys)
    with ctx.read() as tx:
        head_seq, _head_hash = audit.head(tx)
        if file_problem is not None:
            return VerificationPublic(
                ok=False, records=0, head_seq=head_seq, first_bad_seq=None, problem=file_problem
            )
        if checkpoint is not None:
            problem = _against_checkpoint(tx, checkpoint, head_seq)
            if problem is not None:
                return VerificationPublic(
                    ok=False,
                    records=0,
                    head_seq=head_seq,
                    first_bad_seq=min(checkpoint.seq, head_seq + 1),
                    problem=problem,
                    checkpoint_seq=checkpoint.seq,
                )
        anchor_seq, _ = audit.anchor(tx)
        if full or checkpoint is None or checkpoint.seq <= anchor_seq:
            result = audit.verify(tx, keys=keys)
        else:
            result = audit.verify_from(tx, seq=checkpoint.seq, hash_=checkpoint.hash, keys=keys)
    return VerificationPublic(
        ok=result.ok,
        records=result.records,
        head_seq=result.head_seq,
        first_bad_seq=result.first_bad_seq,
        problem=result.problem,
        key_ids=list(result.key_ids),
        checkpoint_seq=None if checkpoint is None else checkpoint.seq,
    )


def verify(ctx: ctx_module.Context, *, principal: Actor) -> VerificationPublic:
    """Recompute the whole chain under the key ring and check it against the newest checkpoint."""
    _authorize_reading(ctx, principal, "audit.verify")
    return _verify(ctx, full=True)


@dataclasses.dataclass(frozen=True)
class ChainState:
    """The last check of the chain in this process (for ``/metrics``)."""

    checked_at: float
    ok: bool
    records: int
    head_seq: int
    checkpoint_at: float | None


def check(ctx: ctx_module.Context, *, max_age_s: float) -> ChainState:
    """The chain's state, checked at most every ``max_age_s``: the records after the newest
    checkpoint are verified (the ones before it were, when it was written)."""
    now = ctx.clock.now()
    cached = ctx.cache.get("audit.chain_state")
    if isinstance(cached, ChainState) and 0 <= now - cached.checked_at < max_age_s:
        return cached
    result = _verify(ctx, full=False)
    keys = dict(signing_keys(ctx).keys())
    newest, _ = _newest_checkpoint(ctx, keys)
    state = ChainState(
        checked_at=now,
        ok=result.ok,
        records=result.head_seq,
        head_seq=result.head_seq,
        checkpoint_at=None if newest is None else newest.at,
    )
    ctx.cache["audit.chain_state"] = state
    return state


CHECK_EVERY_S = 60.0


class AuditCollector(Collector):
    """Break-glass uses (kept beside the log, so every process shows the same count) and the
    age of the newest signed checkpoint."""

    def __init__(self, ctx: ctx_module.Context) -> None:
        self._ctx = ctx

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        uses = CounterMetricFamily(
            "cloudctl_break_glass", "Direct database access with a named identity (break-glass), ever."
        )
        uses.add_metric([], float(break_glass_total(self._ctx)))
        yield uses
        state = check(self._ctx, max_age_s=CHECK_EVERY_S)
        newest = GaugeMetricFamily(
            "cloudctl_audit_checkpoint_timestamp_seconds",
            "When the newest signed checkpoint of the audit chain's head was written (0: none yet).",
        )
        newest.add_metric([], state.checkpoint_at or 0.0)
        yield newest


class CheckpointPublic(BaseModel):
    written: bool
    seq: int
    hash: str
    at: str
    key_id: str
    path: str
    problem: str | None = None


def checkpoint(ctx: ctx_module.Context) -> CheckpointPublic:
    """Verify the records since the newest checkpoint, then sign the head and append it to the
    checkpoint file. A chain that does not verify gets no checkpoint (nothing tampered is blessed)."""
    path = ctx.settings.resolved_audit_checkpoint_file()
    result = _verify(ctx, full=False)
    key = signing_keys(ctx).current()
    now = ctx.clock.now()
    if not result.ok:
        ctx.cache.pop("audit.chain_state", None)
        return CheckpointPublic(
            written=False,
            seq=result.head_seq,
            hash="",
            at=clocks.isoformat(now),
            key_id=key.id,
            path=str(path),
            problem=result.problem,
        )
    with ctx.read() as tx:
        seq, hash_ = audit.head(tx)
    signed = audit_keys.sign_checkpoint(key, seq=seq, hash_=hash_, at=now)
    audit_keys.append_checkpoint(path, signed)
    ctx.cache.pop("audit.chain_state", None)
    return CheckpointPublic(
        written=True, seq=seq, hash=hash_, at=clocks.isoformat(now), key_id=key.id, path=str(path)
    )


class KeyPublic(BaseModel):
    key_id: str
    path: str


def rotate_key(ctx: ctx_module.Context, *, principal: Actor) -> KeyPublic:
    """Start signing with a new key (the old ones stay for verification); recorded in the log.

    A management-host function: whoever may write the key ring file may rotate it.
    """
    ring = signing_keys(ctx)
    if not isinstance(ring, audit_keys.FileKeyRing):
        raise errors.InvalidInput("rotate keys in the key provider itself", field="audit_key_provider")
    previous = ring.current().id
    key = ring.rotate(now=ctx.clock.now())
    record(
        ctx,
        principal=principal,
        action="audit.key-rotate",
        target_type="AuditKey",
        target_id=key.id,
        outcome="success",
        detail={"previous": previous},
    )
    return KeyPublic(key_id=key.id, path=str(ring.path))


# --- export and retention -----------------------------------------------------------------------------


class ExportPublic(BaseModel):
    path: str
    records: int
    first_seq: int | None
    last_seq: int | None


def export(
    ctx: ctx_module.Context,
    *,
    principal: Actor,
    path: Path,
    after_seq: int = 0,
    through_seq: int | None = None,
) -> ExportPublic:
    """Write records as JSON lines (the auditor's copy, or the archive before retention)."""
    _authorize_reading(ctx, principal, "audit.read")
    return _export(ctx, path=path, after_seq=after_seq, through_seq=through_seq)


def export_lines(ctx: ctx_module.Context, *, principal: Actor, after_seq: int = 0) -> Iterator[str]:
    """The records after ``after_seq`` as JSON lines, the format of ``export`` (for a remote auditor).

    Authorises and reads before it returns (not on the first line streamed), so a refusal is
    a 403 answer rather than a response cut off after its status was sent.
    """
    _authorize_reading(ctx, principal, "audit.read")
    with ctx.read() as tx:
        items = list(audit.iterate_all(tx, after_seq=after_seq))
    return (json.dumps(dataclasses.asdict(item), ensure_ascii=False, sort_keys=True) + "\n" for item in items)


def _export(ctx: ctx_module.Context, *, path: Path, after_seq: int, through_seq: int | None) -> ExportPublic:
    path.parent.mkdir(parents=True, exist_ok=True)
    first = last = None
    count = 0
    partial = path.with_name(path.name + ".partial")
    with ctx.read() as tx, partial.open("w", encoding="utf-8") as out:
        for item in audit.iterate_all(tx, after_seq=after_seq):
            if through_seq is not None and item.seq > through_seq:
                break
            out.write(json.dumps(dataclasses.asdict(item), ensure_ascii=False, sort_keys=True) + "\n")
            first = item.seq if first is None else first
            last, count = item.seq, count + 1
        out.flush()
        os.fsync(out.fileno())
    partial.replace(path)
    return ExportPublic(path=str(path), records=count, first_seq=first, last_seq=last)


_RETENTION = access.Principal(id="system:retention", role="system")


def apply_retention(ctx: ctx_module.Context, *, archive_dir: Path | None = None) -> ExportPublic:
    """Export the records older than the retention period, then remove them from the store.

    A system function of the management center (the log's own housekeeping), not a
    principal's action: it is itself audited, and it never removes a record that was not
    written to the archive first.
    """
    cutoff = ctx.clock.now() - ctx.settings.audit_retention_days * 86400
    with ctx.read() as tx:
        through = audit.last_seq_before(tx, at=cutoff)
        after, _hash = audit.anchor(tx)
    directory = archive_dir or ctx.settings.home / "audit-archive"
    if through <= after:
        return ExportPublic(path=str(directory), records=0, first_seq=None, last_seq=None)
    archived = _export(
        ctx,
        path=directory / f"audit-{after + 1:012d}-{through:012d}.jsonl",
        after_seq=after,
        through_seq=through,
    )
    with ctx.transaction() as tx:
        audit.prune(tx, through_seq=through)
        record(
            ctx,
            principal=_RETENTION,
            action="audit.retention",
            target_type="AuditLog",
            target_id="audit",
            outcome="success",
            detail={"archived": archived.path, "records": archived.records, "through_seq": through},
            tx=tx,
        )
    return archived
