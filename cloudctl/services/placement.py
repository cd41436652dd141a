"""Placement: which centers a workload uses, by its protection tier.

Invariants:
- ``active-active``: instances in every local center (each can carry the load alone).
- ``sync-standby``: instances in one local center (the preferred one, else the one
  where the department has most headroom); the same amounts held in another
  local center as the standby's failover headroom.
- ``single``: one local center.
- A tier with a DR copy (async or backup) also holds failover headroom in the DR
  center's quota.
- Every center used must be allowed by the placement policies for the request's
  data class; a refusal names the center and the policy.
- Only ``primary``/``active`` placements create resources now; ``standby`` and
  ``dr`` placements are quota held for recovery.
- A placement that would take its center's allocation past the capacity threshold
  carries a ``warning`` (``services.capacity``); it is never refused for that.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from cloudctl import errors
from cloudctl.model import quotas as q
from cloudctl.model import states
from cloudctl.model import topology as topo
from cloudctl.policy import engine as policy_engine
from cloudctl.services import capacity, identity
from cloudctl.services import context as ctx_module


@dataclasses.dataclass(frozen=True)
class Placement:
    center: str
    role: str
    """``active`` (active-active), ``primary``, ``standby`` or ``dr``."""
    amounts: q.Amounts
    warning: str | None = None
    """Set when this placement would take the center past its capacity threshold."""


def check_preferred_center(topology: topo.Topology, preferred_center: str | None) -> None:
    """A preferred center is one of the local cloud centers (an unknown name too is refused so)."""
    local = [center.name for center in topology.centers_with_role(topo.CenterRole.LOCAL)]
    if preferred_center is not None and preferred_center not in local:
        raise errors.InvalidInput(
            f"{preferred_center!r} is not a local cloud center (local: {', '.join(local)})",
            field="preferred_center",
        )


def plan(
    ctx: ctx_module.Context,
    *,
    principal: identity.Principal,
    tier: topo.Tier,
    amounts: q.Amounts,
    data_class: str,
    preferred_center: str | None,
    headroom_vcpu: Mapping[str, int | None],
) -> list[Placement]:
    """The placements of one request, refused with the reason if the tier cannot be honoured."""
    topology = ctx.topology
    local = [center.name for center in topology.centers_with_role(topo.CenterRole.LOCAL)]
    dr = [center.name for center in topology.centers_with_role(topo.CenterRole.DR)]
    check_preferred_center(topology, preferred_center)
    if tier.local is topo.LocalPlacement.ACTIVE_ACTIVE:
        placements = [
            Placement(center=name, role=states.PlacementRole.ACTIVE, amounts=amounts) for name in local
        ]
    else:
        ranked = sorted(local, key=lambda name: _room(headroom_vcpu.get(name)), reverse=True)
        primary = preferred_center or ranked[0]
        placements = [Placement(center=primary, role=states.PlacementRole.PRIMARY, amounts=amounts)]
        if tier.local is topo.LocalPlacement.SYNC_STANDBY:
            standby = next(name for name in ranked if name != primary)
            placements.append(Placement(center=standby, role=states.PlacementRole.STANDBY, amounts=amounts))
    if tier.dr_copy is not topo.DrCopy.NONE:
        placements += [Placement(center=name, role=states.PlacementRole.DR, amounts=amounts) for name in dr]
    engine = identity.policies(ctx)
    engine.require_placement(
        principal=principal,
        data_class=data_class,
        tier=tier.name,
        centers=[policy_engine.center_resource(topology.center(p.center)) for p in placements],
    )
    return [
        dataclasses.replace(p, warning=capacity.threshold_warning(ctx, center=p.center, amounts=p.amounts))
        for p in placements
    ]


def _room(headroom: int | None) -> float:
    return float("inf") if headroom is None else float(headroom)
