"""Who is calling: bearer tokens, authentication, lockouts.

Invariants:
- A token is ``cct_<id>.<secret>``; only ``sha256(salt + secret)`` is stored, the secret is
  shown once. Token ids are random, and a row is never deleted, so an id is never reused.
  Revoked or expired tokens never authenticate; neither does a token whose department was
  deleted (deleting a department revokes its tokens in the same transaction, and a department
  created again under the same id is younger than any token issued before: it inherits none).
- Lockout (defaults: 5 failures within 15 minutes lock for 15 minutes, settings
  ``lockout_*``) is counted per token id: guessing the secret of a known token, or using a
  revoked or expired one, locks that token, whatever the source. Unknown and malformed tokens
  are counted per source address instead, and a throttled source is refused only its failing
  attempts: a request with a valid token is never refused for other clients' failures. A
  success resets no count.
- The source address is the peer's; ``X-Forwarded-For`` is believed only from the trusted
  proxies of the settings (``api`` applies that rule before calling ``authenticate``).
- Every failed authentication is audited with a validated, bounded token id. The first
  failure of a (source, token, reason) is recorded at once; the ones that follow within
  ``auth_audit_aggregate_s`` become one summary record with their count, so guessing cannot
  flood the log. Each lockout is recorded on its own.
- Authorisation lives in ``services.access`` (re-exported here for the callers of old).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import hmac
import re
import secrets
import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import BaseModel, ConfigDict

from cloudctl import clock as clocks
from cloudctl import errors, metrics
from cloudctl.model import topology as topo
from cloudctl.services import access, audit
from cloudctl.services import context as ctx_module
from cloudctl.store import orgs, tokens

Principal = access.Principal
OPERATOR_ROLES = access.OPERATOR_ROLES
DEPARTMENT_ROLES = access.DEPARTMENT_ROLES
ROLES = access.ROLES
local_operator = access.local_operator
policies = access.policies
is_department = access.is_department
authorize = access.authorize
department_path = access.department_path
visible_node = access.visible_node


TOKEN_PREFIX = "cct_"
MAX_TOKEN_LIFETIME_S = 10 * 365 * 86400
"""Ten years: a token that should outlive that is issued without an expiry."""
TOKEN_ID = re.compile(r"[0-9a-f]{8,32}")
"""What a token id looks like; anything else in a header is malformed and never stored."""
ANONYMOUS = Principal(id="anonymous", role="anonymous")


# --- tokens ---------------------------------------------------------------------------------------------


TOKEN_EXAMPLE: dict[str, Any] = {
    "id": "3f9c2a7d5e41b086",
    "name": "社保中心运维",
    "role": "dept-admin",
    "department": "hrss-insurance",
    "created_by": "token:c41e09b7d2a85f36",
    "created_at": "2026-11-18T02:15:00Z",
    "expires_at": "2027-02-16T02:15:00Z",
    "revoked_at": None,
}


class TokenPublic(BaseModel):
    """A bearer token as the secadmin sees it: who it stands for, never its secret."""

    model_config = ConfigDict(use_attribute_docstrings=True, json_schema_extra={"examples": [TOKEN_EXAMPLE]})

    id: str
    """16 hex digits, random, never reused; the part of the bearer token between ``cct_`` and the dot."""
    name: str
    """A name to recognise the token by; ``<role>@<department or operators>`` when none was given."""
    role: str
    """``dept-admin``, ``dept-user``, ``sysadmin``, ``secadmin`` or ``auditor``."""
    department: str
    """The org node a department role acts for; empty for the operator roles."""
    created_by: str
    """Who issued it: ``token:<token id>``, or ``local:<user>`` at the management center's shell."""
    created_at: str
    """When it was issued (ISO 8601 UTC)."""
    expires_at: str | None
    """When it stops authenticating (ISO 8601 UTC); null: never expires."""
    revoked_at: str | None
    """When it was revoked (ISO 8601 UTC), by hand or with its department; null: not revoked."""


