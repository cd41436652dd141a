"""The centers' foundation as code: run a center's Pulumi stack, and show drift against the store.

Invariants:
- What ``infra/`` declares and what the store implies are both computed by
  ``cloudctl.model.foundation.declare``, from the topology file and from the store's org tree
  and limits respectively; so a difference is always real drift, never two readings of one rule.
- ``diff`` reads the store only and never runs the Pulumi engine.
- ``run`` validates the topology file and the center before it touches the engine: a wrong file
  or an unknown center is bad input (exit 2) and declares nothing; a missing engine is
  ``BackendUnavailable`` (exit 3) with a one-line install hint.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from cloudctl import errors
from cloudctl.drivers.pulumi import automation
from cloudctl.model import foundation
from cloudctl.model import quotas as q
from cloudctl.services import context as ctx_module
from cloudctl.store import orgs, quotas

PROGRAM_FILE = "Pulumi.yaml"
DEFAULT_PROGRAM_DIR = Path("infra")
BACKEND_DIR = "pulumi"


class InfraRunPublic(BaseModel):
    operation: str
    """``preview``, ``up`` or ``refresh``."""
    center: str
    stack: str
    backend_url: str
    outcome: str
    changes: dict[str, int]


class InfraDiffPublic(BaseModel):
    topology_file: str
    centers: list[str]
    """Centers compared (all that hold a foundation, or the one asked for)."""
    resources_declared: int
    differences: list[foundation.Difference]


def program_dir_for(ctx: ctx_module.Context, program_dir: Path | None) -> Path:
    """The Pulumi program: as given, else beside the topology file, else ``./infra``."""
    if program_dir is None:
        beside = ctx.settings.topology.parent
        program_dir = beside if (beside / PROGRAM_FILE).is_file() else DEFAULT_PROGRAM_DIR
    if not (program_dir / PROGRAM_FILE).is_file():
        raise errors.InvalidInput(f"no {PROGRAM_FILE} in {str(program_dir)!r}", field="program")
    return program_dir


def default_backend_url(ctx: ctx_module.Context) -> str:
    return automation.local_backend_url(ctx.settings.home / BACKEND_DIR)


def parse_operation(name: str) -> automation.Operation:
    """``preview``, ``up`` or ``refresh``, as the engine names them."""
    try:
        return automation.Operation(name)
    except ValueError:
        known = ", ".join(op.value for op in automation.Operation)
        raise errors.InvalidInput(f"unknown operation {name!r} (known: {known})", field="operation") from None


def run(
    ctx: ctx_module.Context,
    *,
    operation: automation.Operation,
    center: str,
    program_dir: Path | None = None,
    backend_url: str | None = None,
    before_acting: Callable[[], object] | None = None,
) -> InfraRunPublic:
    """Preview, update or refresh ``center``'s stack; ``before_acting`` once the input is checked
    and the engine found, just before the engine runs (the caller records who acts)."""
    topology = ctx.read_topology_file()
    foundation.declare(topology).center(center)
    automation.require_engine()
    if before_acting is not None:
        before_acting()
    target = automation.StackTarget(
        center=center,
        program_dir=program_dir_for(ctx, program_dir),
        topology_file=ctx.settings.topology,
        backend_url=backend_url or default_backend_url(ctx),
    )
    action = {
        automation.Operation.PREVIEW: automation.preview,
        automation.Operation.UP: automation.up,
        automation.Operation.REFRESH: automation.refresh,
    }[operation]
    result = action(target=target)
    return InfraRunPublic(
        operation=result.operation.value,
        center=result.center,
        stack=result.stack,
        backend_url=result.backend_url,
        outcome=result.outcome,
        changes=result.changes,
    )


def stored_foundation(ctx: ctx_module.Context) -> foundation.Foundation:
    """The foundation the store implies: the stored topology's centers with the store's quota tree."""
    topology = ctx.topology
    with ctx.read() as tx:
        nodes = orgs.list_nodes(tx)
        limits = quotas.get_limits(tx, node_ids=[node.id for node in nodes])
    by_node: dict[str, dict[tuple[str, q.Resource], int]] = {}
    for (node_id, center, resource), value in limits.items():
        by_node.setdefault(node_id, {})[(center, resource)] = value
    entries = [
        foundation.OrgEntry(
            id=node.id,
            parent=node.parent_id,
            display_name=node.display_name,
            kind=node.kind,
            limits=by_node.get(node.id, {}),
        )
        for node in nodes
    ]
    return foundation.declare(topology, org=foundation.org_from_entries(entries))


def diff(ctx: ctx_module.Context, *, center: str | None = None) -> InfraDiffPublic:
    """How the store differs from what the topology file makes ``infra/`` declare."""
    declared = foundation.declare(ctx.read_topology_file())
    stored = stored_foundation(ctx)
    names = [c.center for c in declared.centers] + [
        c.center for c in stored.centers if c.center not in {d.center for d in declared.centers}
    ]
    if center is not None:
        if center not in names:
            known = ", ".join(names) or "none"
            raise errors.NotFound(
                f"center {center!r} holds no foundation (centers that do: {known})", field="center"
            )
        names = [center]
    differences = [
        difference
        for difference in foundation.diff(declared=declared, stored=stored)
        if difference.center in names
    ]
    resources = sum(1 for _kind, where, _name in foundation.inventory(declared) if where in names)
    return InfraDiffPublic(
        topology_file=str(ctx.settings.topology),
        centers=names,
        resources_declared=resources,
        differences=differences,
    )
