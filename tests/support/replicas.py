"""Heartbeat rows of ``cloudctl serve`` replicas, as a replica would write them, for status tests."""

from __future__ import annotations

from collections.abc import Iterable

from cloudctl.services import context as ctx_module
from cloudctl.store import leases


def replica(
    host: str, *, role: str, started_at: float, heartbeat_at: float, policies: str | None
) -> leases.ReplicaRecord:
    """Replica ``<host>:1:abcdef`` answering on ``http://<host>:8080``; a leader holds epoch 2."""
    return leases.ReplicaRecord(
        id=f"{host}:1:abcdef",
        host=host,
        pid=1,
        api_url=f"http://{host}:8080",
        role=role,
        epoch=2 if role == "leader" else None,
        started_at=started_at,
        heartbeat_at=heartbeat_at,
        policies_sha256=policies,
    )


def record(ctx: ctx_module.Context, rows: Iterable[leases.ReplicaRecord]) -> None:
    with ctx.store.transaction() as tx:
        for row in rows:
            leases.upsert_replica(tx, row)
