"""Which driver serves each capability of each center, built once per context.

Invariants: every center's drivers come from the topology (``center.drivers``);
the simulator keeps its state in the store, so every process sharing the store
sees the same simulated centers. A capability whose driver is not known raises
``InvalidInput`` naming the topology field. A real driver's retries and timeouts are
its ``RetryPolicy`` defaults with what the backend's ``calls:`` sets in the topology;
the circuit breakers' thresholds are settings (``breaker_failures_to_open``,
``breaker_cooldown_s``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypedDict

from cloudctl import errors
from cloudctl.drivers import base
from cloudctl.model import quotas as q
from cloudctl.model import states
from cloudctl.model import topology as topo
from cloudctl.services import breaker
from cloudctl.services import context as ctx_module

if TYPE_CHECKING:
    from cloudctl.drivers import openstack as openstack_driver
    from cloudctl.drivers import s3 as s3_driver
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


OPENSTACK = "openstack"


def center_drivers(ctx: ctx_module.Context, center: str) -> base.CenterDrivers:
    """The center's drivers behind its circuit breaker (see ``services.breaker``).

    A real backend's driver also answers to the injected faults: while the center is down
    (``faults.inject(kind="center-down")``), every call to it is refused as the simulator
    refuses one, although its servers still answer. So a drill that loses a center on real
    backends writes nothing to it and copies nothing from it, and what its failover counts as
    lost is what losing the center would lose.
    """
    raw = _center_drivers(ctx, center)
    guard = breakers(ctx)
    names = ctx.topology.center(center).drivers
    down = _refused_while_down(ctx, center)

    def guarded(driver: Any, capability: topo.Capability) -> Any:
        gate = None if names.get(capability, SIMULATOR) == SIMULATOR else down
        return breaker.Guarded(driver, center=center, breakers=guard, gate=gate)

    return base.CenterDrivers(
        center=center,
        compute=guarded(raw.compute, topo.Capability.COMPUTE),
        block_storage=guarded(raw.block_storage, topo.Capability.BLOCK_STORAGE),
        object_storage=guarded(raw.object_storage, topo.Capability.OBJECT_STORAGE),
        containers=guarded(raw.containers, topo.Capability.CONTAINERS),
        traffic=guarded(raw.traffic, topo.Capability.TRAFFIC),
    )


def _refused_while_down(ctx: ctx_module.Context, center: str) -> Callable[[], None]:
    """Raise ``InjectedFault`` while a ``center-down`` fault holds ``center`` (read afresh)."""
    faults = simulator(ctx)

    def gate() -> None:
        if faults.center_health(center) is states.CenterHealth.DOWN:
            raise errors.InjectedFault(f"center {center} is down (injected fault)", field="center")

    return gate


def breakers(ctx: ctx_module.Context) -> breaker.Breakers:
    """This process's circuit breakers; opening or closing one is recorded in the store."""
    cached = ctx.cache.get("breakers")
    if cached is None:
        from cloudctl.store import centers

        def record(center: str, state: str) -> None:
            with ctx.store.transaction() as tx:
                centers.set_center_state(tx, center, state=state, now=ctx.clock.now())

        cached = breaker.Breakers(
            clock=ctx.clock,
            on_change=record,
            failures_to_open=ctx.settings.breaker_failures_to_open,
            cooldown_s=ctx.settings.breaker_cooldown_s,
        )
        ctx.cache["breakers"] = cached
    assert isinstance(cached, breaker.Breakers)
    return cached


def _center_drivers(ctx: ctx_module.Context, center: str) -> base.CenterDrivers:
    """The drivers of one center, capability by capability, as the topology names them.

    ``simulator`` serves every capability. ``openstack`` serves compute and block storage
    from the ``clouds.yaml`` entry of the center (``backends.openstack.cloud``, default the
    center's name; the file from ``CLOUDCTL_CLOUDS_YAML`` or openstacksdk's standard
    locations); ``s3`` serves object storage and ``dns`` traffic from ``backends.s3`` /
    ``backends.dns`` (credentials from the environment variables they name); ``kubernetes``
    serves containers from ``backends.kubernetes``. Each backend's ``calls:`` tunes its
    driver's ``RetryPolicy`` (``_retry_overrides``). Real backends run on the real clock: a
    real cloud does not follow a simulated one. Every driver is built once per context.
    """
    key = f"drivers:{center}"
    cached = ctx.cache.get(key)
    if cached is not None:
        assert isinstance(cached, base.CenterDrivers)
        return cached
    topology_center = ctx.topology.center(center)
    names = {capability: topology_center.drivers.get(capability, SIMULATOR) for capability in topo.Capability}
    simulated = simulator(ctx).drivers(center)
    compute: base.Compute = simulated.compute
    block_storage: base.BlockStorage = simulated.block_storage
    object_storage: base.ObjectStorage = simulated.object_storage
    containers: base.Containers = simulated.containers
    traffic: base.Traffic = simulated.traffic
    if OPENSTACK in (names[topo.Capability.COMPUTE], names[topo.Capability.BLOCK_STORAGE]):
        from cloudctl.drivers import openstack as openstack_driver

        cloud = _openstack_cloud(ctx, center)
        if names[topo.Capability.COMPUTE] == OPENSTACK:
            compute = openstack_driver.OpenStackCompute(cloud)
        if names[topo.Capability.BLOCK_STORAGE] == OPENSTACK:
            block_storage = openstack_driver.OpenStackBlockStorage(cloud)
    backends = topology_center.backends
    if names[topo.Capability.OBJECT_STORAGE] == "s3" and backends.s3 is not None:
        from cloudctl.drivers import s3

        object_storage = s3.S3ObjectStorage(
            center=center, account_id=backends.s3.iam_account_id, **_aws_endpoint(backends.s3, center=center)
        )
    if names[topo.Capability.TRAFFIC] == "dns" and backends.dns is not None:
        from cloudctl.drivers import dns

        traffic = dns.Route53Traffic(
            center=center,
            centers=[known.name for known in ctx.topology.centers],
            **_aws_endpoint(backends.dns, center=center),
        )
    if names[topo.Capability.CONTAINERS] == "kubernetes":
        from pathlib import Path

        from cloudctl.drivers import kubernetes

        settings = backends.kubernetes
        calls = settings.calls if settings else topo.ClientCallSettings()
        containers = kubernetes.KubernetesContainers(
            center=center,
            kubeconfig=Path(settings.kubeconfig) if settings and settings.kubeconfig else None,
            context=settings.context if settings else None,
            retry=dataclasses.replace(
                kubernetes.RetryPolicy(), **_retry_overrides(calls, timeout_field="read_timeout_s")
            ),
        )
    built = base.CenterDrivers(
        center=center,
        compute=compute,
        block_storage=block_storage,
        object_storage=object_storage,
        containers=containers,
        traffic=traffic,
    )
    ctx.cache[key] = built
    return built