class IssuedToken(BaseModel):
    """A token just issued, with its secret: the only time the secret is shown."""

    model_config = ConfigDict(
        use_attribute_docstrings=True,
        json_schema_extra={
            "examples": [
                {
                    "token": TOKEN_EXAMPLE,
                    "secret": "cct_3f9c2a7d5e41b086.P7bhxxMHhfeiChxnNdXt7PisRVSGy32UyWFPgnHn1JY",
                }
            ]
        },
    )

    token: TokenPublic
    """The token as listed from now on."""
    secret: str
    """The bearer token; shown once, never stored."""


def _hash(salt: str, secret: str) -> str:
    return hashlib.sha256((salt + secret).encode()).hexdigest()


def _public_token(record: tokens.TokenRecord) -> TokenPublic:
    return TokenPublic(
        id=record.id,
        name=record.name,
        role=record.role,
        department=record.department,
        created_by=record.created_by,
        created_at=clocks.isoformat(record.created_at),
        expires_at=None if record.expires_at is None else clocks.isoformat(record.expires_at),
        revoked_at=None if record.revoked_at is None else clocks.isoformat(record.revoked_at),
    )


@audit.audits_refusals(action="token.create", target_type="Token")
def create_token(
    ctx: ctx_module.Context,
    *,
    principal: Principal,
    role: str,
    department: str | None = None,
    name: str = "",
    expires_in_s: float | None = None,
) -> IssuedToken:
    if role not in ROLES:
        raise errors.InvalidInput(f"unknown role {role!r} (known: {', '.join(ROLES)})", field="role")
    if role in DEPARTMENT_ROLES and not department:
        raise errors.InvalidInput(f"a {role} token belongs to a department; name it", field="department")
    if role in OPERATOR_ROLES and department:
        raise errors.InvalidInput(f"a {role} token belongs to no department", field="department")
    if expires_in_s is not None and not 0 < expires_in_s <= MAX_TOKEN_LIFETIME_S:
        raise errors.InvalidInput(
            f"must be positive and at most {MAX_TOKEN_LIFETIME_S} (ten years); leave out for no expiry",
            field="expires_in_s",
        )
    if len(name) > 100:
        raise errors.InvalidInput("at most 100 characters", field="name")
    topo.check_one_line(name, field="name")
    owner_path = department_path(ctx, department) if department else ()
    if department:
        visible_node(principal, department, owner_path, field="department")
    authorize(
        ctx,
        principal=principal,
        action="token.create",
        resource_type="Token",
        resource_id="new",
        owner=department or "",
        owner_path=owner_path,
    )
    now = ctx.clock.now()
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_hex(16)
    record = tokens.TokenRecord(
        id=secrets.token_hex(8),
        name=name or f"{role}@{department or 'operators'}",
        role=role,
        department=department or "",
        salt=salt,
        secret_hash=_hash(salt, secret),
        created_by=principal.id,
        created_at=now,
        expires_at=None if expires_in_s is None else now + expires_in_s,
        revoked_at=None,
    )
    with ctx.transaction() as tx:
        if department:
            orgs.get_node(tx, department, field="department")  # not deleted since its path was read
        tokens.insert_token(tx, record)
        audit.record(
            ctx,
            principal=principal,
            action="token.create",
            target_type="Token",
            target_id=record.id,
            outcome="success",
            detail={"role": role, "department": department or ""},
            tx=tx,
        )
    return IssuedToken(token=_public_token(record), secret=f"{TOKEN_PREFIX}{record.id}.{secret}")


def list_tokens(
    ctx: ctx_module.Context, *, principal: Principal, include_revoked: bool = False
) -> list[TokenPublic]:
    authorize(ctx, principal=principal, action="token.list", resource_type="Token", resource_id="all")
    with ctx.read() as tx:
        return [_public_token(r) for r in tokens.list_tokens(tx, include_revoked=include_revoked)]


@audit.audits_refusals(action="token.revoke", target_type="Token", target="token_id")
def revoke_token(ctx: ctx_module.Context, *, principal: Principal, token_id: str) -> TokenPublic:
    with ctx.read() as tx:
        current = tokens.get_token(tx, token_id)
        node = orgs.find_node(tx, current.department) if current.department else None
    owner_path = tuple(node.ancestor_ids) if node else ((current.department,) if current.department else ())
    authorize(
        ctx,
        principal=principal,
        action="token.revoke",
        resource_type="Token",
        resource_id=token_id,
        owner=current.department,
        owner_path=owner_path,
        hide_as_missing=True,  # another department's token is answered as a missing one
    )
    with ctx.transaction() as tx:
        record = tokens.revoke_token(tx, token_id, now=ctx.clock.now())
        audit.record(
            ctx,
            principal=principal,
            action="token.revoke",
            target_type="Token",
            target_id=token_id,
            outcome="success",
            tx=tx,
        )
    forget_token(ctx, token_id)
    return _public_token(record)


