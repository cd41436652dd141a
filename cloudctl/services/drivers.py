"""Which driver serves each capability of each center, built once per context.

Invariants: every center's drivers come from the topology (``center.drivers``);
the simulator keeps its state in the store, so every process sharing the store
sees the same simulated centers. A capability whose driver is not known raises
``InvalidInput`` naming the topology field.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cloudctl import errors
from cloudctl.model import quotas as q
from cloudctl.model import topology as topo
from cloudctl.services import context as ctx_module

if TYPE_CHECKING:
    from cloudctl.drivers import base
    from cloudctl.drivers import simulator as simulator_driver

SIMULATOR = "simulator"
_CACHE_KEY = "simulator"


def simulator(ctx: ctx_module.Context) -> simulator_driver.Simulator:
    """The simulator of this context, over the store's simulator state."""
    cached = ctx.cache.get(_CACHE_KEY)
    if cached is None:
        from cloudctl.drivers import simulator as simulator_driver
        from cloudctl.store import simulator_state

        ctx.require_initialised()
        cached = simulator_driver.Simulator(
            ctx.topology,
            backend=simulator_state.StoreBackedState(ctx.store, clock=ctx.clock),
            clock=ctx.clock,
        )
        ctx.cache[_CACHE_KEY] = cached
    return cached


def center_drivers(ctx: ctx_module.Context, center: str) -> base.CenterDrivers:
    topology_center = ctx.topology.center(center)
    for capability in topo.Capability:
        name = topology_center.drivers.get(capability, SIMULATOR)
        if name != SIMULATOR:
            index = ctx.topology.centers.index(topology_center)
            raise errors.InvalidInput(
                f"driver {name!r} is not available in this build (known: {SIMULATOR})",
                field=f"centers[{index}].drivers.{capability.value}",
            )
    return simulator(ctx).drivers(center)


class Observer:
    """Health and consumption of the centers, as the management center sees them."""

    def __init__(self, ctx: ctx_module.Context) -> None:
        self._simulator = simulator(ctx)

    def center_health(self, center: str) -> str:
        return self._simulator.center_health(center)

    def link_state(self, a: str, b: str) -> str:
        return self._simulator.link_state(a, b)

    def capacity_used(self, center: str) -> q.Amounts:
        used = self._simulator.capacity_used(center)
        return {resource: int(used.get(resource.value, 0)) for resource in q.RESOURCES}


def observer(ctx: ctx_module.Context) -> Observer:
    return Observer(ctx)
