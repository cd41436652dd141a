"""Who is calling: bearer tokens, principals, lockouts, policy checks and the request id.

Invariants:
- A token is ``cct_<id>.<secret>``; only ``sha256(salt + secret)`` is stored, the
  secret is shown once. Revoked or expired tokens never authenticate.
- Every failed authentication is audited; after ``lockout_failures`` failures from
  one client within ``lockout_window_s`` that client is locked out for
  ``lockout_s`` (answers 429) — guessing tokens is not free. Defaults (settings):
  5 failures within 15 minutes lock a client out for 15 minutes.
- Department principals carry their org path, so policies can scope them to
  their subtree; a department asking for another department's object gets
  ``NotFound``, never the object and never a hint that it exists.
- The policy engine is parsed once per context and reused.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import getpass
import hashlib
import hmac
import secrets
import threading
import uuid
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.policy import engine as policy_engine
from cloudctl.services import context as ctx_module
from cloudctl.store import orgs, tokens

Principal = policy_engine.Principal
OPERATOR_ROLES = ("sysadmin", "secadmin", "auditor")
DEPARTMENT_ROLES = ("dept-admin", "dept-user")
ROLES = (*DEPARTMENT_ROLES, *OPERATOR_ROLES)
TOKEN_PREFIX = "cct_"

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("cloudctl_request_id", default="")


def current_request_id() -> str:
    return _request_id.get()


@contextlib.contextmanager
def request_id_scope(request_id: str | None = None) -> Iterator[str]:
    """Tag everything done inside (logs, audit records) with one request id."""
    value = request_id or uuid.uuid4().hex
    token = _request_id.set(value)
    try:
        yield value
    finally:
        _request_id.reset(token)


def local_operator(role: str = "sysadmin") -> Principal:
    """The operator at the management center's own shell (the CLI without ``--api``)."""
    return Principal(id=f"local:{_user()}", role=role)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"


# --- policies ----------------------------------------------------------------------------------------


def policies(ctx: ctx_module.Context) -> policy_engine.PolicyEngine:
    engine = ctx.cache.get("policy_engine")
    if engine is None:
        engine = policy_engine.PolicyEngine.load(ctx.settings.policies)
        ctx.cache["policy_engine"] = engine
    assert isinstance(engine, policy_engine.PolicyEngine)
    return engine


def is_department(principal: Principal) -> bool:
    return principal.role in DEPARTMENT_ROLES


def authorize(
    ctx: ctx_module.Context,
    *,
    principal: Principal,
    action: str,
    resource_type: str,
    resource_id: str,
    owner: str = "",
    owner_path: tuple[str, ...] = (),
    attributes: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    hide_as_missing: bool = False,
) -> policy_engine.Decision:
    """Ask the policies; a refusal raises ``PolicyDenied`` — or ``NotFound`` for a department
    asking about an object outside its subtree (``hide_as_missing``): no hint that it exists."""
    resource = policy_engine.Resource(
        type=resource_type, id=resource_id, owner=owner, owner_path=owner_path, attributes=attributes or {}
    )
    decision = policies(ctx).decide(principal=principal, action=action, resource=resource, context=context)
    if decision.allowed:
        return decision
    if hide_as_missing and is_department(principal) and principal.department not in owner_path:
        raise errors.NotFound(f"no {resource_type.lower()} {resource_id!r}", field=resource_type.lower())
    raise errors.PolicyDenied(decision, action=action)


def department_path(ctx: ctx_module.Context, department: str) -> tuple[str, ...]:
    with ctx.read() as tx:
        return tuple(orgs.get_node(tx, department, field="department").ancestor_ids)


# --- tokens ---------------------------------------------------------------------------------------------


class TokenPublic(BaseModel):
    id: str
    name: str
    role: str
    department: str
    created_by: str
    created_at: str
    expires_at: str | None
    revoked_at: str | None


