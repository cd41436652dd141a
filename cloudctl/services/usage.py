"""The hourly usage pass: what every org node held and consumed in each center, and capacity samples.

``record_due`` records every hour that has ended and is not recorded yet, oldest first, each
hour in its own transaction with its audit record (see ``store.usage`` for the once-only
claim). So it backfills after downtime, resumes after SIGKILL at the hour it was writing,
and two processes running it at once record each hour once. Run it as often as you like:
with nothing due it reads one row.

What an hour holds:
- ``allocated``: quota reserved or in use at any moment of the hour (per started hour),
  rebuilt from the reservations, exact whenever the hour is recorded;
- ``consumed``: what the centers' backends report for the resources of each workload
  (servers: vCPU, RAM, root disk, one instance; volumes: their size; buckets: the bytes
  stored, rounded up to whole GB per bucket; namespaces: their vCPU and RAM quota). The
  backends report the present, so only the hour that just ended is observed; hours
  backfilled later, and centers that did not answer, have no consumed figure;
- a capacity sample per center and resource at the hour's end: total, allocated, and
  the backend's used figure when observed.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Iterable
from datetime import datetime

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.drivers import base
from cloudctl.model import pricing
from cloudctl.model import quotas as q
from cloudctl.services import audit, identity
from cloudctl.services import context as ctx_module
from cloudctl.services import drivers as drivers_service
from cloudctl.store import centers, requests, usage
from cloudctl.store.db import Transaction

log = logging.getLogger("cloudctl.usage")

HOUR_S = pricing.HOUR_S
MAX_HOURS_PER_PASS = 24 * 7
"""A pass backfills at most this many hours; the next pass goes on from there."""
GIB = 1024**3
SYSTEM = identity.Principal(id="system:usage", role="sysadmin")


@dataclasses.dataclass(frozen=True)
class PassResult:
    recorded: list[int]
    """Start of each hour this pass recorded, oldest first."""
    skipped: int
    """Hours another recorder had recorded first."""
    behind_hours: int
    """Ended hours still not recorded after this pass."""


def record_due(
    ctx: ctx_module.Context,
    *,
    max_hours: int = MAX_HOURS_PER_PASS,
    on_hour: Callable[[int], None] | None = None,
) -> PassResult:
    """Record the ended hours not yet recorded, oldest first, at most ``max_hours`` of them."""
    now = ctx.clock.now()
    last_ended = pricing.hour_floor(now) - HOUR_S
    with ctx.read() as tx:
        last = usage.last_recorded_hour(tx)
        if last is not None:
            start = last + HOUR_S
        else:
            began = [t for t in (_initialised_at(tx), usage.first_reservation_at(tx)) if t is not None]
            start = pricing.hour_floor(min(began, default=now))
    due = list(range(start, last_ended + 1, HOUR_S))
    chosen = due[:max_hours]
    if not chosen:
        return PassResult(recorded=[], skipped=0, behind_hours=0)
    with ctx.read() as tx:
        held = usage.held_quota(tx, start=chosen[0], end=chosen[-1] + HOUR_S)
    observed = _observe_consumption(ctx) if chosen[-1] == last_ended else None
    recorded: list[int] = []
    skipped = 0
    for hour in chosen:
        consumption = observed if hour == last_ended else None
        if _record_one(ctx, hour=hour, held=held, consumption=consumption):
            recorded.append(hour)
            if on_hour is not None:
                on_hour(hour)
        else:
            skipped += 1
    return PassResult(recorded=recorded, skipped=skipped, behind_hours=len(due) - len(chosen))


def _initialised_at(tx: Transaction) -> float | None:
    text = centers.get_setting(tx, ctx_module.INITIALISED_KEY)
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclasses.dataclass(frozen=True)
class Consumption:
    """What the backends reported, per (node, center, tier, resource), and which centers answered."""

    amounts: dict[usage.LineKey, int]
    used_by_center: dict[str, q.Amounts]
    centers_observed: frozenset[str]


def _record_one(
    ctx: ctx_module.Context, *, hour: int, held: list[usage.HeldQuota], consumption: Consumption | None
) -> bool:
    end = hour + HOUR_S
    allocated: dict[usage.LineKey, int] = {}
    at_end: dict[tuple[str, q.Resource], int] = {}
    for item in held:
        if item.live_during(hour, end):
            tier = item.tier or pricing.NO_TIER
            for resource, amount in item.amounts.items():
                key = (item.node_id, item.center, tier, resource)
                allocated[key] = allocated.get(key, 0) + amount
        if item.live_at(end):
            for resource, amount in item.amounts.items():
                at_end[(item.center, resource)] = at_end.get((item.center, resource), 0) + amount
    observed_centers = consumption.centers_observed if consumption else frozenset()
    consumed = consumption.amounts if consumption else {}
    lines = {
        key: usage.Line(
            allocated=allocated.get(key, 0),
            consumed=consumed.get(key, 0) if key[1] in observed_centers else None,
        )
        for key in {*allocated, *consumed}
    }
    samples = {}
    for center in ctx.topology.centers:
        total = center.capacity.amounts()
        used = consumption.used_by_center.get(center.name) if consumption else None
        for resource in q.RESOURCES:
            samples[(center.name, resource)] = usage.Sample(
                total=total.get(resource, 0),
                allocated=at_end.get((center.name, resource), 0),
                used=None if used is None else used.get(resource, 0),
            )
    complete = consumption is not None and observed_centers >= {c.name for c in ctx.topology.centers}
    with ctx.transaction() as tx:
        claimed = usage.record_hour(
            tx, hour=hour, lines=lines, samples=samples, consumed_observed=complete, now=ctx.clock.now()
        )
        if claimed:
            audit.record(
                ctx,
                principal=SYSTEM,
                action="usage.record",
                target_type="UsageHour",
                target_id=clocks.isoformat(hour),
                outcome="success",
                detail={
                    "lines": sum(1 for line in lines.values() if line.allocated or line.consumed),
                    "consumed_observed": complete,
                },
                tx=tx,
            )
    return claimed


def _observe_consumption(ctx: ctx_module.Context) -> Consumption:
    with ctx.read() as tx:
        workloads = requests.list_workloads(tx)
    observer = drivers_service.observer(ctx)
    amounts: dict[usage.LineKey, int] = {}
    used_by_center: dict[str, q.Amounts] = {}
    observed: set[str] = set()
    for center in ctx.topology.centers:
        placed = [
            (workload, placement)
            for workload in workloads
            for placement in workload.placements
            if placement.center == center.name and placement.resources
        ]
        try:
            found = _consumed_in(ctx, center.name, placed)
            used_by_center[center.name] = observer.capacity_used(center.name)
        except errors.CloudctlError as error:
            log.warning("usage: %s did not report consumption: %s", center.name, error.one_line())
            continue
        observed.add(center.name)
        for key, amount in found.items():
            amounts[key] = amounts.get(key, 0) + amount
    return Consumption(amounts=amounts, used_by_center=used_by_center, centers_observed=frozenset(observed))


def _consumed_in(
    ctx: ctx_module.Context,
    center: str,
    placed: Iterable[tuple[requests.WorkloadRecord, requests.PlacementRecord]],
) -> dict[usage.LineKey, int]:
    placed = list(placed)
    found: dict[usage.LineKey, int] = {}
    if not placed:
        return found
    drivers = drivers_service.center_drivers(ctx, center)
    kinds = {resource.get("kind") for _workload, placement in placed for resource in placement.resources}
    servers = {s.id: s for s in drivers.compute.list_servers(project=None)} if "server" in kinds else {}
    volumes = {v.id: v for v in drivers.block_storage.list_volumes(project=None)} if "volume" in kinds else {}

    def add(workload: requests.WorkloadRecord, resource: q.Resource, amount: int) -> None:
        if amount:
            key = (workload.department, center, workload.tier, resource)
            found[key] = found.get(key, 0) + amount

    for workload, placement in placed:
        for made in placement.resources:
            kind, made_id = made.get("kind"), str(made.get("id", ""))
            if kind == "server" and made_id in servers:
                server = servers[made_id]
                add(workload, q.Resource.VCPU, server.vcpu)
                add(workload, q.Resource.RAM_GB, server.ram_gb)
                add(workload, q.Resource.VOLUME_GB, server.disk_gb)
                add(workload, q.Resource.INSTANCES, 1)
            elif kind == "volume" and made_id in volumes:
                add(workload, q.Resource.VOLUME_GB, volumes[made_id].size_gb)
            elif kind == "bucket":
                stored = _bucket_bytes(drivers, made_id)
                add(workload, q.Resource.OBJECT_GB, math.ceil(stored / GIB) if stored else 0)
            elif kind == "namespace":
                namespace = _namespace(drivers, made_id)
                if namespace is not None:
                    add(workload, q.Resource.VCPU, namespace.vcpu)
                    add(workload, q.Resource.RAM_GB, namespace.ram_gb)
    return found


def _bucket_bytes(drivers: base.CenterDrivers, name: str) -> int:
    try:
        objects = drivers.object_storage.list_objects(name)
    except errors.NotFound:
        return 0
    return sum(int(item.size_bytes) for item in objects)


def _namespace(drivers: base.CenterDrivers, name: str) -> base.Namespace | None:
    try:
        return drivers.containers.get_namespace(name)
    except errors.NotFound:
        return None
