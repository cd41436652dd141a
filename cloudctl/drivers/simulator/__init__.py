"""The simulator driver: every capability of every center, simulated over a document store.

A small facade; the modules hold the detail and their invariants:

- ``state``: the ``StateBackend`` Protocol the simulator keeps everything in, and
  ``InMemoryState`` (``cloudctl.store.simulator_state.StoreBackedState`` is the
  durable one, wired in by the services);
- ``core``: ``CenterCore``, what the capabilities of one center share: the faults
  and latency each operation meets, capacity, project quotas, checksummed bytes, and
  the center's state in the backend with the lock on it;
- ``compute``, ``block_storage``, ``object_storage``, ``containers``, ``traffic``: one
  class a driver Protocol (``SimulatedCompute``, ``SimulatedBlockStorage``,
  ``SimulatedObjectStorage``, ``SimulatedContainers``, ``SimulatedTraffic``), each over
  its center's core;
- ``center``: ``SimulatedCenter``, one center's core and its five capabilities;
- ``faults``: the fault kinds and how they are stored and met;
- ``driver``: ``Simulator``, the whole topology: drivers per center, fault
  injection, health, and link-aware transfers on the injected clock.
"""

from cloudctl.drivers.simulator.block_storage import SimulatedBlockStorage
from cloudctl.drivers.simulator.center import SimulatedCenter
from cloudctl.drivers.simulator.compute import SimulatedCompute
from cloudctl.drivers.simulator.containers import SimulatedContainers
from cloudctl.drivers.simulator.core import CenterCore
from cloudctl.drivers.simulator.driver import Simulator, Transfer
from cloudctl.drivers.simulator.faults import Fault, FaultKind
from cloudctl.drivers.simulator.object_storage import SimulatedObjectStorage
from cloudctl.drivers.simulator.state import InMemoryState, StateBackend, StateTransaction
from cloudctl.drivers.simulator.traffic import SimulatedTraffic

__all__ = [
    "CenterCore",
    "Fault",
    "FaultKind",
    "InMemoryState",
    "SimulatedBlockStorage",
    "SimulatedCenter",
    "SimulatedCompute",
    "SimulatedContainers",
    "SimulatedObjectStorage",
    "SimulatedTraffic",
    "Simulator",
    "StateBackend",
    "StateTransaction",
    "Transfer",
]
