"""The whole simulated world of a topology: its centers, links, faults and transfers.

``Simulator(topology, backend=..., clock=..., seed=...)`` builds one
``SimulatedCenter`` (a ``CenterCore`` and its five capabilities) per center of the
topology and gives out their drivers (``drivers(center)`` → ``base.CenterDrivers``,
one capability object each). On top of the centers it keeps
what spans them: fault injection (``center_down``, ``link_cut``,
``link_degraded``, ``api_error_rate``, ``corrupt_replica``, ``clear``, ``clear_all``, ``list_faults``),
health (``center_health``, ``link_state``) and link-aware transfers
(``transfer``, ``copy_object``).

Invariants:

- The simulator holds no state of its own: everything is in the backend, so a
  second ``Simulator`` over the same backend (another process, over
  ``StoreBackedState``) sees the same servers, data and faults.
- Center and link names are checked against the topology; nothing is hard-coded.
- A transfer crosses exactly one topology link. It takes ``rtt_ms × factor``
  plus ``bytes × 8 / (bandwidth_mbps / factor)`` on the injected clock, where the
  factor is 1 unless the link is degraded; a cut link or a center that is down
  raises ``errors.InjectedFault`` and moves nothing.
"""

from __future__ import annotations

import dataclasses
import random

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.drivers import base
from cloudctl.drivers.simulator import center as sim_center
from cloudctl.drivers.simulator import core as sim_core
from cloudctl.drivers.simulator import faults, state
from cloudctl.model import states
from cloudctl.model import topology as topo

DEFAULT_SERVER_BOOT_S = 2.0
"""How long a simulated server stays in ``build`` before it is ``active``."""


@dataclasses.dataclass(frozen=True)
class Transfer:
    """What one transfer over a link moved and how long it took on the simulated clock."""

    source_center: str
    target_center: str
    size_bytes: int
    duration_s: float
    link_state: states.LinkState
    object_info: base.ObjectInfo | None = None
    """The copy as stored in the target center, for ``copy_object``."""


