"""``status`` names the serve replicas that decide with other Cedar policies than the leader."""

from __future__ import annotations

from cloudctl.services import context as ctx_module
from cloudctl.services import status
from cloudctl.store import leases

SHIPPED = "a" * 64
EDITED = "b" * 64


def replica(
    now: float, name: str, *, role: str, started: float, policies: str | None, silent_s: float = 1.0
) -> leases.ReplicaRecord:
    return leases.ReplicaRecord(
        id=f"{name}:1:abcdef",
        host=name,
        pid=1,
        api_url=f"http://{name}:8080",
        role=role,
        epoch=4 if role == "leader" else None,
        started_at=now - 600 + started,
        heartbeat_at=now - silent_s,
        policies_sha256=policies,
    )


def marked(ctx: ctx_module.Context, *rows: leases.ReplicaRecord) -> dict[str, bool]:
    with ctx.store.transaction() as tx:
        for row in rows:
            leases.upsert_replica(tx, row)
    return {r.host: r.policies_differ for r in status.replicas(ctx)}


def test_a_follower_with_edited_policies_is_marked_against_the_leader(ctx: ctx_module.Context) -> None:
    now = ctx.clock.now()
    lost_s = status.STALE_AFTER_S + 1

    result = marked(
        ctx,
        replica(now, "mgmt-1", role="leader", started=0, policies=SHIPPED),
        replica(now, "mgmt-2", role="follower", started=1, policies=SHIPPED),
        replica(now, "mgmt-3", role="follower", started=2, policies=EDITED),
        replica(now, "mgmt-4", role="follower", started=3, policies=None),  # from before the field
        replica(now, "mgmt-5", role="stopped", started=4, policies=EDITED),
        replica(now, "mgmt-6", role="follower", started=5, policies=EDITED, silent_s=lost_s),
    )

    assert result == {
        "mgmt-1": False,
        "mgmt-2": False,
        "mgmt-3": True,
        "mgmt-4": True,
        "mgmt-5": False,  # stopped: decides nothing
        "mgmt-6": False,  # lost: decides nothing
    }
    shown = {r.host: (r.role, r.policies_sha256) for r in status.replicas(ctx)}
    assert shown["mgmt-3"] == ("follower", EDITED)
    assert shown["mgmt-6"] == ("lost", EDITED)


def test_with_no_leader_the_newest_running_replica_is_the_reference(ctx: ctx_module.Context) -> None:
    now = ctx.clock.now()

    result = marked(
        ctx,
        replica(now, "mgmt-1", role="follower", started=0, policies=SHIPPED),
        replica(now, "mgmt-2", role="follower", started=1, policies=EDITED),
        replica(now, "mgmt-3", role="stopped", started=2, policies=SHIPPED),
    )

    assert result == {"mgmt-1": True, "mgmt-2": False, "mgmt-3": False}


def test_replicas_that_agree_are_not_marked(ctx: ctx_module.Context) -> None:
    now = ctx.clock.now()

    result = marked(
        ctx,
        replica(now, "mgmt-1", role="leader", started=0, policies=SHIPPED),
        replica(now, "mgmt-2", role="follower", started=1, policies=SHIPPED),
    )

    assert result == {"mgmt-1": False, "mgmt-2": False}
