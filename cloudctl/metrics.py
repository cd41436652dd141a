"""Process-wide Prometheus metrics of the control plane itself (prometheus-client).

Invariants: one registry (``REGISTRY``) for everything cloudctl exports; label
sets stay bounded (reconciler names, routes as templates, outcomes), never ids
of individual requests or workloads. These series count what this process did, so
they start at zero with the process; state-derived series (centers, quotas,
requests, replication, drills, audit) are produced at scrape time from the store
by ``services.observability`` and are the same whichever process is scraped.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, disable_created_metrics

import cloudctl

# ``_created`` companions are exposed as gauges in the text format (one per counter child):
# they are not what their family claims to be, and no dashboard reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

REGISTRY = CollectorRegistry(auto_describe=True)


BUILD_INFO = Info("cloudctl_build", "The cloudctl release this process runs.", registry=REGISTRY)
BUILD_INFO.info({"version": cloudctl.__version__})

RECONCILE_TOTAL = Counter(
    "cloudctl_reconcile_total",
    "Reconcile passes, by reconciler and outcome (done or requeue).",
    ["reconciler", "outcome"],
    registry=REGISTRY,
)
RECONCILE_ERRORS = Counter(
    "cloudctl_reconcile_errors_total",
    "Reconcile passes that raised an unexpected error, by reconciler.",
    ["reconciler"],
    registry=REGISTRY,
)
RECONCILE_DURATION = Histogram(
    "cloudctl_reconcile_duration_seconds",
    "Wall time of one reconcile pass, by reconciler.",
    ["reconciler"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
API_REQUESTS = Counter(
    "cloudctl_api_requests_total",
    "HTTP API requests, by method, route template and status code.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
API_LATENCY = Histogram(
    "cloudctl_api_request_duration_seconds",
    "HTTP API request latency, by method and route template.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=REGISTRY,
)
AUTH_FAILURES = Counter(
    "cloudctl_auth_failures_total",
    "Failed authentications, by reason (missing or malformed bearer token, unknown token id, "
    "wrong secret, revoked token, expired token, locked out).",
    ["reason"],
    registry=REGISTRY,
)
AUTH_LOCKOUTS = Counter(
    "cloudctl_auth_lockouts_total",
    "Lockouts after repeated failed authentications, by kind: a token (its secret guessed, or "
    "revoked or expired and still used) or a source (unknown or malformed tokens).",
    ["kind"],
    registry=REGISTRY,
)
API_REFUSED_EARLY = Counter(
    "cloudctl_api_refused_total",
    "Requests refused by the API's limits before any route ran, by reason "
    "(body-too-large, headers-too-large, too-deep, nul-character, lone-surrogate).",
    ["reason"],
    registry=REGISTRY,
)
REPLICA_MISMATCHES = Counter(
    "cloudctl_replica_mismatches_total",
    "Replica objects a scrub found damaged, missing or holding other bytes (each repaired), by the "
    "center holding the replica and the tier.",
    ["center", "tier"],
    registry=REGISTRY,
)
PROVISIONING_FINISHED = Counter(
    "cloudctl_provisioning_finished_total",
    "Objects the provisioning reconciler finished, by kind (request, workload) and outcome "
    "(ready, deleted, failed, done); its rate is the provisioning rate.",
    ["kind", "outcome"],
    registry=REGISTRY,
)
FAILOVER_ADDRESSES = Counter(
    "cloudctl_failover_addresses_total",
    "Server addresses a failover or failback carried to another center (its promote step done), by "
    "the center left, the center reached and outcome (kept on a stretched network, or remapped).",
    ["from_center", "to_center", "outcome"],
    registry=REGISTRY,
)
RESTORES = Counter(
    "cloudctl_restores_total",
    "Point-in-time restores of a workload, by the center restored into and outcome (success, "
    "failed: a backend refused part of it; missing: some data at the point was no longer kept).",
    ["center", "outcome"],
    registry=REGISTRY,
)
RESTORE_DATA_LOST = Histogram(
    "cloudctl_restore_data_lost_seconds",
    "Seconds of writes a restore gave up: between the recovery point's consistency time and the "
    "time asked for, by the center restored into.",
    ["center"],
    buckets=(0, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 7 * 24 * 3600),
    registry=REGISTRY,
)
HOUSEKEEPING_RUNS = Counter(
    "cloudctl_housekeeping_runs_total",
    "Runs of the leader's periodic passes, by pass and outcome (done or error).",
    ["name", "outcome"],
    registry=REGISTRY,
)
HOUSEKEEPING_DURATION = Histogram(
    "cloudctl_housekeeping_duration_seconds",
    "Wall time of one run of a periodic pass, by pass.",
    ["name"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300),
    registry=REGISTRY,
)
LEADER = Gauge(
    "cloudctl_leader",
    "1 while this serve process holds the leader lease (runs the reconcilers), else 0.",
    registry=REGISTRY,
)
LEADER_EPOCH = Gauge(
    "cloudctl_leader_epoch",
    "The epoch of the leader lease this process holds, 0 when it holds none.",
    registry=REGISTRY,
)
