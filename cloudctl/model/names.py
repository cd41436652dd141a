"""The names cloudctl gives a workload's resources in a backend, and how to tell them.

A workload ``wl-…`` owns, in the department's project of each center it is placed in:

- ``<workload>-<index>``: a server, volume, bucket or namespace of its order
  (``reconcile.provisioning``);
- ``replica-<logical name>``: the replica of a protected volume in a copy center
  (``recovery.snapshots``), the logical name being one of the names above;
- ``rp-<logical name>-<seq>``: a replication point's snapshot of that replica, and the volume a
  failover makes from it (``recovery.materialise``);
- ``rs-<logical name>-<seq>``: the volume a restore makes from that point's snapshot
  (``recovery.restore``).

Every name starts, after its prefix, with ``<workload>-``; workload ids are unique and never
reused, so ``owned_by`` finds what a workload left behind without reading the store.

Pure: no I/O.
"""

from __future__ import annotations

REPLICA_PREFIX = "replica-"
POINT_PREFIX = "rp-"
RESTORE_PREFIX = "rs-"


def resource_name(workload_id: str, index: int) -> str:
    """The name of the ``index``-th resource of a workload's order."""
    return f"{workload_id}-{index}"


def replica_name(logical_name: str) -> str:
    """The name of a protected volume's replica in a copy center."""
    return f"{REPLICA_PREFIX}{logical_name}"


def snapshot_name(logical_name: str, seq: int) -> str:
    """The name of a volume's replication point at ``seq`` (the same on every retry)."""
    return f"{POINT_PREFIX}{logical_name}-{seq}"


def restored_name(logical_name: str, seq: int) -> str:
    """The name of the volume a restore makes from a volume's point at ``seq``."""
    return f"{RESTORE_PREFIX}{logical_name}-{seq}"


def owned_prefixes(workload_id: str) -> tuple[str, ...]:
    """What the name of each of the workload's backend resources starts with (by the rules above)."""
    return tuple(f"{prefix}{workload_id}-" for prefix in ("", REPLICA_PREFIX, POINT_PREFIX, RESTORE_PREFIX))


def owned_by(name: str, workload_id: str) -> bool:
    """Whether a backend resource called ``name`` is one of the workload's (by the rules above)."""
    return name.startswith(owned_prefixes(workload_id))
