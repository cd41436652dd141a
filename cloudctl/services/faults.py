"""Fault injection into the simulated centers: what drills and operators use to rehearse.

Invariants: faults live in the store with the simulator state, so an injected
fault is seen by every process until it is cleared; injecting the same fault
twice replaces it (ids derive from what the fault hits). Injecting and clearing are
audited (``fault.inject``, ``fault.clear``), refusals too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.services import access, audit, drivers, recovery
from cloudctl.services import context as ctx_module

if TYPE_CHECKING:
    from cloudctl.drivers import simulator as simulator_driver

KINDS = ("center-down", "link-cut", "link-degraded", "api-error-rate", "corrupt-replica")


class FaultPublic(BaseModel):
    id: str
    kind: str
    center: str | None
    link: list[str] | None
    factor: float | None
    rate: float | None
    target: str | None
    """``bucket/key`` of the object a corrupt-replica fault damaged."""
    injected_at: str


def _public(fault: simulator_driver.Fault) -> FaultPublic:
    return FaultPublic(
        id=fault.id,
        kind=fault.kind.value,
        center=fault.center,
        link=list(fault.link) if fault.link else None,
        factor=fault.factor,
        rate=fault.rate,
        target=fault.target,
        injected_at=clocks.isoformat(fault.injected_at),
    )


@audit.audits_refusals(action="fault.inject", target_type="Fault", target="center")
def inject(
    ctx: ctx_module.Context,
    *,
    kind: str,
    center: str | None = None,
    peer: str | None = None,
    factor: float | None = None,
    rate: float | None = None,
    workload: str | None = None,
    key: str | None = None,
    principal: access.Principal | None = None,
) -> FaultPublic:
    """Inject a fault; ``principal`` defaults to the local sysadmin (drills, the console)."""
    principal = _authorized(ctx, principal)
    fault = _inject(
        ctx, kind=kind, center=center, peer=peer, factor=factor, rate=rate, workload=workload, key=key
    )
    audit.record(
        ctx,
        principal=principal,
        action="fault.inject",
        target_type="Fault",
        target_id=fault.id,
        outcome="success",
        detail={"kind": kind, "center": center or "", "peer": peer or "", "workload": workload or ""},
    )
    return fault


def _inject(
    ctx: ctx_module.Context,
    *,
    kind: str,
    center: str | None,
    peer: str | None,
    factor: float | None,
    rate: float | None,
    workload: str | None,
    key: str | None,
) -> FaultPublic:
    """Inject one fault. ``corrupt-replica`` damages the object ``key`` (default: the first
    one) of ``workload``'s data bucket in ``center``, behind its checksum."""
    simulator = drivers.simulator(ctx)
    if kind not in KINDS:
        raise errors.InvalidInput(f"unknown fault kind {kind!r} (known: {', '.join(KINDS)})", field="kind")
    if center is None:
        raise errors.InvalidInput("name the center the fault hits", field="center")
    ctx.topology.center(center)
    if kind == "center-down":
        return _public(simulator.center_down(center))
    if kind == "corrupt-replica":
        return _public(_corrupt_replica(ctx, simulator, center=center, workload=workload, key=key))
    if kind == "api-error-rate":
        if rate is None or not 0 <= rate <= 1:
            raise errors.InvalidInput("give a probability between 0 and 1", field="rate")
        return _public(simulator.api_error_rate(center, rate=rate))
    if peer is None:
        raise errors.InvalidInput("a link fault needs the center at the other end", field="peer")
    ctx.topology.center(peer)
    if ctx.topology.link(center, peer) is None:
        raise errors.InvalidInput(f"no link between {center} and {peer} in the topology", field="peer")
    if kind == "link-cut":
        return _public(simulator.link_cut(center, peer))
    if factor is None or factor <= 1:
        raise errors.InvalidInput("a degraded link needs a slow-down factor above 1", field="factor")
    return _public(simulator.link_degraded(center, peer, factor=factor))


def _corrupt_replica(
    ctx: ctx_module.Context,
    simulator: simulator_driver.Simulator,
    *,
    center: str,
    workload: str | None,
    key: str | None,
) -> simulator_driver.Fault:
    from cloudctl.recovery import replication as repl
    from cloudctl.store import requests

    if not workload:
        raise errors.InvalidInput("name the workload whose replica is damaged", field="workload")
    with ctx.read() as tx:
        requests.get_workload(tx, workload)
    bucket = repl.data_bucket(workload)
    storage = simulator.drivers(center).object_storage
    try:
        keys = [entry.key for entry in storage.list_object_entries(bucket)]
    except errors.NotFound:
        raise errors.InvalidInput(
            f"workload {workload} keeps no data in center {center}", field="center"
        ) from None
    chosen = key if key is not None else (keys[0] if keys else None)
    if chosen is None or chosen not in keys:
        raise errors.InvalidInput(
            f"no object {chosen!r} in {bucket} at {center}" if chosen else f"{bucket} at {center} is empty",
            field="key",
        )
    return simulator.corrupt_replica(center, bucket=bucket, key=chosen)


def _authorized(ctx: ctx_module.Context, principal: access.Principal | None) -> access.Principal:
    """Faults are a drill's: ``drill.run`` on the management center (the sysadmin's); ``principal``
    defaults to the local sysadmin."""
    principal = principal or access.local_operator("sysadmin")
    recovery.authorize_operations(ctx, principal, action="drill.run")
    return principal


def list_faults(ctx: ctx_module.Context) -> list[FaultPublic]:
    return [_public(fault) for fault in drivers.simulator(ctx).list_faults()]


@audit.audits_refusals(action="fault.clear", target_type="Fault", target="fault_id")
def clear(
    ctx: ctx_module.Context, *, fault_id: str | None = None, principal: access.Principal | None = None
) -> int:
    """Clear one fault (by id) or, without an id, every fault; returns how many were cleared."""
    principal = _authorized(ctx, principal)
    simulator = drivers.simulator(ctx)
    if fault_id is None:
        cleared = simulator.clear_all()
    else:
        known = {fault.id for fault in simulator.list_faults()}
        if fault_id not in known:
            raise errors.NotFound(f"no fault {fault_id!r}", field="fault")
        simulator.clear(fault_id)
        cleared = 1
    audit.record(
        ctx,
        principal=principal,
        action="fault.clear",
        target_type="Fault",
        target_id=fault_id or "all",
        outcome="success",
        detail={"cleared": cleared},
    )
    return cleared
