"""What the management center exports to Prometheus: the state of the estate, read at scrape time.

Invariants: series are computed from the store on each scrape (no second source of
truth); label sets stay bounded — centers, departments (org nodes), resources,
states — never ids of individual requests or workloads. ``exposition`` is what
``/metrics`` serves and what ``cloudctl metrics`` prints.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from cloudctl import metrics
from cloudctl.model import quotas as q
from cloudctl.services import context as ctx_module
from cloudctl.services import status as status_service
from cloudctl.store import orgs, quotas, requests


class StateCollector(Collector):
    """Gauges derived from the store and the centers' drivers."""

    def __init__(self, ctx: ctx_module.Context) -> None:
        self._ctx = ctx

    def collect(self) -> Iterator[GaugeMetricFamily]:
        overview = status_service.overview(self._ctx)
        up = GaugeMetricFamily(
            "cloudctl_center_up",
            "1 when the center answers, 0 when it is down.",
            labels=["center", "role", "site"],
        )
        capacity = GaugeMetricFamily(
            "cloudctl_center_capacity",
            "Capacity of a center per resource and kind (total, allocated, used).",
            labels=["center", "resource", "kind"],
        )
        for center in overview.centers:
            up.add_metric([center.name, center.role, center.site], 1.0 if center.health == "up" else 0.0)
            for resource, cap in center.capacity.items():
                for kind, value in (("total", cap.total), ("allocated", cap.allocated), ("used", cap.used)):
                    capacity.add_metric([center.name, resource, kind], float(value))
        link_up = GaugeMetricFamily(
            "cloudctl_link_up", "1 when a link is up, 0.5 degraded, 0 cut.", labels=["a", "b", "mode"]
        )
        for link in overview.links:
            link_up.add_metric([*link.between, link.mode], {"up": 1.0, "degraded": 0.5}.get(link.state, 0.0))
        yield up
        yield capacity
        yield link_up
        yield from self._quota_families()
        yield self._requests_family()

    def _quota_families(self) -> Iterator[GaugeMetricFamily]:
        limit = GaugeMetricFamily(
            "cloudctl_quota_limit",
            "Quota limit of an org node per center ('all' = sum) and resource.",
            labels=["node", "center", "resource"],
        )
        used = GaugeMetricFamily(
            "cloudctl_quota_used",
            "Quota in use by an org node's subtree.",
            labels=["node", "center", "resource"],
        )
        reserved = GaugeMetricFamily(
            "cloudctl_quota_reserved",
            "Quota held (reserved, not yet used) by an org node's subtree.",
            labels=["node", "center", "resource"],
        )
        with self._ctx.read() as tx:
            node_ids = [node.id for node in orgs.list_nodes(tx)]
            limits = quotas.get_limits(tx, node_ids=node_ids)
            counters = quotas.get_counters(tx, node_ids=node_ids)
        for (node, center, resource), value in sorted(limits.items()):
            limit.add_metric(
                [node, "all" if center == q.ALL_CENTERS else center, resource.value], float(value)
            )
        for (node, center, resource), counter in sorted(counters.items()):
            labels = [node, "all" if center == q.ALL_CENTERS else center, resource.value]
            used.add_metric(labels, float(counter.used))
            reserved.add_metric(labels, float(counter.reserved))
        yield limit
        yield used
        yield reserved

    def _requests_family(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily("cloudctl_requests", "Requests by lifecycle state.", labels=["state"])
        with self._ctx.read() as tx:
            by_state = requests.count_by_state(tx)
        for state in sorted(by_state):
            family.add_metric([state], float(by_state[state]))
        return family


def exposition(ctx: ctx_module.Context) -> bytes:
    """The Prometheus text exposition: process metrics plus the state of the estate."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StateCollector(ctx))
    return generate_latest(metrics.REGISTRY) + generate_latest(registry)