# --- lockouts -------------------------------------------------------------------------------------------


class Lockouts:
    """Recent failures per key (``token:<id>`` or ``source:<address>``) and which keys are locked.

    In memory, per process; bounded: at most ``max_keys`` keys are tracked, the stalest dropped first.
    """

    def __init__(
        self,
        clock: clocks.Clock,
        *,
        failures: int,
        window_s: float,
        lockout_s: float,
        max_keys: int = 100_000,
    ) -> None:
        self._clock = clock
        self.failures = failures
        self.window_s = window_s
        self.lockout_s = lockout_s
        self.max_keys = max_keys
        self._failures: dict[str, collections.deque[float]] = {}
        self._locked_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def remaining_s(self, key: str) -> float:
        """How long ``key`` stays locked out (0: it is not)."""
        now = self._clock.now()
        with self._lock:
            until = self._locked_until.get(key)
            if until is None:
                return 0.0
            if now >= until:
                del self._locked_until[key]
                return 0.0
            return until - now

    def failed(self, key: str) -> bool:
        """Count a failure; ``True`` when it locks ``key`` out."""
        now = self._clock.now()
        with self._lock:
            recent = self._recent(key, now)
            recent.append(now)
            if len(recent) >= self.failures:
                self._locked_until[key] = now + self.lockout_s
                del self._failures[key]
                return True
            return False

    def _recent(self, key: str, now: float) -> collections.deque[float]:
        recent = self._failures.get(key)
        if recent is None:
            if len(self._failures) >= self.max_keys:
                self._forget_stale(now)
            recent = self._failures[key] = collections.deque(maxlen=self.failures)
        while recent and now - recent[0] >= self.window_s:
            recent.popleft()
        return recent

    def _forget_stale(self, now: float) -> None:
        for key in [
            k for k, times in self._failures.items() if not times or now - times[-1] >= self.window_s
        ]:
            del self._failures[key]
        while len(self._failures) >= self.max_keys:
            del self._failures[next(iter(self._failures))]

    def locked(self, prefix: str) -> int:
        now = self._clock.now()
        with self._lock:
            return sum(
                1 for key, until in self._locked_until.items() if key.startswith(prefix) and until > now
            )


class FailureStats:
    """Failed authentications per source and per token id within a window, for ``/metrics``."""

    def __init__(self, clock: clocks.Clock, *, window_s: float, max_keys: int = 10_000) -> None:
        self._clock = clock
        self.window_s = window_s
        self.max_keys = max_keys
        self._seen: dict[str, collections.deque[float]] = {}
        self._lock = threading.Lock()

    def add(self, *keys: str) -> None:
        now = self._clock.now()
        with self._lock:
            for key in keys:
                times = self._seen.get(key)
                if times is None:
                    if len(self._seen) >= self.max_keys:
                        self._prune(now)
                        if len(self._seen) >= self.max_keys:
                            continue
                    times = self._seen[key] = collections.deque()
                times.append(now)

    def top(self, prefix: str, count: int) -> list[tuple[str, int]]:
        now = self._clock.now()
        with self._lock:
            self._prune(now)
            found = [
                (key[len(prefix) :], len(times))
                for key, times in self._seen.items()
                if key.startswith(prefix)
            ]
        return sorted(found, key=lambda item: (-item[1], item[0]))[:count]

    def _prune(self, now: float) -> None:
        for key in list(self._seen):
            times = self._seen[key]
            while times and now - times[0] >= self.window_s:
                times.popleft()
            if not times:
                del self._seen[key]


@dataclasses.dataclass
class _Burst:
    first: audit.RequestScope
    first_at: float
    last_at: float
    principal_token: str
    reason: str
    more: int = 0


