"""What a failover makes in the recovery center besides servers: the workload's volumes, made
there from the replica that center holds, and attached.

For each protected volume of the workload (``snapshots.protected_volumes`` of a center it is
leaving: its volumes and its servers' disks, by logical name), ``recover_volumes``:

1. finds the replica in the recovery center (``snapshots.ensure_replica``: normally made by
   the replication passes; made now, empty, when the copy never got one);
2. takes the replication point the recovery starts from: a snapshot of the replica named
   ``rp-<logical name>-<seq>``, ``seq`` being the newest change known to be in the recovery
   center (an async copy's point is reused when its pass took it already; a sync standby's is
   taken now), recorded as a ready point;
3. makes a volume from that snapshot, of the protected volume's size, named after the point
   (``rp-<logical name>-<seq>``), recorded among the placement's resources with ``of`` (the
   logical name) and ``point`` (the point's id);
4. attaches it to the recovered server of the same logical name, when there is one (a server's
   disk); a volume of a volume offering stays detached, as it was in its home center.

The recovered servers' network ports are made with them (``failover._start_servers``): on the
recovery center's workload network at the address the plan mapped (kept on a stretched network,
re-mapped on a routed one: ``failover.address_plan``), or, when the topology declares no network
there, as the compute driver makes them (``drivers.openstack.network``).

Invariants: idempotent and resumable (replica, snapshot and volume are found by name before one
is made, an attached volume is not attached again), so a failover killed part-way and resumed
makes nothing twice. The replica stays among the placement's resources the caller writes back
(``ensure_replica`` records it in the store; ``recover_volumes`` returns it too), so deleting
the workload later deletes it. Nothing here reads the center being left: sizes come from the offering,
names from the store.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from cloudctl.model import names, states
from cloudctl.recovery import replication as repl
from cloudctl.recovery import snapshots
from cloudctl.store import replication, requests
from cloudctl.store import replication_points as points_store


def recover_volumes(
    env: repl.Environment,
    workload: requests.WorkloadRecord,
    *,
    target: str,
    left: list[str],
    seq: int,
    resources: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """``resources`` (the recovery center's placement) with the workload's volumes recovered there."""
    protected: list[snapshots.Protected] = []
    for center in left:
        for item in snapshots.protected_volumes(env.topology, workload, center):
            if item.name not in {known.name for known in protected}:
                protected.append(item)
    if not protected:
        return resources
    drivers = env.drivers_for(target)
    made = list(resources)
    for volume in protected:
        replica = snapshots.ensure_replica(env, workload=workload, center=target, protected=volume)
        if replica not in made:  # recorded by ``ensure_replica``: keep it in what the caller writes back
            made = [i for i in made if i.get("replica_of") != volume.name] + [replica]
        point = _point(env, workload, target=target, replica=replica, logical_name=volume.name, seq=seq)
        recovered = next((i for i in made if i.get("point") == point.id), None)
        if recovered is None:
            found = drivers.block_storage.find_volume(point.snapshot_name)
            if found is None:
                found = drivers.block_storage.create_volume(
                    name=point.snapshot_name,
                    project=workload.department,
                    size_gb=volume.size_gb,
                    snapshot_id=point.snapshot_id,
                )
            recovered = {
                "kind": "volume",
                "name": found.name,
                "id": found.id,
                "of": volume.name,
                "point": point.id,
            }
            made.append(recovered)
        server = next((i for i in made if i["kind"] == "server" and i["name"] == volume.name), None)
        if server is not None and recovered["id"] not in drivers.compute.attached_volumes(server["id"]):
            drivers.compute.attach_volume(server["id"], volume_id=recovered["id"])
    return made


def _point(
    env: repl.Environment,
    workload: requests.WorkloadRecord,
    *,
    target: str,
    replica: dict[str, Any],
    logical_name: str,
    seq: int,
) -> points_store.ReplicationPoint:
    """The ready point of ``replica`` at ``seq`` in ``target``: the one a pass took, or one taken now."""
    storage = env.drivers_for(target).block_storage
    name = names.snapshot_name(logical_name, seq)
    point_id = points_store.point_id(target, name)
    with env.store.read() as tx:
        known = points_store.find_point(tx, point_id)
    if known is not None and known.state == states.PointState.READY and known.snapshot_id is not None:
        return known
    snapshot = snapshots.find_snapshot(
        storage, volume_id=replica["id"], name=name
    ) or storage.create_snapshot(replica["id"], name=name)
    now = env.clock.now()
    with env.store.read() as tx:
        streams = [s for s in replication.list_streams(tx, workload_ids=[workload.id]) if s.target == target]
        consistent_at = snapshots.consistent_at(
            tx,
            workload_id=workload.id,
            seq=seq,
            otherwise=max((s.last_consistent_at or 0.0 for s in streams), default=0.0) or None,
        )
    point = points_store.ReplicationPoint(
        id=point_id,
        workload_id=workload.id,
        department=workload.department,
        center=target,
        volume_id=replica["id"],
        volume_name=logical_name,
        snapshot_name=name,
        snapshot_id=snapshot.id,
        seq=seq,
        consistent_at=consistent_at,
        state=states.PointState.READY,
        last_error="",
        taken_at=now,
        created_at=now,
        updated_at=now,
    )
    with env.store.transaction() as tx:
        return points_store.upsert_point(tx, dataclasses.replace(point, updated_at=env.clock.now()))
