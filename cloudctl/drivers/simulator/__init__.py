"""The simulator driver: every capability of every center, simulated over a document store.

A small facade; the modules hold the detail and their invariants:

- ``state``: the ``StateBackend`` Protocol the simulator keeps everything in, and
  ``InMemoryState`` (``cloudctl.store.simulator_state.StoreBackedState`` is the
  durable one, wired in by the services);
- ``center``: ``SimulatedCenter``, the five driver Protocols for one center, with
  capacity, latency, checksummed data and the faults applied to each operation;
- ``faults``: the fault kinds and how they are stored and met;
- ``driver``: ``Simulator``, the whole topology: drivers per center, fault
  injection, health, and link-aware transfers on the injected clock.
"""

from cloudctl.drivers.simulator.center import SimulatedCenter
from cloudctl.drivers.simulator.driver import Simulator, Transfer
from cloudctl.drivers.simulator.faults import Fault, FaultKind
from cloudctl.drivers.simulator.state import InMemoryState, StateBackend, StateTransaction

__all__ = [
    "Fault",
    "FaultKind",
    "InMemoryState",
    "SimulatedCenter",
    "Simulator",
    "StateBackend",
    "StateTransaction",
    "Transfer",
]