class _AwsEndpoint(TypedDict):
    endpoint_url: str
    access_key: str
    secret_key: str
    region: str
    retry: s3_driver.RetryPolicy


def _aws_endpoint(settings: topo.S3Backend, *, center: str) -> _AwsEndpoint:
    """What the S3 and the Route 53 drivers both take from their endpoint's settings: where it is,
    the credentials from the environment variables named, and the tuned call policy."""
    from cloudctl.drivers import s3

    return _AwsEndpoint(
        endpoint_url=settings.endpoint_url,
        access_key=_secret(settings.access_key_env, center=center),
        secret_key=_secret(settings.secret_key_env, center=center),
        region=settings.region,
        retry=dataclasses.replace(
            s3.RetryPolicy(), **_retry_overrides(settings.calls, timeout_field="read_timeout_s")
        ),
    )


def _retry_overrides(calls: topo.CallSettings, *, timeout_field: str) -> dict[str, Any]:
    """The ``RetryPolicy`` fields that ``calls`` sets; ``timeout_s`` becomes the driver's
    ``timeout_field`` (``read_timeout_s``, ``api_timeout_s``)."""
    overrides = calls.model_dump(exclude_none=True)
    if "timeout_s" in overrides:
        overrides[timeout_field] = overrides.pop("timeout_s")
    return overrides


def _secret(variable: str, *, center: str) -> str:
    import os

    value = os.environ.get(variable)
    if not value:
        raise errors.InvalidInput(f"set {variable} for the backends of center {center}", field=variable)
    return value


def _openstack_cloud(ctx: ctx_module.Context, center: str) -> openstack_driver.Cloud:
    from cloudctl import clock as clocks
    from cloudctl.drivers import openstack as openstack_driver

    key = f"openstack:{center}"
    cloud = ctx.cache.get(key)
    if cloud is None:
        settings = ctx.topology.center(center).backends.openstack
        calls = settings.calls if settings else topo.OpenStackCallSettings()
        cloud = openstack_driver.Cloud.from_clouds_yaml(
            center=center,
            clouds_yaml=ctx.settings.clouds_yaml,
            cloud_name=settings.cloud if settings else None,
            clock=clocks.SystemClock(),
            retry=dataclasses.replace(
                openstack_driver.RetryPolicy(), **_retry_overrides(calls, timeout_field="api_timeout_s")
            ),
        )
        ctx.cache[key] = cloud
    assert isinstance(cloud, openstack_driver.Cloud)
    return cloud


class Observer:
    """Health and consumption of the centers, as the management center sees them."""

    def __init__(self, ctx: ctx_module.Context) -> None:
        self._ctx = ctx
        self._simulator = simulator(ctx)

    def center_health(self, center: str) -> str:
        """``down`` when the simulator says so, or when a real backend of the center does not answer."""
        if states.CenterHealth(self._simulator.center_health(center)) is states.CenterHealth.DOWN:
            return states.CenterHealth.DOWN
        if breakers(self._ctx).is_open(center) or self._stored_state(center) == states.CenterHealth.UNHEALTHY:
            return states.CenterHealth.UNHEALTHY
        if any(name != SIMULATOR for name in self._ctx.topology.center(center).drivers.values()):
            return states.CenterHealth.UP if self._real_backends_answer(center) else states.CenterHealth.DOWN
        return states.CenterHealth.UP

    def _stored_state(self, center: str) -> str:
        from cloudctl.store import centers

        with self._ctx.read() as tx:
            return centers.get_center(tx, center).state

    def _real_backends_answer(self, center: str) -> bool:
        try:
            center_drivers(self._ctx, center).compute.list_servers(project=None)
        except errors.BackendUnavailable:
            return False
        except errors.CloudctlError:
            return True  # it answered, if only to refuse
        return True

    def driver_names(self, center: str) -> dict[str, str]:
        return {
            capability.value: self._ctx.topology.center(center).drivers.get(capability, SIMULATOR)
            for capability in topo.Capability
        }

    def link_state(self, a: str, b: str) -> str:
        return self._simulator.link_state(a, b)

    def capacity_used(self, center: str) -> q.Amounts:
        used = self._simulator.capacity_used(center)
        return {resource: int(used.get(resource.value, 0)) for resource in q.RESOURCES}


def observer(ctx: ctx_module.Context) -> Observer:
    return Observer(ctx)