class FailureRecorder:
    """Audits failed authentications: the first of each (source, token, reason) at once, the
    ones that follow within ``window_s`` as one summary record when the window closes."""

    OVERFLOW = ("*", "*", "*")

    def __init__(self, *, window_s: float, max_open: int = 10_000) -> None:
        self.window_s = window_s
        self.max_open = max_open
        self._open: dict[tuple[str, str, str], _Burst] = {}
        self._lock = threading.Lock()

    def note(self, *, source: str, token_id: str, reason: str, now: float) -> bool:
        """``True``: record this failure now; ``False``: it was counted into an open window."""
        key = (source, token_id, reason)
        with self._lock:
            burst = self._open.get(key)
            if burst is None and len(self._open) >= self.max_open:
                key = self.OVERFLOW
                burst = self._open.get(key)
            if burst is not None and now - burst.first_at < self.window_s:
                burst.more += 1
                burst.last_at = now
                return False
            self._open[key] = _Burst(audit.current_scope(), now, now, token_id, reason)
            return key != self.OVERFLOW

    def closed(self, now: float, *, flush_all: bool = False) -> list[_Burst]:
        """Windows that ended (all of them with ``flush_all``) with failures still unrecorded."""
        with self._lock:
            done = [k for k, b in self._open.items() if flush_all or now - b.first_at >= self.window_s]
            return [b for b in (self._open.pop(k) for k in done) if b.more]


def _tracker(ctx: ctx_module.Context, name: str, make: Any) -> Any:
    found = ctx.cache.get(name)
    if found is None:
        found = ctx.cache.setdefault(name, make())
    return found


def lockouts(ctx: ctx_module.Context) -> Lockouts:
    settings = ctx.settings
    tracker: Lockouts = _tracker(
        ctx,
        "identity.lockouts",
        lambda: Lockouts(
            ctx.clock,
            failures=settings.lockout_failures,
            window_s=settings.lockout_window_s,
            lockout_s=settings.lockout_s,
        ),
    )
    return tracker


def failure_stats(ctx: ctx_module.Context) -> FailureStats:
    stats: FailureStats = _tracker(
        ctx, "identity.failure_stats", lambda: FailureStats(ctx.clock, window_s=ctx.settings.lockout_window_s)
    )
    return stats


def _failure_recorder(ctx: ctx_module.Context) -> FailureRecorder:
    recorder: FailureRecorder = _tracker(
        ctx,
        "identity.failure_recorder",
        lambda: FailureRecorder(window_s=ctx.settings.auth_audit_aggregate_s),
    )
    return recorder


# --- authentication -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Checked:
    reason: str | None
    """``None``: authenticated; else why not (missing, malformed, unknown, wrong secret, ...)."""
    token_id: str
    """The token id when it has a token id's shape, else empty: never the raw header."""
    known: bool
    principal: Principal | None = None


def authenticate(ctx: ctx_module.Context, *, authorization: str | None, source: str) -> Principal:
    """The principal of an ``Authorization: Bearer`` header, or ``AuthenticationFailed``/``LockedOut``.

    ``source`` is the caller's address after the trusted-proxy rule.
    """
    checked = _check_bearer(ctx, authorization)
    assert checked is not None
    tracker = lockouts(ctx)
    key = f"token:{checked.token_id}" if checked.known else f"source:{source}"
    remaining = tracker.remaining_s(key) if checked.known or checked.reason is not None else 0.0
    if remaining > 0:
        _failed(ctx, checked, source=source, reason="locked out", locked=False)
        raise audit.mark_recorded(
            errors.LockedOut("too many failed authentications; try again later", retry_after_s=remaining)
        )
    if checked.reason is None:
        assert checked.principal is not None
        return checked.principal
    locked = tracker.failed(key)
    _failed(ctx, checked, source=source, reason=checked.reason, locked=locked)
    if locked:
        raise audit.mark_recorded(
            errors.LockedOut(
                "too many failed authentications; try again later", retry_after_s=tracker.lockout_s
            )
        )
    public = "unknown token" if checked.reason in ("unknown token id", "wrong secret") else checked.reason
    raise audit.mark_recorded(errors.AuthenticationFailed(public, field="authorization"))