class IssuedToken(BaseModel):
    token: TokenPublic
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
        raise errors.InvalidInput(f"a {role} token belongs to a department; name it", field="dept")
    if role in OPERATOR_ROLES and department:
        raise errors.InvalidInput(f"a {role} token belongs to no department", field="dept")
    if expires_in_s is not None and expires_in_s <= 0:
        raise errors.InvalidInput("must be positive", field="expires_in_s")
    owner_path = department_path(ctx, department) if department else ()
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
    record = tokens.TokenRecord(
        id=secrets.token_hex(6),
        name=name or f"{role}@{department or 'operators'}",
        role=role,
        department=department or "",
        salt=secrets.token_hex(16),
        secret_hash="",
        created_by=principal.id,
        created_at=now,
        expires_at=None if expires_in_s is None else now + expires_in_s,
        revoked_at=None,
    )
    record = dataclasses.replace(record, secret_hash=_hash(record.salt, secret))
    with ctx.transaction() as tx:
        tokens.insert_token(tx, record)
        _audit(
            ctx,
            tx,
            principal,
            "token.create",
            target_id=record.id,
            detail={"role": role, "department": department or ""},
        )
    return IssuedToken(token=_public_token(record), secret=f"{TOKEN_PREFIX}{record.id}.{secret}")


def list_tokens(
    ctx: ctx_module.Context, *, principal: Principal, include_revoked: bool = False
) -> list[TokenPublic]:
    authorize(ctx, principal=principal, action="token.list", resource_type="Token", resource_id="all")
    with ctx.read() as tx:
        return [_public_token(r) for r in tokens.list_tokens(tx, include_revoked=include_revoked)]


def revoke_token(ctx: ctx_module.Context, *, principal: Principal, token_id: str) -> TokenPublic:
    with ctx.read() as tx:
        current = tokens.get_token(tx, token_id)
    owner_path = department_path(ctx, current.department) if current.department else ()
    authorize(
        ctx,
        principal=principal,
        action="token.revoke",
        resource_type="Token",
        resource_id=token_id,
        owner=current.department,
        owner_path=owner_path,
    )
    with ctx.transaction() as tx:
        record = tokens.revoke_token(tx, token_id, now=ctx.clock.now())
        _audit(ctx, tx, principal, "token.revoke", target_id=token_id, detail={})
    forget_token(ctx, token_id)
    return _public_token(record)


def _audit(
    ctx: ctx_module.Context,
    tx: Any,
    principal: Principal,
    action: str,
    *,
    target_id: str,
    detail: dict[str, Any],
) -> None:
    from cloudctl.services import audit

    audit.record(
        ctx,
        principal=principal,
        action=action,
        target_type="Token",
        target_id=target_id,
        outcome="success",
        detail=detail,
        tx=tx,
    )


# --- authentication -------------------------------------------------------------------------------------


class Lockouts:
    """Failed authentications per client, and who is locked out; in memory, per process."""

    def __init__(self, clock: clocks.Clock, *, failures: int, window_s: float, lockout_s: float) -> None:
        self._clock = clock
        self.failures = failures
        self.window_s = window_s
        self.lockout_s = lockout_s
        self._failures: dict[str, list[float]] = {}
        self._locked_until: dict[str, float] = {}
        self._lock = threading.Lock()
        self.lockouts_total = 0
        self.failures_total = 0

    def locked(self, client: str) -> bool:
        with self._lock:
            until = self._locked_until.get(client)
            if until is None:
                return False
            if self._clock.now() >= until:
                del self._locked_until[client]
                return False
            return True

    def failed(self, client: str) -> bool:
        """Count a failure; ``True`` when it locks the client out."""
        now = self._clock.now()
        with self._lock:
            self.failures_total += 1
            recent = [at for at in self._failures.get(client, []) if now - at < self.window_s]
            recent.append(now)
            self._failures[client] = recent
            if len(recent) >= self.failures:
                self._locked_until[client] = now + self.lockout_s
                self._failures.pop(client, None)
                self.lockouts_total += 1
                return True
            return False

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


class AuthenticationFailed(errors.CloudctlError):
    """The bearer token is missing, malformed, unknown, revoked or expired (HTTP 401)."""

    exit_code = 2


class LockedOut(errors.CloudctlError):
    """Too many failed authentications from this client (HTTP 429)."""

    exit_code = 2


