"""The quota reconciler: each center's project quotas kept equal to cloudctl's quota tree.

Level-based: for every tenant (a leaf of the org tree) and every cloud center (local
and DR), the desired project quota is the tightest limit along the tenant's ancestor
chain on that center (its own, its ancestors', and the all-centers limits); the
center's compute driver is read, and only what differs is written.

Invariants:
- Idempotent: a second pass over an unchanged tree and unchanged centers writes nothing.
- Drift is corrected, and reported (which project, which resource, found vs wanted).
- Only ``vcpu``, ``ram_gb``, ``instances`` and ``volume_gb`` are project quotas of a
  cloud; a resource with no limit anywhere up the chain is left unlimited.
- A compute driver may hold more project quotas, derived from those by its own mapping
  (OpenStack: Neutron's, ``network.*``; Cinder's volume and snapshot counts). It offers
  ``derived_project_limits(limits)`` and ``get_derived_project_limits(project)``; their drift
  is reported and corrected like the rest.
- A driver that keeps a tree resource in a finer unit lists it among its derived limits as
  ``<prefix>.<name>_mib`` for the tree's ``<name>_gb`` (OpenStack: ``compute.ram_mib``). That
  resource is then compared in MiB only, so any drift is seen (whole GB would hide one under
  1 GiB) and reported once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from cloudctl import errors
from cloudctl.model import quotas as q
from cloudctl.model import topology as topo
from cloudctl.reconcile import provisioning
from cloudctl.store import orgs, quotas

PROJECT_RESOURCES = (q.Resource.VCPU, q.Resource.RAM_GB, q.Resource.INSTANCES, q.Resource.VOLUME_GB)


@dataclasses.dataclass(frozen=True)
class Drift:
    center: str
    project: str
    resource: str
    found: int | None
    wanted: int | None


@dataclasses.dataclass(frozen=True)
class SyncResult:
    center: str
    projects: int
    drift: list[Drift]
    corrected: bool
    error: str = ""


def desired(env: provisioning.Environment, *, center: str) -> dict[str, dict[str, int]]:
    """Project (tenant id) → the limits its project should have on ``center``."""
    with env.store.read() as tx:
        nodes = orgs.list_nodes(tx)
        limits = quotas.get_limits(tx, node_ids=[node.id for node in nodes], centers=[center, q.ALL_CENTERS])
    parents = {node.parent_id for node in nodes}
    result: dict[str, dict[str, int]] = {}
    for node in nodes:
        if node.id in parents:
            continue
        wanted: dict[str, int] = {}
        for resource in PROJECT_RESOURCES:
            bounds = [
                limits[(ancestor, key, resource)]
                for ancestor in node.ancestor_ids
                for key in (center, q.ALL_CENTERS)
                if (ancestor, key, resource) in limits
            ]
            if bounds:
                wanted[resource.value] = min(bounds)
        result[node.id] = wanted
    return result


def cloud_centers(topology: topo.Topology) -> list[str]:
    return [c.name for c in topology.centers if c.role in (topo.CenterRole.LOCAL, topo.CenterRole.DR)]


def derived_drift(compute: object, *, center: str, project: str, wanted: dict[str, int]) -> list[Drift]:
    """Drift of the quotas the driver derives from the tree's (none when it derives none)."""
    derive = getattr(compute, "derived_project_limits", None)
    read = getattr(compute, "get_derived_project_limits", None)
    if derive is None or read is None:
        return []
    expected, found = dict(derive(wanted)), dict(read(project))
    return [
        Drift(center=center, project=project, resource=key, found=found.get(key), wanted=expected.get(key))
        for key in sorted({*expected, *found})
        if found.get(key) != expected.get(key)
    ]


def sync_center(
    env: provisioning.Environment,
    *,
    center: str,
    projects: Iterable[str] | None = None,
    dry_run: bool = False,
) -> SyncResult:
    """Compare (and unless ``dry_run`` correct) the project quotas of one center."""
    wanted_by_project = desired(env, center=center)
    if projects is not None:
        chosen = set(projects)
        wanted_by_project = {p: w for p, w in wanted_by_project.items() if p in chosen}
    compute = env.drivers_for(center).compute
    drift: list[Drift] = []
    try:
        for project, wanted in sorted(wanted_by_project.items()):
            found = dict(compute.get_project_quota(project).limits)
            differs = [
                Drift(
                    center=center,
                    project=project,
                    resource=r.value,
                    found=found.get(r.value),
                    wanted=wanted.get(r.value),
                )
                for r in PROJECT_RESOURCES
                if found.get(r.value) != wanted.get(r.value)
            ]
            derived = derived_drift(compute, center=center, project=project, wanted=wanted)
            finer = {
                d.resource.rpartition(".")[2].removesuffix("_mib") + "_gb"
                for d in derived
                if d.resource.endswith("_mib")
            }
            differs = [d for d in differs if d.resource not in finer] + derived
            if differs and not dry_run:
                compute.set_project_quota(project, amounts=wanted)
            drift += differs
    except errors.BackendUnavailable as error:
        return SyncResult(
            center=center,
            projects=len(wanted_by_project),
            drift=drift,
            corrected=False,
            error=error.one_line(),
        )
    return SyncResult(center=center, projects=len(wanted_by_project), drift=drift, corrected=not dry_run)
