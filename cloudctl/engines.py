"""The environment the engines (``reconcile/`` and ``recovery/``) are handed by the services layer.

One type for both: the store, the topology, each center's drivers and the clock, and what
only recovery reads (how objects move between centers, how many recovery steps commit
together, the replication manifests). It sits below the engines and above the store and the
drivers (the layers contract in ``pyproject.toml``), so neither engine imports the other to
share it.

Invariants: an environment is frozen and built only by the services (``services.provisioning``
and ``services.recovery``), so every entry point acts on the same state the same way; it does
no I/O of its own beyond the drivers and the transport it is given.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Generic, TypeVar

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.drivers import base
from cloudctl.model import states
from cloudctl.model import topology as topo
from cloudctl.store import db

Transport = Callable[[str, str, str, str], int]
"""``(source_center, target_center, bucket, key) -> bytes moved``; raises ``BackendUnavailable``."""

ManifestT = TypeVar("ManifestT")
"""The replication manifest's type: a parameter, since its protocol belongs to the recovery
engine (``recovery.object_sync.Manifest``), which this module sits below."""


@dataclasses.dataclass(frozen=True)
class Environment(Generic[ManifestT]):
    """What an engine needs, handed in by the services layer."""

    store: db.Store
    topology: topo.Topology
    drivers_for: Callable[[str], base.CenterDrivers]
    clock: clocks.Clock
    transport: Transport | None = None
    """How an object moves between centers (the simulator's link-aware copy); ``None``: one
    verified read at the source and one write at the target through their drivers."""
    steps_per_commit: int = 1
    """How many recovery steps may commit together in one unit of work. 1 where a
    backend acts outside the store (each action's record commits at once); more where
    every center is simulated, since the simulator's state commits (or rolls back)
    with the record of what was done to it."""
    manifests: Callable[[str], ManifestT] | None = None
    """The manifest of each stream (by id): what its target held after the last pass, so a
    pass lists the source only and a scrub tells a damaged copy from a changed source.
    ``None``: each pass lists both sides."""
    link_condition: Callable[[str, str], tuple[states.LinkState, float]] | None = None
    """The link between two centers as the injected faults leave it (its state, and how many
    times slower it is), for a copy through the drivers: cloudctl's replication is the path
    the data takes, so a cut link stops it on real backends too, and a degraded one paces it.
    ``None``: the transport judges the link."""

    def copy_object(self, source: str, target: str, bucket: str, key: str) -> int:
        """Copy ``bucket/key`` from center ``source`` to center ``target``; the bytes moved.

        Through the drivers, the target's digests come from the source's verified read
        (``put_replica``: nothing hashed twice, no HEAD). Over a link degraded ``f`` times, the
        copy then waits (on the clock) what the link's nominal time for it would take
        ``f - 1`` times more, as the simulator's transfer does."""
        if self.transport is not None:
            return self.transport(source, target, bucket, key)
        state, slowdown = states.LinkState.UP, 1.0
        if self.link_condition is not None:
            state, slowdown = self.link_condition(source, target)
        if state is states.LinkState.CUT:
            raise errors.InjectedFault(f"the link {source}~{target} is cut (injected fault)", field="link")
        data, info = self.drivers_for(source).object_storage.get_object(bucket, key=key)
        self.drivers_for(target).object_storage.put_replica(bucket, data=data, source=info)
        link = self.topology.link(source, target)
        if state is states.LinkState.DEGRADED and link is not None:
            self.clock.sleep(link.transfer_s(len(data), slowdown=slowdown) - link.transfer_s(len(data)))
        return len(data)
