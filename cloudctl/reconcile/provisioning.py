"""The provisioning reconciler: approved requests become resources in the centers; deleted
workloads give their resources and quota back.

Level-based (controller-runtime style): ``reconcile_request`` and
``reconcile_workload`` take an id, read the desired state from the store, observe
the centers through their drivers, act, and write the outcome. They return
``Result(done=True)`` or ``Result(requeue_after_s=N)``.

Invariants:
- Idempotent: resources are named ``<workload>-<n>`` and looked up before being
  created, so running a step twice (or resuming after a crash) creates nothing twice.
- Each step is persisted before the next starts (request ``steps``, placement
  ``resources``); a killed process resumes where the store says it was. With
  ``group_steps`` (drivers whose state is in the same store and that wait for nothing),
  ordering a resource and recording it are one transaction.
- The last step (records marked ready, quota committed) is one transaction, the quota
  counters locked last in it; steps of several orders may share one transaction (``start``,
  ``finish``, ``create``: group commit), which changes nothing of what each step does.
- Quota is committed only once a placement's resources exist, and released only
  after they are gone; a deleted workload's replication streams go with it, and so do
  its volumes' snapshots (replication points) and their records. After the listed
  resources, every volume of the department's project named as the workload's
  (``model.names.owned_by``: its disks, replicas and recovered volumes) is deleted in each
  center it was placed in, so a volume made and not recorded is not left behind.
- A backend that does not answer (a center down, an API error) is retried with
  backoff; what retrying cannot fix (capacity exhausted, bad request) fails the
  request with its reason and releases everything it held.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from typing import Any

from cloudctl import engines, errors, metrics
from cloudctl.drivers import base
from cloudctl.model import names, states
from cloudctl.model import topology as topo
from cloudctl.store import db, quotas, replication, requests
from cloudctl.store import replication_points as points_store

CREATING_ROLES = (states.PlacementRole.PRIMARY, states.PlacementRole.ACTIVE)
RETRY_AFTER_S = 5.0
SERVER_ACTIVE_TIMEOUT_S = 600.0


@dataclasses.dataclass(frozen=True)
class Result:
    done: bool
    requeue_after_s: float | None = None
    message: str = ""


Environment = engines.Environment[Any]
"""What a reconciler needs, handed in by the services layer: the engines' one environment (a
reconciler reads no replication manifests, whatever their type)."""


def _timed(name: str, work: Callable[[], Result]) -> Result:
    started = time.perf_counter()
    try:
        result = work()
    except Exception:
        metrics.RECONCILE_ERRORS.labels(reconciler=name).inc()
        raise
    finally:
        metrics.RECONCILE_DURATION.labels(reconciler=name).observe(time.perf_counter() - started)
    metrics.RECONCILE_TOTAL.labels(reconciler=name, outcome="done" if result.done else "requeue").inc()
    return result


LastStep = Callable[[db.Transaction], list[str]]
"""An order's last step in a store transaction: its records marked ready; the reservations whose
quota it commits (the finisher commits them, last)."""
Finisher = Callable[[LastStep], None]
"""Runs a last step and commits its reservations in one transaction: the step's own
(``_finish_alone``), or one shared with the last steps of other orders finishing at the same
time (``services.provisioning``'s group finisher), so the quota counters every order
commits to are locked, and the transaction committed, once for all of them."""


Created = tuple[dict[str, Any], base.Server | None]
"""A resource ordered and recorded: its record, and the server as the backend answered (``None``
for other kinds)."""
CreateStep = Callable[[], Created]
"""One resource found or ordered, and the placement's record of it written."""
Creator = Callable[[str, CreateStep], Created]
"""Runs a create step of a center in one unit of work (``group_steps``): its own
(``_create_alone``), or one shared with other orders' create steps of the same center
(``services.provisioning``'s group creator): the center's writers take its usage row one after
another, so a unit for several takes it, and commits, once."""


Starter = Callable[[str], "requests.WorkloadRecord | Result"]
"""Runs an order's first step (``start_orders``): in a transaction of its own (``_start_alone``),
or in one shared with the first steps of other orders starting at the same time
(``services.provisioning``'s group starter)."""


def start_orders(
    tx: db.Transaction, request_ids: list[str], *, now: float
) -> list[requests.WorkloadRecord | Result]:
    """The orders' first step, in ``tx``: each request read and, if it was just approved, moved
    to provisioning with its workload; the lock taken for the move is the read (nobody can slip
    in between). For each order its workload (placements included) as it now stands, or the
    ``Result`` of an order with nothing to do. The requests are locked first, then their
    workloads, each in the order of their ids, one statement for all of them."""
    current = requests.lock_requests(tx, request_ids)
    active = [
        current[request_id]
        for request_id in request_ids
        if current[request_id].state in (states.WorkloadState.APPROVED, states.WorkloadState.PROVISIONING)
    ]
    for request in active:
        if request.workload_id is None:
            raise errors.OperationFailed(f"request {request.id} has no workload", field="request")
    workloads = (
        requests.lock_workloads(tx, [request.workload_id or "" for request in active]) if active else {}
    )
    approved = [request for request in active if request.state == states.WorkloadState.APPROVED]
    if approved:
        requests.update_requests(
            tx,
            approved,
            state=states.WorkloadState.PROVISIONING,
            step=states.WorkloadState.PROVISIONING,
            now=now,
        )
        moved = requests.update_workloads(
            tx,
            [workloads[request.workload_id or ""] for request in approved],
            state=states.WorkloadState.PROVISIONING,
            now=now,
        )
        workloads.update({workload.id: workload for workload in moved})
    return [
        workloads[current[request_id].workload_id or ""]
        if current[request_id].state in (states.WorkloadState.APPROVED, states.WorkloadState.PROVISIONING)
        else Result(done=True, message=f"nothing to do in state {current[request_id].state}")
        for request_id in request_ids
    ]


def _start_alone(env: Environment) -> Starter:
    def start(request_id: str) -> requests.WorkloadRecord | Result:
        with env.store.transaction() as tx:
            return start_orders(tx, [request_id], now=env.clock.now())[0]

    return start


def _create_alone(env: Environment) -> Creator:
    def create(center: str, step: CreateStep) -> Created:
        with env.store.unit_of_work(savepoints=False):
            return step()

    return create


def _finish_alone(env: Environment) -> Finisher:
    def finish(step: LastStep) -> None:
        with env.store.transaction() as tx:
            commit_last_steps(tx, [step], now=env.clock.now())

    return finish


def commit_last_steps(tx: db.Transaction, steps: list[LastStep], *, now: float) -> None:
    """Run ``steps`` in ``tx``, then commit their reservations together: the quota counters
    (shared by every order of a department, on every center) are locked last, so they are
    held for a few statements and the commit only. The orders' own last steps (``OrderReady``)
    run together, one statement per table for all of them."""
    orders = [step for step in steps if isinstance(step, OrderReady)]
    reservation_ids = _orders_ready(tx, orders, now=now) if orders else []
    reservation_ids += [
        reservation_id for step in steps if not isinstance(step, OrderReady) for reservation_id in step(tx)
    ]
    quotas.commit_reservations(tx, reservation_ids, now=now)


def reconcile_request(
    env: Environment,
    request_id: str,
    *,
    group_steps: bool = False,
    finish: Finisher | None = None,
    create: Creator | None = None,
    start: Starter | None = None,
) -> Result:
    """Provision an approved request. ``group_steps``: order each resource and record it in one
    store transaction, for drivers that keep their state in the same store and wait for nothing
    (the simulator at zero latency): one commit instead of two, and a process killed between
    the two cannot leave a resource that is not recorded. ``finish``: how the last step (the
    records marked ready, the quota committed) runs; in a transaction of its own by default.
    ``create``: how a grouped step runs; in a unit of work of its own by default. ``start``: how
    the first step (the request read and moved to provisioning) runs; in a transaction of its
    own by default."""
    return _timed(
        "provisioning",
        lambda: _reconcile_request(
            env, request_id, group_steps=group_steps, finish=finish, create=create, start=start
        ),
    )


def _reconcile_request(
    env: Environment,
    request_id: str,
    *,
    group_steps: bool,
    finish: Finisher | None,
    create: Creator | None,
    start: Starter | None,
) -> Result:
    started = (start or _start_alone(env))(request_id)
    if isinstance(started, Result):
        return started
    workload = started
    offering = env.topology.offering(workload.offering)
    made: dict[str, list[dict[str, Any]]] = {}
    try:
        for placement in workload.placements:
            if placement.role in CREATING_ROLES and placement.state != states.PlacementState.READY:
                made[placement.center] = _provision_placement(
                    env, workload, placement, offering, group_steps=group_steps, create=create
                )
    except errors.QuotaExceeded as error:
        return _fail(env, request_id, f"capacity refused: {error.one_line()}")
    except errors.BackendUnavailable as error:
        return Result(done=False, requeue_after_s=RETRY_AFTER_S, message=error.one_line())
    except (errors.Conflict, errors.InvalidInput, errors.OperationFailed) as error:
        return _fail(env, request_id, error.one_line())

    last_step = OrderReady(request_id=request_id, workload_id=workload.id, made=made, clock=env.clock.now)
    (finish or _finish_alone(env))(last_step)
    return Result(done=True, message=states.WorkloadState.READY)


@dataclasses.dataclass(frozen=True)
class OrderReady:
    """An order's last step (a ``LastStep``): its placements' resources recorded and the
    placements ready, the workload and the request (locked, in this order) marked ready; the
    reservations of its creating placements. Several of them in one transaction
    (``commit_last_steps``) read and write their records with one statement per table for all."""

    request_id: str
    workload_id: str
    made: dict[str, list[dict[str, Any]]]
    """The resources of each placement provisioned, by center."""
    clock: Callable[[], float]

    def __call__(self, tx: db.Transaction) -> list[str]:
        return _orders_ready(tx, [self], now=self.clock())


def _orders_ready(tx: db.Transaction, steps: list[OrderReady], *, now: float) -> list[str]:
    requests.update_placements(
        tx,
        [
            (step.workload_id, center, {"resources": resources, "state": states.PlacementState.READY})
            for step in steps
            for center, resources in step.made.items()
        ],
    )
    workloads = requests.lock_workloads(tx, [step.workload_id for step in steps])
    current = requests.lock_requests(tx, [step.request_id for step in steps])
    requests.update_workloads(
        tx, [workloads[step.workload_id] for step in steps], state=states.WorkloadState.READY, now=now
    )
    requests.update_requests(
        tx,
        [current[step.request_id] for step in steps],
        state=states.WorkloadState.READY,
        step=states.WorkloadState.READY,
        now=now,
    )
    return [
        placement.reservation_id
        for step in steps
        for placement in workloads[step.workload_id].placements
        if placement.role in CREATING_ROLES
    ]


def _provision_placement(
    env: Environment,
    workload: requests.WorkloadRecord,
    placement: requests.PlacementRecord,
    offering: topo.Offering,
    *,
    group_steps: bool,
    create: Creator | None,
) -> list[dict[str, Any]]:
    """Order every resource of the placement, then wait for them together (servers boot side
    by side in the backend instead of one after another); the resources, all usable. A server
    the backend said was active when it was found or created is not asked again.

    The caller marks the placement ready in the transaction that finishes the request.
    """
    drivers = env.drivers_for(placement.center)
    made: list[dict[str, Any]] = list(placement.resources)
    existing = {item["name"] for item in made}
    network = env.topology.workload_network(placement.center)
    segment = env.topology.segment(placement.center, network.name) if network else ""
    pool = env.topology.allocation_pool(placement.center, network.name) if network else None
    active: dict[str, base.Server] = {}
    for index in range(workload.count):
        name = names.resource_name(workload.id, index)
        if name in existing:
            continue
        # Persist each resource as soon as it exists (or with it): a crash leaves no orphan behind.
        create_and_record = functools.partial(
            _create_and_record,
            env,
            drivers,
            workload,
            offering,
            name,
            center=placement.center,
            before=list(made),
            network=network,
            segment=segment,
            pool=pool,
        )
        if group_steps:
            # Nothing is caught inside the group, so it needs no savepoints.
            item, server = (create or _create_alone(env))(placement.center, create_and_record)
        else:
            item, server = create_and_record()
        made.append(item)
        if server is not None and server.status is base.ServerStatus.ACTIVE:
            active[server.id] = server
    for item in made:
        if item["kind"] == "server":
            server = active.get(item["id"]) or drivers.compute.wait_for_status(
                item["id"], status=base.ServerStatus.ACTIVE, timeout_s=SERVER_ACTIVE_TIMEOUT_S
            )
            if item.get("network") and server.addresses:
                item["address"] = server.addresses[0]
    return made


def _create_and_record(
    env: Environment,
    drivers: base.CenterDrivers,
    workload: requests.WorkloadRecord,
    offering: topo.Offering,
    name: str,
    *,
    center: str,
    before: list[dict[str, Any]],
    network: topo.Network | None,
    segment: str,
    pool: tuple[str, str] | None,
) -> Created:
    """Find or order one resource, and record the placement's resources with it."""
    item, server = _create_one(drivers, workload, offering, name, network=network, segment=segment, pool=pool)
    _record_resources(env, workload.id, center, [*before, item], state=states.PlacementState.CREATING)
    return item, server


def _record_resources(
    env: Environment,
    workload_id: str,
    center: str,
    resources: list[dict[str, Any]],
    *,
    state: states.PlacementState,
) -> None:
    """Keep what the placement in ``center`` holds now (in a transaction of its own, or the unit's)."""
    with env.store.transaction() as tx:
        requests.update_placement(
            tx, workload_id=workload_id, center=center, values={"resources": resources, "state": state}
        )


def _create_one(
    drivers: base.CenterDrivers,
    workload: requests.WorkloadRecord,
    offering: topo.Offering,
    name: str,
    *,
    network: topo.Network | None,
    segment: str,
    pool: tuple[str, str] | None,
) -> tuple[dict[str, Any], base.Server | None]:
    """Find or order one resource; servers are ordered here and waited for by the caller (the
    server as the backend answered is returned with its record, ``None`` for other kinds).

    A server gets its port on the center's workload network when the topology declares one;
    its network is recorded with it (its address once it is active), which is what a failover
    keeps or re-maps."""
    kind = offering.kind
    if kind is topo.OfferingKind.VM:
        server = drivers.compute.find_server(name)
        if server is None:
            server = drivers.compute.create_server(
                name=name,
                project=workload.department,
                vcpu=offering.vcpu,
                ram_gb=offering.ram_gb,
                disk_gb=offering.volume_gb,
                metadata={"workload": workload.id, "tier": workload.tier},
                port=None
                if network is None
                else base.PortRequest(
                    network=network.name,
                    subnet=str(network.subnet),
                    segment=segment,
                    pool=pool,
                ),
            )
        made = {"kind": "server", "name": name, "id": server.id}
        if network is not None:
            made["network"] = network.name
        return made, server
    if kind is topo.OfferingKind.VOLUME:
        volume = drivers.block_storage.find_volume(name) or drivers.block_storage.create_volume(
            name=name, project=workload.department, size_gb=offering.volume_gb
        )
        return {"kind": "volume", "name": name, "id": volume.id}, None
    if kind is topo.OfferingKind.BUCKET:
        try:
            bucket = drivers.object_storage.get_bucket(name)
        except errors.NotFound:
            bucket = drivers.object_storage.create_bucket(name, versioning=True)
        return {"kind": "bucket", "name": name, "id": bucket.name}, None
    try:
        namespace = drivers.containers.get_namespace(name)
    except errors.NotFound:
        namespace = drivers.containers.create_namespace(name, vcpu=offering.vcpu, ram_gb=offering.ram_gb)
    return {"kind": "namespace", "name": name, "id": namespace.name}, None


def _fail(env: Environment, request_id: str, reason: str) -> Result:
    """Give back everything the request held (resources first, then quota) and mark it failed."""
    with env.store.read() as tx:
        request = requests.get_request(tx, request_id)
        workload = requests.get_workload(tx, request.workload_id or "")
    try:
        _delete_resources(env, workload)
    except errors.BackendUnavailable as error:
        return Result(done=False, requeue_after_s=RETRY_AFTER_S, message=f"cleaning up: {error.one_line()}")
    now = env.clock.now()
    with env.store.transaction() as tx:
        workload = requests.get_workload(tx, workload.id, for_update=True)
        quotas.release_reservations(tx, [p.reservation_id for p in workload.placements], now=now)
        requests.update_workload(
            tx,
            workload,
            state=states.WorkloadState.FAILED,
            reasons=[*workload.reasons, reason],
            now=now,
            with_placements=False,
        )
        current = requests.get_request(tx, request_id, for_update=True)
        requests.update_request(
            tx,
            current,
            state=states.WorkloadState.FAILED,
            reasons=[*current.reasons, reason],
            step=states.WorkloadState.FAILED,
            now=now,
        )
    return Result(done=True, message=reason)


def _delete_resources(env: Environment, workload: requests.WorkloadRecord) -> None:
    for placement in workload.placements:
        if not placement.resources:
            continue
        drivers = env.drivers_for(placement.center)
        remaining = list(placement.resources)
        for item in list(remaining):
            kind, resource_id = item["kind"], item["id"]
            if kind == "server":
                drivers.compute.delete_server(resource_id, ignore_missing=True)
            elif kind == "volume":
                _delete_snapshots(drivers.block_storage, resource_id)
                drivers.block_storage.delete_volume(resource_id, ignore_missing=True)
            elif kind == "bucket":
                _empty_bucket(drivers.object_storage, resource_id)
                drivers.object_storage.delete_bucket(resource_id, ignore_missing=True)
            elif kind == "namespace":
                drivers.containers.delete_namespace(resource_id, ignore_missing=True)
            remaining.remove(item)
            _record_resources(
                env, workload.id, placement.center, remaining, state=states.PlacementState.DELETING
            )
    if env.topology.offering(workload.offering).volume_gb > 0:
        _sweep_volumes(env, workload)


def _sweep_volumes(env: Environment, workload: requests.WorkloadRecord) -> None:
    """Volumes of the workload no placement lists any more (a replica or a recovered disk made
    by a process killed before it recorded it): found by name in the department's project of
    every center the workload was placed in, and deleted with their snapshots."""
    for center in dict.fromkeys(p.center for p in workload.placements):
        storage = env.drivers_for(center).block_storage
        owned = names.owned_prefixes(workload.id)
        for volume in storage.list_volumes(project=workload.department, name_prefixes=owned):
            _delete_snapshots(storage, volume.id)
            storage.delete_volume(volume.id, ignore_missing=True)


def _delete_snapshots(storage: base.BlockStorage, volume_id: str) -> None:
    """A volume with snapshots cannot be deleted: its replication points go first."""
    for snapshot in storage.list_snapshots(volume_id=volume_id):
        storage.delete_snapshot(snapshot.id, ignore_missing=True)


def _empty_bucket(storage: base.ObjectStorage, bucket: str) -> None:
    try:
        objects = storage.list_objects(bucket)
    except errors.NotFound:
        return
    for item in objects:
        storage.delete_object(bucket, key=item.key, ignore_missing=True)


def reconcile_workload(env: Environment, workload_id: str) -> Result:
    return _timed("deletion", lambda: _reconcile_workload(env, workload_id))


def _reconcile_workload(env: Environment, workload_id: str) -> Result:
    """A workload marked ``deleting``: remove its resources, then release its quota."""
    with env.store.read() as tx:
        workload = requests.get_workload(tx, workload_id)
    if workload.state != states.WorkloadState.DELETING:
        return Result(done=True, message=f"nothing to do in state {workload.state}")
    try:
        _delete_resources(env, workload)
    except errors.BackendUnavailable as error:
        return Result(done=False, requeue_after_s=RETRY_AFTER_S, message=error.one_line())
    now = env.clock.now()
    with env.store.transaction() as tx:
        workload = requests.get_workload(tx, workload_id, for_update=True)
        if workload.state != states.WorkloadState.DELETING:
            return Result(done=True)
        quotas.release_reservations(tx, [p.reservation_id for p in workload.placements], now=now)
        for placement in workload.placements:
            requests.update_placement(
                tx,
                workload_id=workload_id,
                center=placement.center,
                values={"resources": [], "state": states.PlacementState.DELETED},
            )
        replication.delete_streams(tx, workload_id=workload_id)
        points_store.delete_points(tx, workload_id=workload_id)
        requests.update_workload(
            tx, workload, state=states.WorkloadState.DELETED, now=now, with_placements=False
        )
    return Result(done=True, message=states.WorkloadState.DELETED)


@dataclasses.dataclass(frozen=True)
class WorkItem:
    """One object the loop should look at, and the centers its reconciliation will call."""

    kind: str
    """``request`` (provision it) or ``workload`` (delete it)."""
    object_id: str
    centers: tuple[str, ...]


def pending_work(env: Environment) -> list[WorkItem]:
    """Requests to provision and workloads to delete, oldest first, with the centers each touches."""
    with env.store.read() as tx:
        # Only the ids and the placements' centers and roles: a backlog of thousands is read
        # again every few seconds while it lasts.
        pending = requests.placements_of_requests(
            tx, states=[states.WorkloadState.APPROVED, states.WorkloadState.PROVISIONING]
        )
        deleting = requests.list_workloads(tx, states=[states.WorkloadState.DELETING])
    work = [
        WorkItem(
            kind="request",
            object_id=request_id,
            centers=tuple(center for center, role in placements if role in CREATING_ROLES),
        )
        for request_id, placements in pending.items()
    ]
    work += [
        WorkItem(
            kind="workload",
            object_id=workload.id,
            centers=tuple(p.center for p in workload.placements if p.resources),
        )
        for workload in deleting
    ]
    return work


def reconcile_once(
    env: Environment,
    kind: str,
    object_id: str,
    *,
    group_steps: bool = False,
    finish: Finisher | None = None,
    create: Creator | None = None,
    start: Starter | None = None,
) -> Result:
    if kind == "request":
        return reconcile_request(
            env, object_id, group_steps=group_steps, finish=finish, create=create, start=start
        )
    return reconcile_workload(env, object_id)