def _failed(ctx: ctx_module.Context, checked: _Checked, *, source: str, reason: str, locked: bool) -> None:
    metrics.AUTH_FAILURES.labels(reason=reason).inc()
    stats = failure_stats(ctx)
    stats.add(f"source:{source}", *([f"token:{checked.token_id}"] if checked.token_id else []))
    now = ctx.clock.now()
    recorder = _failure_recorder(ctx)
    entries = [_summary(ctx, burst) for burst in recorder.closed(now)]
    if recorder.note(source=source, token_id=checked.token_id, reason=reason, now=now):
        entries.append(
            _failure_entry(
                ctx, token_id=checked.token_id, action="auth.authenticate", detail={"reason": reason}
            )
        )
    if locked:
        kind = "token" if checked.known else "source"
        metrics.AUTH_LOCKOUTS.labels(kind=kind).inc()
        entries.append(
            _failure_entry(
                ctx,
                token_id=checked.token_id,
                action="auth.lockout",
                detail={"reason": reason, "locked": kind, "lockout_s": ctx.settings.lockout_s},
            )
        )
    if entries:
        audit.append_entries(ctx, entries)


def _failure_entry(ctx: ctx_module.Context, *, token_id: str, action: str, detail: dict[str, Any]) -> Any:
    return audit.entry(
        ctx,
        principal=ANONYMOUS,
        action=action,
        target_type="Token",
        target_id=token_id or "-",
        outcome="denied",
        detail=detail,
    )


def _summary(ctx: ctx_module.Context, burst: _Burst) -> Any:
    with audit.request_scope(burst.first.request_id, source=burst.first.source):
        return _failure_entry(
            ctx,
            token_id=burst.principal_token,
            action="auth.authenticate",
            detail={
                "reason": burst.reason,
                "aggregated": True,
                "attempts": burst.more,
                "first_at": clocks.isoformat(burst.first_at),
                "last_at": clocks.isoformat(burst.last_at),
            },
        )


def flush_failed_authentications(ctx: ctx_module.Context, *, everything: bool = False) -> int:
    """Write the summary records of failure windows that closed; how many were written."""
    bursts = _failure_recorder(ctx).closed(ctx.clock.now(), flush_all=everything)
    if bursts:
        audit.append_entries(ctx, [_summary(ctx, burst) for burst in bursts])
    return len(bursts)


def authenticate_cached(ctx: ctx_module.Context, *, authorization: str | None) -> Principal | None:
    """``authenticate``'s principal when it needs nothing but memory, else ``None``.

    It answers only a valid bearer token read from the store within ``TOKEN_CACHE_TTL_S``
    and not locked out: what ``authenticate`` would answer without a read or a write. Anything
    else (a token not in the cache, or any failure, which is counted and audited) is ``None``:
    call ``authenticate``, off the event loop. The event loop answers most calls this way
    instead of handing each to a worker thread.
    """
    checked = _check_bearer(ctx, authorization, cached_only=True)
    if checked is None or checked.reason is not None or checked.principal is None:
        return None
    if lockouts(ctx).remaining_s(f"token:{checked.token_id}") > 0:
        return None
    return checked.principal


def _check_bearer(
    ctx: ctx_module.Context, authorization: str | None, *, cached_only: bool = False
) -> _Checked | None:
    """What the header proves; ``None`` when ``cached_only`` and the token is not in the cache."""
    if not authorization:
        return _Checked("missing bearer token", "", known=False)
    scheme, _, value = authorization.partition(" ")
    token_id, dot, secret = value[len(TOKEN_PREFIX) :].partition(".")
    if scheme.lower() != "bearer" or not value.startswith(TOKEN_PREFIX) or not dot:
        return _Checked("malformed bearer token", "", known=False)
    if not TOKEN_ID.fullmatch(token_id) or not 16 <= len(secret) <= 100:
        return _Checked(
            "malformed bearer token", token_id if TOKEN_ID.fullmatch(token_id) else "", known=False
        )
    cached = _fresh_in_cache(ctx, token_id) if cached_only else cached_token(ctx, token_id)
    if cached is None:
        return None
    record, node = cached.record, cached.node
    if record is None:
        return _Checked("unknown token id", token_id, known=False)
    if not hmac.compare_digest(record.secret_hash, _hash(record.salt, secret)):
        return _Checked("wrong secret", token_id, known=True)
    if record.revoked_at is not None:
        return _Checked("revoked token", token_id, known=True)
    if record.expires_at is not None and ctx.clock.now() >= record.expires_at:
        return _Checked("expired token", token_id, known=True)
    if record.department and (node is None or node.created_at > record.created_at):
        return _Checked("revoked token", token_id, known=True)  # its department was deleted
    principal = Principal(
        id=f"token:{record.id}",
        role=record.role,
        department=record.department,
        department_path=tuple(node.ancestor_ids) if node else (),
    )
    return _Checked(None, token_id, known=True, principal=principal)


