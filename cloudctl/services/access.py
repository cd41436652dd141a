"""Who may do what: principals, roles and the policy check every use case makes.

This module decides and records nothing; ``services.identity`` (tokens, authentication)
and ``services.audit`` (the log) both build on it, so neither needs the other to
authorise.

Invariants:
- Department principals carry their org path, so policies scope them to their subtree;
  a department asking for another department's object gets ``NotFound``, never the
  object and never a hint that it exists (``hide_as_missing``).
- The policy engine is parsed once per context and reused; it knows the topology's data classes.
"""

from __future__ import annotations

import getpass
from typing import Any

from cloudctl import errors
from cloudctl.policy import engine as policy_engine
from cloudctl.services import context as ctx_module
from cloudctl.store import orgs

Principal = policy_engine.Principal
OPERATOR_ROLES = ("sysadmin", "secadmin", "auditor")
DEPARTMENT_ROLES = ("dept-admin", "dept-user")
ROLES = (*DEPARTMENT_ROLES, *OPERATOR_ROLES)


def local_operator(role: str = "sysadmin") -> Principal:
    """The operator at the management center's own shell (the CLI without ``--api``)."""
    return Principal(id=f"local:{os_user()}", role=role)


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"


def policies(ctx: ctx_module.Context) -> policy_engine.PolicyEngine:
    # Keyed by the topology's data classes: a topology applied with other classes loads anew.
    data_classes = ctx.topology.data_classes
    key = "policy_engine:" + ",".join(data_classes)
    engine = ctx.cache.get(key)
    if engine is None:
        engine = policy_engine.PolicyEngine.load(ctx.settings.policies, data_classes=data_classes)
        ctx.cache[key] = engine
    assert isinstance(engine, policy_engine.PolicyEngine)
    return engine


def is_department(principal: Principal) -> bool:
    return principal.role in DEPARTMENT_ROLES


def outside_subtree(principal: Principal, path: tuple[str, ...]) -> bool:
    """Whether ``path`` (an org path from the root) lies outside a department principal's
    subtree: what such a principal is told does not exist, never that it is refused."""
    return is_department(principal) and principal.department not in path


def visible_node(
    principal: Principal, node_id: str, path: tuple[str, ...] | None, *, field: str
) -> tuple[str, ...]:
    """The org path of ``node_id`` as read (``None``: no such node), or ``NotFound`` naming ``field``
    when there is none or, to a department, when it lies outside its subtree: answered alike, so a
    department learns nothing of which other departments exist."""
    if path is None or outside_subtree(principal, path):
        raise errors.NotFound(f"no org node {node_id!r}", field=field)
    return path


_HIDDEN_AS = {"Quota": ("department", "org node"), "OrgNode": ("department", "org node")}
"""How an object hidden from a department is reported: exactly as a missing one of that id is
(``field``, noun), so the answer tells nothing about which ids exist."""


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
    if hide_as_missing and outside_subtree(principal, owner_path):
        field, noun = _HIDDEN_AS.get(resource_type, (resource_type.lower(), resource_type.lower()))
        raise errors.NotFound(f"no {noun} {resource_id!r}", field=field)
    raise errors.PolicyDenied(decision, action=action)


def department_path(ctx: ctx_module.Context, department: str) -> tuple[str, ...]:
    with ctx.read() as tx:
        return tuple(orgs.get_node(tx, department, field="department").ancestor_ids)
