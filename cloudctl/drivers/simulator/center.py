"""One simulated center: its five capabilities over one shared core.

``SimulatedCenter`` takes the center's ``core.CenterCore`` (faults, latency,
capacity, project quotas, its state in the backend and the lock on it) and gives it
to each capability, one module a ``drivers.base`` Protocol:

- ``compute.SimulatedCompute`` (``base.Compute``): servers, ports, project quotas;
- ``block_storage.SimulatedBlockStorage`` (``base.BlockStorage``): volumes, blocks, snapshots;
- ``object_storage.SimulatedObjectStorage`` (``base.ObjectStorage``): buckets, objects,
  versions, retention, prefix grants;
- ``containers.SimulatedContainers`` (``base.Containers``): namespaces;
- ``traffic.SimulatedTraffic`` (``base.Traffic``): DNS records.

Invariants:

- The five capabilities of a center share one core and so one capacity, one usage
  row (the center's writers' lock) and one set of faults: a server and a namespace
  draw on the same vCPU, and a center that is down fails all five alike.
- The center holds no state of its own beyond its configuration; everything is in
  the backend (see ``core`` and each capability's module for their invariants).
"""

from __future__ import annotations

from cloudctl.drivers.simulator.block_storage import SimulatedBlockStorage
from cloudctl.drivers.simulator.compute import SimulatedCompute
from cloudctl.drivers.simulator.containers import SimulatedContainers
from cloudctl.drivers.simulator.core import CenterCore
from cloudctl.drivers.simulator.object_storage import SimulatedObjectStorage
from cloudctl.drivers.simulator.traffic import SimulatedTraffic


class SimulatedCenter:
    """The simulator's compute, block storage, object storage, containers and traffic
    drivers for one center of the topology, over one ``CenterCore``."""

    def __init__(self, core: CenterCore, *, known_centers: frozenset[str], server_boot_s: float) -> None:
        self.name = core.name
        self.core = core
        self._server_boot_s = server_boot_s
        self.compute = SimulatedCompute(self.core, server_boot_s=server_boot_s)
        self.block_storage = SimulatedBlockStorage(self.core)
        self.object_storage = SimulatedObjectStorage(self.core)
        self.containers = SimulatedContainers(self.core)
        self.traffic = SimulatedTraffic(self.core, known_centers=known_centers)

    @property
    def answers_at_once(self) -> bool:
        """Whether nothing on this center is waited for: no latency on its operations, and
        servers active as soon as they exist."""
        return self.core.latency_s == 0 and self._server_boot_s == 0

    def capacity_total(self) -> dict[str, int]:
        return self.core.capacity_total()

    def capacity_used(self) -> dict[str, int]:
        """What is in use, per resource name; not subject to faults (an observer's view)."""
        return self.core.capacity_used()
