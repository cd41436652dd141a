"""Tables of the durable store (SQLAlchemy Core), the single source of the Alembic migrations.

Invariants the schema itself keeps:
- ``quota_counters`` holds one row per org node × center key × resource, where the
  center key ``*`` is the sum over all centers. Each row counts the whole subtree
  of its node, so checking an ancestor's limit reads one row, and a reservation
  locks exactly the rows of its ancestor chain.
- ``resource_version`` on mutable objects increases on every change (optimistic
  concurrency for callers that read, decide, then write).
- Nothing is deleted from ``reservations``: a released reservation keeps its row.
- ``usage_passes`` has one row per hour whose usage is recorded; that row and the hour's
  ``usage_hours`` and ``capacity_samples`` rows are written in one transaction, so an hour
  is recorded wholly or not at all, and once.
- A ``data_grants`` row refers to its ``data_items`` row; neither is ever deleted (a grant
  ends ``expired`` or ``revoked`` and keeps its row, the audit's companion).
"""

from __future__ import annotations

import sqlalchemy as sa

from cloudctl.model import states

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

settings = sa.Table(
    "settings",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

centers = sa.Table(
    "centers",
    metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("display_name", sa.String(200), nullable=False),
    sa.Column("site", sa.String(40), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("state", sa.String(20), nullable=False, server_default=states.CenterHealth.UP),
    sa.Column("updated_at", sa.Float, nullable=False),
)

center_capacity = sa.Table(
    "center_capacity",
    metadata,
    sa.Column("center", sa.String(40), sa.ForeignKey("centers.name"), primary_key=True),
    sa.Column("resource", sa.String(20), primary_key=True),
    sa.Column("total", sa.BigInteger, nullable=False),
)

links = sa.Table(
    "links",
    metadata,
    sa.Column("a", sa.String(40), sa.ForeignKey("centers.name"), primary_key=True),
    sa.Column("b", sa.String(40), sa.ForeignKey("centers.name"), primary_key=True),
    sa.Column("mode", sa.String(20), nullable=False),
    sa.Column("rtt_ms", sa.Float, nullable=False),
    sa.Column("bandwidth_mbps", sa.Integer, nullable=False),
)

org_nodes = sa.Table(
    "org_nodes",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("parent_id", sa.String(40), sa.ForeignKey("org_nodes.id"), nullable=True, index=True),
    sa.Column("display_name", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("depth", sa.Integer, nullable=False),
    sa.Column("path", sa.String(2000), nullable=False, unique=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("resource_version", sa.Integer, nullable=False, server_default="1"),
)

quota_limits = sa.Table(
    "quota_limits",
    metadata,
    sa.Column("node_id", sa.String(40), sa.ForeignKey("org_nodes.id"), primary_key=True),
    sa.Column("center", sa.String(40), primary_key=True),
    sa.Column("resource", sa.String(20), primary_key=True),
    sa.Column("limit_value", sa.BigInteger, nullable=False),
    sa.CheckConstraint("limit_value >= 0", name="limit_not_negative"),
)

quota_counters = sa.Table(
    "quota_counters",
    metadata,
    sa.Column("node_id", sa.String(40), sa.ForeignKey("org_nodes.id"), primary_key=True),
    sa.Column("center", sa.String(40), primary_key=True),
    sa.Column("resource", sa.String(20), primary_key=True),
    sa.Column("used", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("reserved", sa.BigInteger, nullable=False, server_default="0"),
    sa.CheckConstraint("used >= 0 AND reserved >= 0", name="counts_not_negative"),
)

reservations = sa.Table(
    "reservations",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    # No foreign key: a reservation's record outlives the org node it was made for.
    sa.Column("node_id", sa.String(40), nullable=False, index=True),
    sa.Column("center", sa.String(40), nullable=False),
    sa.Column("amounts", sa.JSON, nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("purpose", sa.String(200), nullable=False, server_default=""),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

sim_objects = sa.Table(
    "sim_objects",
    metadata,
    sa.Column("center", sa.String(40), primary_key=True),
    sa.Column("kind", sa.String(40), primary_key=True),
    sa.Column("key", sa.String(400), primary_key=True),
    sa.Column("doc", sa.JSON, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    # The document's string ``name`` field, kept beside it so that a lookup by name is an index
    # probe, not a comparison of every document of the kind (``find_by``).
    sa.Column("name", sa.Text, nullable=True),
    # The fields a document is looked up by as a member of another (a volume by the server it is
    # attached to, a snapshot by its volume): a server's or a volume's deletion then reads its
    # members, not every volume or snapshot of the center (``find_all_by``).
    sa.Column("attached_to", sa.Text, nullable=True),
    sa.Column("volume_id", sa.Text, nullable=True),
    sa.Index("ix_sim_objects_name", "center", "kind", "name"),
    sa.Index("ix_sim_objects_attached_to", "center", "kind", "attached_to"),
    sa.Index("ix_sim_objects_volume_id", "center", "kind", "volume_id"),
)

requests = sa.Table(
    "requests",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("department", sa.String(40), nullable=False, index=True),
    sa.Column("offering", sa.String(40), nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("tier", sa.String(40), nullable=False),
    sa.Column("data_class", sa.String(20), nullable=False),
    sa.Column("preferred_center", sa.String(40), nullable=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("state", sa.String(30), nullable=False, index=True),
    sa.Column("needs_approval", sa.Boolean, nullable=False),
    sa.Column("approval_policy_ids", sa.JSON, nullable=False),
    sa.Column("reasons", sa.JSON, nullable=False),
    sa.Column("steps", sa.JSON, nullable=False),
    sa.Column("workload_id", sa.String(40), nullable=True),
    sa.Column("created_by", sa.String(100), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("resource_version", sa.Integer, nullable=False, server_default="1"),
)

workloads = sa.Table(
    "workloads",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("request_id", sa.String(40), nullable=False, unique=True),
    sa.Column("department", sa.String(40), nullable=False, index=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("offering", sa.String(40), nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("tier", sa.String(40), nullable=False),
    sa.Column("data_class", sa.String(20), nullable=False),
    sa.Column("state", sa.String(30), nullable=False, index=True),
    sa.Column("reasons", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("resource_version", sa.Integer, nullable=False, server_default="1"),
)

placements = sa.Table(
    "placements",
    metadata,
    sa.Column("workload_id", sa.String(40), sa.ForeignKey("workloads.id"), primary_key=True),
    sa.Column("center", sa.String(40), primary_key=True),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("reservation_id", sa.String(40), nullable=False),
    sa.Column("resources", sa.JSON, nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("department", sa.String(40), nullable=False),
    sa.Column("salt", sa.String(64), nullable=False),
    sa.Column("secret_hash", sa.String(128), nullable=False),
    sa.Column("created_by", sa.String(100), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=True),
    sa.Column("revoked_at", sa.Float, nullable=True),
)

audit_records = sa.Table(
    "audit_records",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("department", sa.String(40), nullable=False),
    sa.Column("action", sa.String(60), nullable=False, index=True),
    sa.Column("target_type", sa.String(40), nullable=False),
    sa.Column("target_id", sa.String(100), nullable=False),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("detail", sa.JSON, nullable=False),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("source", sa.String(64), nullable=False, server_default=""),
    sa.Column("key_id", sa.String(40), nullable=False, server_default=""),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("principal", sa.String(100), primary_key=True),
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("target_id", sa.String(40), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

replication_streams = sa.Table(
    "replication_streams",
    metadata,
    sa.Column("id", sa.String(120), primary_key=True),
    sa.Column("workload_id", sa.String(40), nullable=False, index=True),
    sa.Column("department", sa.String(40), nullable=False, index=True),
    sa.Column("tier", sa.String(40), nullable=False),
    sa.Column("source", sa.String(40), nullable=False),
    sa.Column("target", sa.String(40), nullable=False),
    sa.Column("mode", sa.String(10), nullable=False),
    sa.Column("interval_s", sa.Float, nullable=True),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("last_seq", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("last_consistent_at", sa.Float, nullable=True),
    sa.Column("bytes_copied", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("objects_copied", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("objects_resent", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("last_pass_at", sa.Float, nullable=True),
    sa.Column("last_error", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

changes = sa.Table(
    "changes",
    metadata,
    sa.Column("workload_id", sa.String(40), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("key", sa.String(400), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("center", sa.String(40), nullable=False),
)

recovery_runs = sa.Table(
    "recovery_runs",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("mode", sa.String(20), nullable=False),
    sa.Column("from_center", sa.String(40), nullable=False),
    sa.Column("to_center", sa.String(40), nullable=True),
    sa.Column("scope", sa.JSON, nullable=False),
    sa.Column("state", sa.String(20), nullable=False, index=True),
    sa.Column("plan", sa.JSON, nullable=False),
    sa.Column("progress", sa.JSON, nullable=False),
    sa.Column("result", sa.JSON, nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("started_by", sa.String(200), nullable=False, server_default=""),
    sa.Column("owner", sa.String(200), nullable=False, server_default=""),
    sa.Column("heartbeat_at", sa.Float, nullable=True),
)

placement_homes = sa.Table(
    "placement_homes",
    metadata,
    sa.Column("workload_id", sa.String(40), primary_key=True),
    sa.Column("center", sa.String(40), primary_key=True),
    sa.Column("role", sa.String(20), nullable=False),
)

drill_runs = sa.Table(
    "drill_runs",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("plan", sa.String(100), nullable=False, index=True),
    sa.Column("scenario", sa.String(40), nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("passed", sa.Boolean, nullable=True),
    sa.Column("report", sa.JSON, nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float, nullable=True),
)

recovery_steps = sa.Table(
    "recovery_steps",
    metadata,
    sa.Column("run_id", sa.String(40), primary_key=True),
    sa.Column("step_id", sa.String(120), primary_key=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("outcome", sa.JSON, nullable=False),
)

replication_points = sa.Table(
    "replication_points",
    metadata,
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("workload_id", sa.String(40), nullable=False, index=True),
    sa.Column("department", sa.String(40), nullable=False, index=True),
    sa.Column("center", sa.String(40), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False, server_default="volume"),
    sa.Column("volume_id", sa.String(64), nullable=False),
    sa.Column("volume_name", sa.String(100), nullable=False),
    sa.Column("snapshot_name", sa.String(160), nullable=False),
    sa.Column("snapshot_id", sa.String(64), nullable=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("consistent_at", sa.Float, nullable=True),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("last_error", sa.Text, nullable=False, server_default=""),
    sa.Column("taken_at", sa.Float, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

usage_hours = sa.Table(
    "usage_hours",
    metadata,
    sa.Column("hour", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("node_id", sa.String(40), primary_key=True),
    sa.Column("center", sa.String(40), primary_key=True),
    sa.Column("tier", sa.String(40), primary_key=True),
    sa.Column("resource", sa.String(20), primary_key=True),
    sa.Column("allocated", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("consumed", sa.BigInteger, nullable=True),
    sa.CheckConstraint("allocated >= 0 AND (consumed IS NULL OR consumed >= 0)", name="usage_not_negative"),
)

usage_passes = sa.Table(
    "usage_passes",
    metadata,
    sa.Column("hour", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("recorded_at", sa.Float, nullable=False),
    sa.Column("consumed_observed", sa.Boolean, nullable=False),
    sa.Column("lines", sa.Integer, nullable=False),
)

capacity_samples = sa.Table(
    "capacity_samples",
    metadata,
    sa.Column("hour", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("center", sa.String(40), primary_key=True),
    sa.Column("resource", sa.String(20), primary_key=True),
    sa.Column("total", sa.BigInteger, nullable=False),
    sa.Column("allocated", sa.BigInteger, nullable=False),
    sa.Column("used", sa.BigInteger, nullable=True),
)

leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("epoch", sa.BigInteger, nullable=False),
    sa.Column("acquired_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)

replicas = sa.Table(
    "replicas",
    metadata,
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("host", sa.String(200), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("api_url", sa.String(300), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("epoch", sa.BigInteger, nullable=True),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("heartbeat_at", sa.Float, nullable=False),
    sa.Column("policies_sha256", sa.String(64), nullable=True),
)

data_items = sa.Table(
    "data_items",
    metadata,
    sa.Column("id", sa.String(60), primary_key=True),
    sa.Column("owner", sa.String(40), nullable=False, index=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("workload_id", sa.String(40), nullable=True),
    sa.Column("prefix", sa.String(512), nullable=True),
    sa.Column("dataset", sa.String(200), nullable=True),
    sa.Column("data_class", sa.String(20), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("published_by", sa.String(100), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

data_grants = sa.Table(
    "data_grants",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("item_id", sa.String(60), sa.ForeignKey("data_items.id"), nullable=False, index=True),
    sa.Column("provider", sa.String(40), nullable=False, index=True),
    sa.Column("consumer", sa.String(40), nullable=False, index=True),
    sa.Column("data_class", sa.String(20), nullable=False),
    sa.Column("consumer_data_class", sa.String(20), nullable=False),
    sa.Column("purpose", sa.String(60), nullable=False),
    sa.Column("state", sa.String(20), nullable=False, index=True),
    sa.Column("needs_bureau", sa.Boolean, nullable=False),
    sa.Column("provider_approved_by", sa.String(100), nullable=True),
    sa.Column("bureau_approved_by", sa.String(100), nullable=True),
    sa.Column("requested_by", sa.String(100), nullable=False),
    sa.Column("ended_by", sa.String(100), nullable=True),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("enforced_in", sa.JSON, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False, index=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)