class Simulator:
    """Simulated drivers for every center of a topology, plus faults and transfers."""

    def __init__(
        self,
        topology: topo.Topology,
        *,
        backend: state.StateBackend | None = None,
        clock: clocks.Clock | None = None,
        seed: int | None = None,
        server_boot_s: float = DEFAULT_SERVER_BOOT_S,
    ) -> None:
        self.topology = topology
        self.backend: state.StateBackend = backend if backend is not None else state.InMemoryState()
        self.clock: clocks.Clock = clock if clock is not None else clocks.SystemClock()
        self.fault_book = faults.FaultBook(backend=self.backend, clock=self.clock, rng=random.Random(seed))
        known = frozenset(center.name for center in topology.centers)
        self._centers = {
            center.name: sim_center.SimulatedCenter(
                sim_core.CenterCore(
                    center, backend=self.backend, clock=self.clock, fault_book=self.fault_book
                ),
                known_centers=known,
                server_boot_s=server_boot_s,
            )
            for center in topology.centers
        }

    # --- centers and their drivers -----------------------------------------------------

    @property
    def center_names(self) -> tuple[str, ...]:
        return tuple(center.name for center in self.topology.centers)

    def center(self, name: str) -> sim_center.SimulatedCenter:
        """The simulated center; ``errors.NotFound`` for a name not in the topology."""
        self.topology.center(name)
        return self._centers[name]

    def drivers(self, center: str) -> base.CenterDrivers:
        simulated = self.center(center)
        return base.CenterDrivers(
            center=center,
            compute=simulated.compute,
            block_storage=simulated.block_storage,
            object_storage=simulated.object_storage,
            containers=simulated.containers,
            traffic=simulated.traffic,
        )

    def answers_at_once(self, center: str) -> bool:
        """Whether nothing on the center is waited for (no latency, servers active at once)."""
        return self.center(center).answers_at_once

    def capacity_used(self, center: str) -> dict[str, int]:
        """Resources in use in the center, by resource name (all five, zeros included)."""
        return self.center(center).capacity_used()

    def capacity_total(self, center: str) -> dict[str, int]:
        return self.center(center).capacity_total()

    # --- faults ------------------------------------------------------------------------

    def center_down(self, center: str) -> faults.Fault:
        self.topology.center(center)
        return self.fault_book.center_down(center)

    def link_cut(self, a: str, b: str) -> faults.Fault:
        self._link(a, b)
        return self.fault_book.link_cut(a, b)

    def link_degraded(self, a: str, b: str, *, factor: float) -> faults.Fault:
        self._link(a, b)
        return self.fault_book.link_degraded(a, b, factor=factor)

    def api_error_rate(self, center: str, *, rate: float) -> faults.Fault:
        self.topology.center(center)
        return self.fault_book.api_error_rate(center, rate=rate)

    def corrupt_replica(self, center: str, *, bucket: str, key: str) -> faults.Fault:
        """Damage a stored object's bytes behind its checksum, and record the fault."""
        self.center(center).object_storage.corrupt_object(bucket, key=key)
        return self.fault_book.corrupt_replica(center, bucket=bucket, key=key)

    def clear(self, fault_id: str, *, ignore_missing: bool = True) -> None:
        self.fault_book.clear(fault_id, ignore_missing=ignore_missing)

    def clear_all(self) -> int:
        """Clear every injected fault; how many there were."""
        return self.fault_book.clear_all()

    def list_faults(self) -> list[faults.Fault]:
        return self.fault_book.list_faults()

    def center_health(self, center: str) -> states.CenterHealth:
        self.topology.center(center)
        return self.fault_book.center_health(center)

    def link_state(self, a: str, b: str) -> states.LinkState:
        return self.link_condition(a, b)[0]

    def link_condition(self, a: str, b: str) -> tuple[states.LinkState, float]:
        """The link's state as the injected faults leave it, and how many times slower it is."""
        self._link(a, b)
        return self.fault_book.link_condition(a, b)

    def _link(self, a: str, b: str) -> topo.Link:
        self.topology.center(a)
        self.topology.center(b)
        link = self.topology.link(a, b)
        if link is None:
            raise errors.NotFound(f"no link between {a} and {b} in the topology", field="link")
        return link

    # --- data across centers -----------------------------------------------------------

    def transfer(self, source_center: str, target_center: str, *, size_bytes: int) -> Transfer:
        """Move ``size_bytes`` over the link between two centers (time only, no data)."""
        if size_bytes < 0:
            raise errors.InvalidInput(f"must not be negative, not {size_bytes}", field="size_bytes")
        link = self._link(source_center, target_center)
        for end in (source_center, target_center):
            if self.fault_book.center_health(end) is states.CenterHealth.DOWN:
                raise errors.InjectedFault(f"center {end} is down", field="center")
        link_state, factor = self.fault_book.link_condition(source_center, target_center)
        if link_state is states.LinkState.CUT:
            raise errors.InjectedFault(f"link {link.name} is cut (injected fault)", field="link")
        duration_s = link.transfer_s(size_bytes, slowdown=factor)
        self.clock.sleep(duration_s)
        return Transfer(
            source_center=source_center,
            target_center=target_center,
            size_bytes=size_bytes,
            duration_s=duration_s,
            link_state=link_state,
        )

    def copy_object(self, *, source_center: str, target_center: str, bucket: str, key: str) -> Transfer:
        """Copy one object to the same bucket in another center, keeping its version id.

        The source read verifies the checksum (``base.ChecksumMismatchError`` if the
        source is corrupt) and the target refuses bytes that do not match it. The
        target bucket must exist.
        """
        self._link(source_center, target_center)
        data, info = self.center(source_center).object_storage.get_object(bucket, key=key)
        moved = self.transfer(source_center, target_center, size_bytes=len(data))
        copy = self.center(target_center).object_storage.put_replica(bucket, data=data, source=info)
        return dataclasses.replace(moved, object_info=copy)

    def corrupt_object(self, center: str, *, bucket: str, key: str) -> None:
        """Test hook: damage a stored object so that the next read detects it."""
        self.center(center).object_storage.corrupt_object(bucket, key=key)
