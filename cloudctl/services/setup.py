"""Initialising the state from the topology, and re-applying it.

Invariants:
- The topology file is validated completely before anything is written; an
  invalid file changes nothing.
- ``initialise`` runs in one transaction: the state is either the old one or
  the new one.
- Re-applying (``force``) adds centers and org nodes and sets the file's limits;
  it never deletes an org node, a reservation or a limit the file does not name.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from cloudctl import clock as clocks
from cloudctl.model import quotas as q
from cloudctl.model import topology as topo
from cloudctl.services import context as ctx_module
from cloudctl.store import centers, orgs, quotas

if TYPE_CHECKING:
    from cloudctl.store import db


@dataclasses.dataclass(frozen=True)
class InitResult:
    outcome: str
    """``initialised``, ``reapplied``, ``already-initialised`` or ``valid`` (dry run)."""
    store: str
    topology_file: str
    topology_sha256: str
    centers: int
    org_nodes_created: int
    limits_set: int
    stored_topology_differs: bool = False
    schema_upgraded_from: str | None = None
    """The schema revision the store was at when ``init`` upgraded it (state kept); else ``None``."""

    def as_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def initialise(
    ctx: ctx_module.Context, *, topology_file: Path | None = None, force: bool = False, dry_run: bool = False
) -> InitResult:
    path = topology_file or ctx.settings.topology
    text = _read(ctx, path)
    topology = topo.parse(text)
    digest = hashlib.sha256(text.encode()).hexdigest()
    base = InitResult(
        outcome="valid",
        store=ctx.describe_store(),
        topology_file=str(path),
        topology_sha256=digest,
        centers=len(topology.centers),
        org_nodes_created=0,
        limits_set=0,
    )
    if dry_run:
        return base
    before = ctx.require_known_schema()
    ctx.retrying(ctx.store.migrate)
    after = ctx.retrying(ctx.store.schema_revision)
    base = dataclasses.replace(base, schema_upgraded_from=before if before not in (None, after) else None)
    already = ctx.is_initialised()
    if already and not force:
        with ctx.store.read() as tx:
            stored = centers.get_setting(tx, ctx_module.TOPOLOGY_KEY)
        return dataclasses.replace(
            base, outcome="already-initialised", stored_topology_differs=stored != text
        )
    now = ctx.clock.now()
    with ctx.store.transaction() as tx:
        centers.sync_topology(tx, topology, now=now)
        created, limits_set = _apply_org(tx, topology, now=now)
        centers.put_setting(tx, ctx_module.TOPOLOGY_KEY, text)
        centers.put_setting(tx, "topology_sha256", digest)
        if centers.get_setting(tx, ctx_module.INITIALISED_KEY) is None:
            centers.put_setting(tx, ctx_module.INITIALISED_KEY, clocks.isoformat(now))
    ctx.forget_initialised()
    return dataclasses.replace(
        base,
        outcome="reapplied" if already else "initialised",
        org_nodes_created=created,
        limits_set=limits_set,
    )


def _read(ctx: ctx_module.Context, path: Path) -> str:
    ctx.read_topology_file(path)  # validates, with the file-level error messages
    return path.read_text(encoding="utf-8")


def _apply_org(tx: db.Transaction, topology: topo.Topology, *, now: float) -> tuple[int, int]:
    center_names = [center.name for center in topology.centers]
    created = 0
    nodes = list(topology.org.walk())
    for node, parent in nodes:
        if orgs.find_node(tx, node.id) is None:
            orgs.create_node(
                tx,
                node_id=node.id,
                display_name=node.display_name,
                kind=node.kind.value,
                parent_id=parent,
                centers=center_names,
                now=now,
            )
            created += 1
    changes: dict[quotas.LimitKey, int | None] = {}
    for node, _parent in nodes:
        for spec in node.quotas:
            for resource in q.RESOURCES:
                changes[(node.id, spec.center_key, resource)] = spec.limits().get(resource)
    quotas.apply_limits(tx, changes=changes)
    limits_set = sum(1 for value in changes.values() if value is not None)
    return created, limits_set
