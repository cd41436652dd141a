"""The org tree as operators see it: list, show, create, delete, with quota summaries.

Invariants: ids are ASCII slugs (``model.topology.SLUG``); the tree has one
root; a node is deleted only when nothing under it is in use (store rule).
Creating and deleting need ``org.manage`` (sysadmin) and are audited, refusals too;
deleting a node revokes its tokens in the same transaction, so they die with it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.model import topology as topo
from cloudctl.services import access, audit, identity
from cloudctl.services import context as ctx_module
from cloudctl.store import orgs, tokens

ORG_NODE_EXAMPLE: dict[str, Any] = {
    "id": "shinan",
    "display_name": "青岛市市南区",
    "kind": "district",
    "parent": "qingdao",
    "depth": 1,
    "path": ["qingdao", "shinan"],
    "created_at": "2026-01-05T01:30:00Z",
    "resource_version": 1,
    "children": ["shinan-approval", "shinan-civil", "shinan-health"],
}


class OrgNodePublic(BaseModel):
    """One node of the org tree: the city, a district or bureau, or a department."""

    model_config = ConfigDict(
        use_attribute_docstrings=True, json_schema_extra={"examples": [ORG_NODE_EXAMPLE]}
    )

    id: str
    """Lower-case ASCII id used in commands and URLs (e.g. ``hrss-insurance``)."""
    display_name: str
    """The name people read (e.g. ``青岛市社会保险事业中心``)."""
    kind: str
    """``city``, ``district``, ``bureau`` or ``department``."""
    parent: str | None
    """The parent node's id; null for the root (the city)."""
    depth: int
    """0 for the root, 1 for its children, and so on."""
    path: list[str]
    """The ids from the root down to this node, itself included."""
    created_at: str
    """When the node was created (ISO 8601 UTC)."""
    resource_version: int
    """1 when created, one more at each rename (no operation renames a node yet, so it stays 1)."""
    children: list[str] = []
    """The ids of its direct children; empty for a leaf (and for a node just created)."""


def _public(node: orgs.OrgNode, children: list[str] | None = None) -> OrgNodePublic:
    return OrgNodePublic(
        id=node.id,
        display_name=node.display_name,
        kind=node.kind,
        parent=node.parent_id,
        depth=node.depth,
        path=node.ancestor_ids,
        created_at=clocks.isoformat(node.created_at),
        resource_version=node.resource_version,
        children=children or [],
    )


def list_nodes(ctx: ctx_module.Context, *, under: str | None = None) -> list[OrgNodePublic]:
    """Every node in tree order, each with the ids of its children."""
    with ctx.read() as tx:
        nodes = orgs.list_nodes(tx, under=under, field="under")
    children: dict[str, list[str]] = {}
    for node in nodes:
        if node.parent_id is not None:
            children.setdefault(node.parent_id, []).append(node.id)
    return [_public(node, children.get(node.id)) for node in nodes]


def get_node(ctx: ctx_module.Context, node_id: str) -> OrgNodePublic:
    with ctx.read() as tx:
        node = orgs.get_node(tx, node_id)
        children = [child.id for child in orgs.list_children(tx, node_id)]
    return _public(node, children)


def _authorize(ctx: ctx_module.Context, principal: access.Principal, node_id: str) -> None:
    access.authorize(
        ctx, principal=principal, action="org.manage", resource_type="OrgNode", resource_id=node_id
    )


@audit.audits_refusals(action="org.create", target_type="OrgNode", target="node_id")
def create_node(
    ctx: ctx_module.Context,
    *,
    node_id: str,
    display_name: str,
    parent: str,
    kind: str,
    principal: access.Principal | None = None,
) -> OrgNodePublic:
    """Add a node under ``parent``; ``principal`` defaults to the local sysadmin."""
    principal = principal or access.local_operator("sysadmin")
    _authorize(ctx, principal, node_id)
    if not topo.is_slug(node_id):
        raise errors.InvalidInput(
            "must be a lower-case ASCII id (letters, digits, '-'), starting with a letter, at most 40",
            field="id",
        )
    if not display_name.strip():
        raise errors.InvalidInput("must not be empty", field="name")
    topo.check_one_line(display_name, field="name")
    try:
        kind_value = topo.OrgKind(kind).value
    except ValueError:
        known = ", ".join(k.value for k in topo.OrgKind)
        raise errors.InvalidInput(f"unknown kind {kind!r} (known: {known})", field="kind") from None
    center_names = [center.name for center in ctx.topology.centers]
    with ctx.transaction() as tx:
        node = orgs.create_node(
            tx,
            node_id=node_id,
            display_name=display_name.strip(),
            kind=kind_value,
            parent_id=parent,
            centers=center_names,
            now=ctx.clock.now(),
        )
        audit.record(
            ctx,
            principal=principal,
            action="org.create",
            target_type="OrgNode",
            target_id=node_id,
            outcome="success",
            detail={"parent": parent, "kind": kind_value},
            tx=tx,
        )
    return _public(node)


@audit.audits_refusals(action="org.delete", target_type="OrgNode", target="node_id")
def delete_node(
    ctx: ctx_module.Context,
    node_id: str,
    *,
    ignore_missing: bool = False,
    principal: access.Principal | None = None,
) -> bool:
    """Delete a node with nothing in use, revoking its tokens; whether one was deleted."""
    principal = principal or access.local_operator("sysadmin")
    _authorize(ctx, principal, node_id)
    now = ctx.clock.now()
    with ctx.transaction() as tx:
        deleted = orgs.delete_node(tx, node_id, ignore_missing=ignore_missing)
        revoked = tokens.revoke_department_tokens(tx, node_id, now=now) if deleted else []
        audit.record(
            ctx,
            principal=principal,
            action="org.delete",
            target_type="OrgNode",
            target_id=node_id,
            outcome="success",
            detail={"deleted": deleted, "tokens_revoked": revoked},
            tx=tx,
        )
    if revoked:
        identity.forget_token(ctx)  # the department's tokens stop at once in this process too
    return deleted


def read_nodes(
    ctx: ctx_module.Context, *, principal: access.Principal, under: str | None = None
) -> list[OrgNodePublic]:
    """``list_nodes`` for a principal who may read the org tree (``org.read``)."""
    access.authorize(
        ctx, principal=principal, action="org.read", resource_type="OrgNode", resource_id=under or "all"
    )
    return list_nodes(ctx, under=under)


def read_node(ctx: ctx_module.Context, *, principal: access.Principal, node_id: str) -> OrgNodePublic:
    """``get_node`` for a principal who may read the org tree (``org.read``)."""
    access.authorize(
        ctx, principal=principal, action="org.read", resource_type="OrgNode", resource_id=node_id
    )
    return get_node(ctx, node_id)
