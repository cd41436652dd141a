"""Traffic records of workloads: where users of a workload are sent, one record set per workload.

A workload's record set is named ``<workload name>.<department>`` in the topology's zone
(``Topology.zone``): ``portal.hrss-insurance`` and ``portal.psb-traffic`` are two record
sets, so steering one department's ``portal`` never moves the other's. Each record set
has one weighted record per center (``base.Traffic``); the traffic driver is the
management center's (the GSLB lives with it).

Invariants:

- The name depends on the department and the workload's name only, so every run
  (failover, failback, a resumed run) addresses the same record set.
- ``switch`` gives the target the full weight before draining the centers left, so the
  name never has no target.
- ``remove`` deletes every record of the workload's set; deleting twice is harmless.
"""

from __future__ import annotations

from cloudctl.drivers import base
from cloudctl.model import topology as topo
from cloudctl.store import requests

FULL_WEIGHT = 100


def record_name(workload: requests.WorkloadRecord) -> str:
    """The record set of a workload, relative to the zone: ``<name>.<department>``."""
    return f"{workload.name}.{workload.department}"


def traffic_center(topology: topo.Topology) -> str:
    """The traffic (GSLB) driver lives with the management center."""
    return topology.centers_with_role(topo.CenterRole.MANAGEMENT)[0].name


def served_address(workload: requests.WorkloadRecord, *, center: str) -> str | None:
    """The address the workload answers at in ``center``: its first server's there, when one was
    recorded (the topology declares the center's workload network); else ``None``."""
    placement = next((p for p in workload.placements if p.center == center), None)
    servers = [item for item in (placement.resources if placement else []) if item["kind"] == "server"]
    return next((item["address"] for item in servers if item.get("address")), None)


def switch(
    traffic: base.Traffic,
    topology: topo.Topology,
    workload: requests.WorkloadRecord,
    *,
    target: str,
    left: list[str],
    address: str | None = None,
) -> None:
    """All of the workload's traffic to ``target`` (at ``address``, the workload's own address
    there, where the driver answers with addresses); the centers ``left`` keep a record at
    weight 0."""
    name = record_name(workload)
    traffic.upsert_record(topology.zone, name=name, target_center=target, weight=FULL_WEIGHT, address=address)
    for center in left:
        if center != target:
            traffic.upsert_record(topology.zone, name=name, target_center=center, weight=0)


def remove(traffic: base.Traffic, topology: topo.Topology, workload: requests.WorkloadRecord) -> int:
    """Delete the workload's records; how many there were."""
    records = traffic.list_records(topology.zone, name=record_name(workload))
    for record in records:
        traffic.delete_record(topology.zone, name=record.name, target_center=record.target_center)
    return len(records)