# --- the token cache ------------------------------------------------------------------------------------

TOKEN_CACHE_TTL_S = 5.0
"""How long a token read from the store is trusted without reading it again. A revocation in
this process takes effect at once; one made by another process within this time."""


@dataclasses.dataclass(frozen=True)
class CachedToken:
    record: tokens.TokenRecord | None
    node: orgs.OrgNode | None
    """The token's department as it was read with the token (``None``: no department, or deleted)."""
    read_at: float


def cached_token(ctx: ctx_module.Context, token_id: str) -> CachedToken:
    """A token and its department node, from the cache or from one read of the store."""
    entry = _fresh_in_cache(ctx, token_id)
    if entry is not None:
        return entry
    entries: dict[str, CachedToken] = ctx.cache.setdefault("tokens", {})
    now = ctx.clock.now()
    with ctx.read() as tx:
        record = tokens.find_token(tx, token_id)
        node = orgs.find_node(tx, record.department) if record is not None and record.department else None
    entry = CachedToken(record=record, node=node, read_at=now)
    if record is not None:
        if len(entries) >= 10_000:
            entries.clear()
        entries[token_id] = entry
    return entry


def _fresh_in_cache(ctx: ctx_module.Context, token_id: str) -> CachedToken | None:
    """The cached token read within ``TOKEN_CACHE_TTL_S``, or ``None``."""
    entry = ctx.cache.get("tokens", {}).get(token_id)
    if entry is not None and 0 <= ctx.clock.now() - entry.read_at < TOKEN_CACHE_TTL_S:
        assert isinstance(entry, CachedToken)
        return entry
    return None


def forget_token(ctx: ctx_module.Context, token_id: str | None = None) -> None:
    """Drop a token from the cache (it was revoked), or every token (a department was deleted)."""
    if token_id is None:
        ctx.cache.pop("tokens", None)
    else:
        ctx.cache.get("tokens", {}).pop(token_id, None)


# --- metrics --------------------------------------------------------------------------------------------

TOP_OFFENDERS = 10


class AuthCollector(Collector):
    """Failed authentications of the last lockout window by source and by token (the top
    ``TOP_OFFENDERS`` of each, so label sets stay bounded) and what is locked out now."""

    def __init__(self, ctx: ctx_module.Context) -> None:
        self._ctx = ctx

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats = failure_stats(self._ctx)
        by_source = GaugeMetricFamily(
            "cloudctl_auth_recent_failures_by_source",
            f"Failed authentications within the lockout window, for the {TOP_OFFENDERS} sources with most.",
            labels=["source"],
        )
        for source, count in stats.top("source:", TOP_OFFENDERS):
            by_source.add_metric([source], float(count))
        by_token = GaugeMetricFamily(
            "cloudctl_auth_recent_failures_by_token",
            f"Failed authentications within the lockout window, for the {TOP_OFFENDERS} token ids with most.",
            labels=["token"],
        )
        for token_id, count in stats.top("token:", TOP_OFFENDERS):
            by_token.add_metric([token_id], float(count))
        locked = GaugeMetricFamily(
            "cloudctl_auth_locked_out", "Tokens and sources locked out now, by kind.", labels=["kind"]
        )
        tracker = lockouts(self._ctx)
        for kind in ("token", "source"):
            locked.add_metric([kind], float(tracker.locked(f"{kind}:")))
        yield by_source
        yield by_token
        yield locked
