"""The org tree: city → district or bureau → department, of any depth.

Invariants:
- ``path`` is ``/root/.../id/``; a node's ancestors are the ids in its path, so
  the ancestor chain is read without recursion and a subtree is a prefix match.
- A node is deleted only when it has no children, no live reservations and no
  usage: nothing a department stored is lost by deleting its node.
- Creating a node creates its zeroed quota counters for every center.
- Tenants keep their projects: a department never gets children, nor does a leaf that holds
  quota (``model.foundation.tenants_of`` makes projects for leaves only).
"""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa

from cloudctl import errors
from cloudctl.model import topology as topo
from cloudctl.store import quotas, schema


@dataclasses.dataclass(frozen=True)
class OrgNode:
    id: str
    parent_id: str | None
    display_name: str
    kind: str
    depth: int
    path: str
    created_at: float
    resource_version: int

    @property
    def ancestor_ids(self) -> list[str]:
        """Ids from the root down to this node, inclusive."""
        return [part for part in self.path.split("/") if part]


def _row_to_node(row: sa.Row[tuple[object, ...]]) -> OrgNode:
    mapping = row._mapping
    return OrgNode(
        id=str(mapping["id"]),
        parent_id=None if mapping["parent_id"] is None else str(mapping["parent_id"]),
        display_name=str(mapping["display_name"]),
        kind=str(mapping["kind"]),
        depth=int(mapping["depth"]),
        path=str(mapping["path"]),
        created_at=float(mapping["created_at"]),
        resource_version=int(mapping["resource_version"]),
    )


def find_node(tx: sa.Connection, node_id: str) -> OrgNode | None:
    row = tx.execute(sa.select(schema.org_nodes).where(schema.org_nodes.c.id == node_id)).first()
    return None if row is None else _row_to_node(row)


def get_node(tx: sa.Connection, node_id: str, *, field: str = "node") -> OrgNode:
    node = find_node(tx, node_id)
    if node is None:
        raise errors.NotFound(f"no org node {node_id!r}", field=field)
    return node


def list_nodes(tx: sa.Connection, *, under: str | None = None, field: str = "node") -> list[OrgNode]:
    """Nodes in tree order (parents before children, siblings by id); ``under`` limits to a subtree
    (an unknown one is refused naming ``field``)."""
    query = sa.select(schema.org_nodes).order_by(schema.org_nodes.c.path)
    if under is not None:
        root = get_node(tx, under, field=field)
        query = query.where(schema.org_nodes.c.path.startswith(root.path, autoescape=True))
    return [_row_to_node(row) for row in tx.execute(query)]


def list_ancestors(tx: sa.Connection, node: OrgNode) -> list[OrgNode]:
    """The chain from the root down to ``node``, inclusive."""
    rows = tx.execute(
        sa.select(schema.org_nodes)
        .where(schema.org_nodes.c.id.in_(node.ancestor_ids))
        .order_by(schema.org_nodes.c.depth)
    )
    return [_row_to_node(row) for row in rows]


def list_children(tx: sa.Connection, node_id: str) -> list[OrgNode]:
    rows = tx.execute(
        sa.select(schema.org_nodes)
        .where(schema.org_nodes.c.parent_id == node_id)
        .order_by(schema.org_nodes.c.id)
    )
    return [_row_to_node(row) for row in rows]


def create_node(
    tx: sa.Connection,
    *,
    node_id: str,
    display_name: str,
    kind: str,
    parent_id: str | None,
    centers: list[str],
    now: float,
) -> OrgNode:
    if find_node(tx, node_id) is not None:
        raise errors.Conflict(f"org node {node_id!r} exists already", field="id")
    if parent_id is None:
        if tx.execute(sa.select(schema.org_nodes.c.id).where(schema.org_nodes.c.parent_id.is_(None))).first():
            raise errors.InvalidInput("the org tree has a root already; name a parent", field="parent")
        depth, path = 0, f"/{node_id}/"
    else:
        parent = get_node(tx, parent_id, field="parent")
        _check_may_have_children(tx, parent)
        depth, path = parent.depth + 1, f"{parent.path}{node_id}/"
    tx.execute(
        schema.org_nodes.insert().values(
            id=node_id,
            parent_id=parent_id,
            display_name=display_name,
            kind=kind,
            depth=depth,
            path=path,
            created_at=now,
            resource_version=1,
        )
    )
    quotas.create_counters(tx, node_id=node_id, centers=centers)
    return get_node(tx, node_id)


def _check_may_have_children(tx: sa.Connection, parent: OrgNode) -> None:
    """A tenant keeps its project and namespace: a department never gets children, and neither
    does a leaf that holds quota (its workloads live in its project, which a node with children
    no longer has: ``model.foundation.tenants_of``)."""
    if parent.kind == topo.OrgKind.DEPARTMENT:
        raise errors.InvalidInput(
            f"{parent.id!r} is a department and cannot have children; add it under a bureau or district",
            field="parent",
        )
    if not list_children(tx, parent.id) and (in_use := quotas.total_in_use(tx, node_id=parent.id)):
        raise errors.Conflict(
            f"{parent.id!r} holds {in_use} units of quota in use or reserved and would stop being a "
            "tenant; release them first or add the node elsewhere",
            field="parent",
        )


def delete_node(tx: sa.Connection, node_id: str, *, ignore_missing: bool = False) -> bool:
    """Delete a leaf node with nothing in use; returns whether a node was deleted."""
    node = find_node(tx, node_id)
    if node is None:
        if ignore_missing:
            return False
        raise errors.NotFound(f"no org node {node_id!r}", field="node")
    children = list_children(tx, node_id)
    if children:
        names = ", ".join(child.id for child in children[:5])
        raise errors.Conflict(f"{node_id!r} still has children ({names}); delete them first", field="node")
    in_use = quotas.total_in_use(tx, node_id=node_id)
    if in_use:
        raise errors.Conflict(
            f"{node_id!r} still holds {in_use} units of quota in use or reserved; release them first",
            field="node",
        )
    quotas.delete_node_quota_rows(tx, node_id=node_id)
    tx.execute(schema.org_nodes.delete().where(schema.org_nodes.c.id == node_id))
    return True


def rename_node(
    tx: sa.Connection, node_id: str, *, display_name: str, expected_version: int | None
) -> OrgNode:
    node = get_node(tx, node_id)
    if expected_version is not None and node.resource_version != expected_version:
        raise errors.Conflict(
            f"{node_id!r} changed since it was read "
            f"(version {node.resource_version}, expected {expected_version})",
            field="resource_version",
        )
    tx.execute(
        schema.org_nodes.update()
        .where(schema.org_nodes.c.id == node_id)
        .values(display_name=display_name, resource_version=node.resource_version + 1)
    )
    return get_node(tx, node_id)