def lockouts(ctx: ctx_module.Context) -> Lockouts:
    tracker = ctx.cache.get("lockouts")
    if tracker is None:
        settings = ctx.settings
        tracker = Lockouts(
            ctx.clock,
            failures=settings.lockout_failures,
            window_s=settings.lockout_window_s,
            lockout_s=settings.lockout_s,
        )
        ctx.cache["lockouts"] = tracker
    assert isinstance(tracker, Lockouts)
    return tracker


def authenticate(ctx: ctx_module.Context, *, authorization: str | None, client: str) -> Principal:
    """The principal of an ``Authorization: Bearer`` header, or ``AuthenticationFailed``/``LockedOut``."""
    tracker = lockouts(ctx)
    if tracker.locked(client):
        raise LockedOut("too many failed authentications; try again later", field="authorization")
    reason, token_id = _check_bearer(ctx, authorization)
    if reason is None:
        tracker.succeeded(client)
        return cached_token(ctx, token_id).principal or _principal_of(ctx, token_id)
    locked = tracker.failed(client)
    from cloudctl import metrics
    from cloudctl.services import audit

    metrics.AUTH_FAILURES.labels(reason=reason).inc()
    if locked:
        metrics.AUTH_LOCKOUTS.inc()

    anonymous = Principal(id=f"client:{client}", role="dept-user")
    audit.record(
        ctx,
        principal=anonymous,
        action="auth.authenticate",
        target_type="Token",
        target_id=token_id or "-",
        outcome="denied",
        detail={"reason": reason, "locked_out": locked},
    )
    if locked:
        raise LockedOut("too many failed authentications; try again later", field="authorization")
    raise AuthenticationFailed(reason, field="authorization")


def _check_bearer(ctx: ctx_module.Context, authorization: str | None) -> tuple[str | None, str]:
    if not authorization:
        return "missing bearer token", ""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.startswith(TOKEN_PREFIX) or "." not in value:
        return "malformed bearer token", ""
    token_id, _, secret = value[len(TOKEN_PREFIX) :].partition(".")
    record = cached_token(ctx, token_id).record
    if record is None or not hmac.compare_digest(record.secret_hash, _hash(record.salt, secret)):
        return "unknown token", token_id
    if record.revoked_at is not None:
        return "revoked token", token_id
    if record.expires_at is not None and ctx.clock.now() >= record.expires_at:
        return "expired token", token_id
    return None, token_id


def _principal_of(ctx: ctx_module.Context, token_id: str) -> Principal:
    with ctx.read() as tx:
        record = tokens.get_token(tx, token_id)
        path: tuple[str, ...] = ()
        if record.department:
            node = orgs.find_node(tx, record.department)
            path = tuple(node.ancestor_ids) if node else (record.department,)
    return Principal(
        id=f"token:{record.id}", role=record.role, department=record.department, department_path=path
    )


# --- the token cache ------------------------------------------------------------------------------------

TOKEN_CACHE_TTL_S = 5.0
"""How long a token read from the store is trusted without reading it again. A revocation in
this process takes effect at once; one made by another process within this time."""


@dataclasses.dataclass(frozen=True)
class CachedToken:
    record: tokens.TokenRecord | None
    principal: Principal | None
    read_at: float


def cached_token(ctx: ctx_module.Context, token_id: str) -> CachedToken:
    """A token and the principal it authenticates, from the cache or from one read of the store."""
    entries: dict[str, CachedToken] = ctx.cache.setdefault("tokens", {})
    now = ctx.clock.now()
    entry = entries.get(token_id)
    if entry is not None and 0 <= now - entry.read_at < TOKEN_CACHE_TTL_S:
        return entry
    with ctx.read() as tx:
        record = tokens.find_token(tx, token_id)
        principal = None
        if record is not None:
            node = orgs.find_node(tx, record.department) if record.department else None
            path = tuple(node.ancestor_ids) if node else ((record.department,) if record.department else ())
            principal = Principal(
                id=f"token:{record.id}", role=record.role, department=record.department, department_path=path
            )
    entry = CachedToken(record=record, principal=principal, read_at=now)
    if record is not None:
        if len(entries) >= 10_000:
            entries.clear()
        entries[token_id] = entry
    return entry


def forget_token(ctx: ctx_module.Context, token_id: str) -> None:
    """Drop a token from the cache (it was revoked)."""
    ctx.cache.get("tokens", {}).pop(token_id, None)
