"""What the management center exports to Prometheus: the state of the estate, read at scrape time.

Invariants:
- Series are computed from the store (and the centers' drivers) on each scrape: no
  second source of truth, and every process that scrapes or prints the exposition
  (``/metrics``, ``cloudctl metrics``) shows the same state.
- Label sets stay bounded — centers, org nodes, resources, tiers, modes, states, drill
  plans — never ids of individual requests, workloads or streams.
- A family is always described (``# HELP``/``# TYPE``) even when it has no sample yet
  (no streams, no drill run), so dashboards and alert rules can rely on its name.
- Replication lag is the current RPO: per stream ``now - write time of the oldest
  change not yet at the target`` (0 when nothing is pending), the maximum over the
  streams of one (department, tier, source, target, mode) group; the group's lag
  target follows the rule ``cloudctl replication`` reports ``over_target`` by.
- Verifying the audit chain reads every record, so its result is kept for
  ``AUDIT_VERIFY_EVERY_S`` of the context's clock; scrapes in between reuse it.
- ``exposition`` is what ``/metrics`` serves and what ``cloudctl metrics`` prints.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeGuard

from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from cloudctl import metrics
from cloudctl.model import quotas as q
from cloudctl.model import states
from cloudctl.recovery import replication as repl
from cloudctl.services import audit as audit_service
from cloudctl.services import capacity, grants, identity, showback
from cloudctl.services import context as ctx_module
from cloudctl.services import status as status_service
from cloudctl.store import orgs, quotas, recovery, replication, requests

AUDIT_VERIFY_EVERY_S = 60.0
_STREAM_LABELS = ["department", "tier", "source", "target", "mode"]
LINK_UP_VALUES: dict[str, float] = {states.LinkState.UP: 1.0, states.LinkState.DEGRADED: 0.5}
"""``cloudctl_link_up`` by link state; a cut link is 0."""


@dataclasses.dataclass(frozen=True)
class _AuditCheck:
    checked_at: float
    ok: bool
    records: int


class StateCollector(Collector):
    """Gauges derived from the store and the centers' drivers."""

    def __init__(self, ctx: ctx_module.Context) -> None:
        self._ctx = ctx

    def collect(self) -> Iterator[GaugeMetricFamily]:
        started = time.perf_counter()
        yield from self._center_families()
        yield self._replica_policies_family()
        yield from self._quota_families()
        yield self._requests_family()
        yield self._provisioning_backlog_family()
        yield from self._replication_families()
        yield self._protection_family()
        yield from self._drill_families()
        yield from self._audit_families()
        yield from self._store_pool_families()
        yield from showback.metric_families(self._ctx)
        yield from capacity.metric_families(self._ctx)
        yield from grants.metric_families(self._ctx)
        duration = GaugeMetricFamily(
            "cloudctl_state_collect_duration_seconds",
            "Time this scrape took to read the state series from the store and the drivers.",
        )
        duration.add_metric([], time.perf_counter() - started)
        yield duration

    # --- the store's connection pool (this process) -------------------------------------------------

    def _store_pool_families(self) -> Iterator[GaugeMetricFamily]:
        pool = self._ctx.store.pool_status()
        size = GaugeMetricFamily(
            "cloudctl_store_pool_size",
            "Connections this process's store keeps open (CLOUDCTL_DB_POOL_SIZE).",
        )
        size.add_metric([], float(pool.size))
        overflow = GaugeMetricFamily(
            "cloudctl_store_pool_max_overflow",
            "Connections it may open beyond that under load (CLOUDCTL_DB_POOL_MAX_OVERFLOW).",
        )
        overflow.add_metric([], float(pool.max_overflow))
        in_use = GaugeMetricFamily(
            "cloudctl_store_pool_in_use",
            "Store connections handed out to callers right now.",
        )
        in_use.add_metric([], float(pool.in_use))
        yield size
        yield overflow
        yield in_use

    # --- centers and links ---------------------------------------------------------------------------

    def _center_families(self) -> Iterator[GaugeMetricFamily]:
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
            up.add_metric(
                [center.name, center.role, center.site],
                1.0 if center.health == states.CenterHealth.UP else 0.0,
            )
            for resource, cap in center.capacity.items():
                for kind, value in (("total", cap.total), ("allocated", cap.allocated), ("used", cap.used)):
                    capacity.add_metric([center.name, resource, kind], float(value))
        link_up = GaugeMetricFamily(
            "cloudctl_link_up", "1 when a link is up, 0.5 degraded, 0 cut.", labels=["a", "b", "mode"]
        )
        for link in overview.links:
            link_up.add_metric([*link.between, link.mode], LINK_UP_VALUES.get(link.state, 0.0))
        yield up
        yield capacity
        yield link_up

    def _replica_policies_family(self) -> GaugeMetricFamily:
        differ = GaugeMetricFamily(
            "cloudctl_replica_policies_differ",
            "1 for a running serve replica whose Cedar policies (sha256) differ from the leader's, else 0.",
            labels=["replica", "api_url"],
        )
        for replica in status_service.replicas(self._ctx):
            if replica.role in status_service.RUNNING:
                differ.add_metric([replica.id, replica.api_url], 1.0 if replica.policies_differ else 0.0)
        return differ

    # --- quotas and requests ---------------------------------------------------------------------------

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

    def _provisioning_backlog_family(self) -> GaugeMetricFamily:
        from cloudctl.services import provisioning

        family = GaugeMetricFamily(
            "cloudctl_provisioning_backlog",
            "Admitted work the provisioning reconciler has not finished, by kind: requests to "
            "provision (approved or provisioning), workloads to delete.",
            labels=["kind"],
        )
        for kind, count in sorted(provisioning.backlog(self._ctx).items()):
            family.add_metric([kind], float(count))
        return family

    # --- replication ---------------------------------------------------------------------------------

    def _replication_families(self) -> Iterator[GaugeMetricFamily]:
        lag = GaugeMetricFamily(
            "cloudctl_replication_lag_seconds",
            "Current RPO: age of the oldest change not yet at the target, the maximum over the "
            "streams of a department, tier, source, target and mode (0 when nothing is pending).",
            labels=_STREAM_LABELS,
        )
        copied = GaugeMetricFamily(
            "cloudctl_replication_bytes",
            "Bytes copied to the target so far, summed over the streams of the group.",
            labels=_STREAM_LABELS,
        )
        lag_target = GaugeMetricFamily(
            "cloudctl_replication_lag_target_seconds",
            "The lag a group of streams may reach and still be on time: the tier's RPO target, and for "
            "an async or backup copy at least one copy interval (as `cloudctl replication` judges it).",
            labels=_STREAM_LABELS,
        )
        by_state = GaugeMetricFamily(
            "cloudctl_replication_streams", "Replication streams by state.", labels=["state"]
        )
        rpo_target = GaugeMetricFamily(
            "cloudctl_replication_rpo_target_seconds",
            "RPO target of a protection tier (from the topology).",
            labels=["tier"],
        )
        rto_target = GaugeMetricFamily(
            "cloudctl_replication_rto_target_seconds",
            "RTO target of a protection tier (from the topology).",
            labels=["tier"],
        )
        rpo_by_tier = {tier.name: float(tier.rpo_target_s) for tier in self._ctx.topology.tiers}
        for tier in self._ctx.topology.tiers:
            rpo_target.add_metric([tier.name], float(tier.rpo_target_s))
            rto_target.add_metric([tier.name], float(tier.rto_target_s))
        now = self._ctx.clock.now()
        lag_by_group: dict[tuple[str, ...], float] = {}
        target_by_group: dict[tuple[str, ...], float] = {}
        bytes_by_group: dict[tuple[str, ...], int] = {}
        count_by_state: dict[str, int] = {}
        with self._ctx.read() as tx:
            for stream in replication.list_streams(tx):
                group = (stream.department, stream.tier, stream.source, stream.target, stream.mode)
                pending_since = replication.first_pending_at(
                    tx, workload_id=stream.workload_id, seq=stream.last_seq
                )
                stream_lag = 0.0 if pending_since is None else max(now - pending_since, 0.0)
                lag_by_group[group] = max(lag_by_group.get(group, 0.0), stream_lag)
                target_by_group[group] = max(
                    target_by_group.get(group, 0.0), _lag_target_s(stream, rpo_by_tier)
                )
                bytes_by_group[group] = bytes_by_group.get(group, 0) + stream.bytes_copied
                count_by_state[stream.state] = count_by_state.get(stream.state, 0) + 1
        for labels in sorted(lag_by_group):
            lag.add_metric(list(labels), lag_by_group[labels])
            lag_target.add_metric(list(labels), target_by_group[labels])
            copied.add_metric(list(labels), float(bytes_by_group[labels]))
        for state in sorted(count_by_state):
            by_state.add_metric([state], float(count_by_state[state]))
        yield lag
        yield lag_target
        yield copied
        yield by_state
        yield rpo_target
        yield rto_target

    def _protection_family(self) -> GaugeMetricFamily:
        from cloudctl.services import recovery as recovery_service

        family = GaugeMetricFamily(
            "cloudctl_workloads_protection",
            "Ready workloads by tier and protection, as `cloudctl replication status` judges it: "
            "protected (every copy the tier needs has a healthy stream), degraded (some), "
            "unprotected (none).",
            labels=["tier", "protection"],
        )
        for (tier, verdict), count in sorted(recovery_service.protection_counts(self._ctx).items()):
            family.add_metric([tier, verdict], float(count))
        return family

    # --- drills --------------------------------------------------------------------------------------

    def _drill_families(self) -> Iterator[GaugeMetricFamily]:
        passed = GaugeMetricFamily(
            "cloudctl_drill_last_passed",
            "1 when the newest finished run of a drill plan passed.",
            labels=["plan"],
        )
        finished = GaugeMetricFamily(
            "cloudctl_drill_last_run_timestamp_seconds",
            "When the newest finished run of a drill plan finished (seconds since the epoch).",
            labels=["plan"],
        )
        per_tier = {
            "rpo": GaugeMetricFamily(
                "cloudctl_drill_last_rpo_seconds",
                "RPO measured by the newest finished run of a plan, per tier (data-loss window).",
                labels=["plan", "tier"],
            ),
            "rto": GaugeMetricFamily(
                "cloudctl_drill_last_rto_seconds",
                "RTO measured by the newest finished run of a plan, per tier (time to serve again).",
                labels=["plan", "tier"],
            ),
            "level": GaugeMetricFamily(
                "cloudctl_drill_last_level",
                "GB/T 20988 level achieved by the newest finished run of a plan, per tier (0: none).",
                labels=["plan", "tier"],
            ),
            "level_target": GaugeMetricFamily(
                "cloudctl_drill_last_level_target",
                "GB/T 20988 level the tier declares, as recorded by the newest finished run of a plan.",
                labels=["plan", "tier"],
            ),
            "writes_lost": GaugeMetricFamily(
                "cloudctl_drill_last_writes_lost",
                "Acknowledged writes the newest finished run of a plan lost, per tier.",
                labels=["plan", "tier"],
            ),
        }
        with self._ctx.read() as tx:
            runs = sorted(recovery.latest_drill_runs(tx), key=lambda run: run.plan)
        for run in runs:
            passed.add_metric([run.plan], 1.0 if run.passed else 0.0)
            finished.add_metric([run.plan], float(run.finished_at or run.started_at))
            for tier in _report_tiers(run.report):
                labels = [run.plan, str(tier["tier"])]
                for key, family in (
                    ("rpo_measured_s", per_tier["rpo"]),
                    ("rto_measured_s", per_tier["rto"]),
                    ("gbt20988_level_target", per_tier["level_target"]),
                    ("writes_lost", per_tier["writes_lost"]),
                ):
                    value = tier.get(key)
                    if _is_number(value):
                        family.add_metric(labels, float(value))
                level = tier.get("gbt20988_level_achieved")
                per_tier["level"].add_metric(labels, float(level) if _is_number(level) else 0.0)
        yield passed
        yield finished
        yield from per_tier.values()

    # --- audit ---------------------------------------------------------------------------------------

    def _audit_families(self) -> Iterator[GaugeMetricFamily]:
        check = self._audit_check()
        chain_ok = GaugeMetricFamily(
            "cloudctl_audit_chain_ok", "1 when the audit log's hash chain verifies, 0 when tampered with."
        )
        chain_ok.add_metric([], 1.0 if check.ok else 0.0)
        records = GaugeMetricFamily(
            "cloudctl_audit_records", "Audit records covered by the last verification."
        )
        records.add_metric([], float(check.records))
        verified_at = GaugeMetricFamily(
            "cloudctl_audit_verified_timestamp_seconds",
            "When the audit chain was last verified (seconds since the epoch, the context's clock).",
        )
        verified_at.add_metric([], check.checked_at)
        yield chain_ok
        yield records
        yield verified_at

    def _audit_check(self) -> _AuditCheck:
        state = audit_service.check(self._ctx, max_age_s=AUDIT_VERIFY_EVERY_S)
        return _AuditCheck(checked_at=state.checked_at, ok=state.ok, records=state.records)


def _lag_target_s(stream: replication.Stream, rpo_by_tier: dict[str, float]) -> float:
    return repl.lag_target_s(stream, rpo_target_s=rpo_by_tier.get(stream.tier, 0.0))


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _report_tiers(report: dict[str, Any]) -> Iterable[dict[str, Any]]:
    """The per-tier results of a drill report (``model.drill_report``), skipping malformed entries."""
    tiers = report.get("tiers")
    if not isinstance(tiers, list):
        return []
    return [tier for tier in tiers if isinstance(tier, dict) and isinstance(tier.get("tier"), str)]


def exposition(ctx: ctx_module.Context) -> bytes:
    """The Prometheus text exposition: process metrics plus the state of the estate."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StateCollector(ctx))
    registry.register(identity.AuthCollector(ctx))
    registry.register(audit_service.AuditCollector(ctx))
    return generate_latest(metrics.REGISTRY) + generate_latest(registry)
