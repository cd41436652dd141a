"""``status`` names the serve replicas that decide with other Cedar policies than the leader."""

from __future__ import annotations

import pytest

from cloudctl.services import context as ctx_module
from cloudctl.services import status
from tests.support import replicas

SHIPPED = "a" * 64
EDITED = "b" * 64
LOST_S = status.STALE_AFTER_S + 1


def marked(ctx: ctx_module.Context, rows: list[tuple[str, str, str | None, float]]) -> dict[str, bool]:
    """``rows``: (host, role, policies, seconds since its heartbeat), started in that order."""
    now = ctx.clock.now()
    replicas.record(
        ctx,
        (
            replicas.replica(
                host, role=role, started_at=now - 600 + index, heartbeat_at=now - silent_s, policies=policies
            )
            for index, (host, role, policies, silent_s) in enumerate(rows)
        ),
    )
    return {r.host: r.policies_differ for r in status.replicas(ctx)}


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        pytest.param(
            [
                ("mgmt-1", "leader", SHIPPED, 1.0),
                ("mgmt-2", "follower", SHIPPED, 1.0),
                ("mgmt-3", "follower", EDITED, 1.0),
                ("mgmt-4", "follower", None, 1.0),  # from before the field: cannot vouch for its policies
                ("mgmt-5", "stopped", EDITED, 1.0),  # decides nothing
                ("mgmt-6", "follower", EDITED, LOST_S),  # lost: decides nothing
            ],
            {
                "mgmt-1": False,
                "mgmt-2": False,
                "mgmt-3": True,
                "mgmt-4": True,
                "mgmt-5": False,
                "mgmt-6": False,
            },
            id="against-the-leader",
        ),
        pytest.param(
            [
                ("mgmt-1", "follower", SHIPPED, 1.0),
                ("mgmt-2", "follower", EDITED, 1.0),
                ("mgmt-3", "stopped", SHIPPED, 1.0),
            ],
            {"mgmt-1": True, "mgmt-2": False, "mgmt-3": False},
            id="no-leader-the-newest-running-is-the-reference",
        ),
        pytest.param(
            [("mgmt-1", "leader", SHIPPED, 1.0), ("mgmt-2", "follower", SHIPPED, 1.0)],
            {"mgmt-1": False, "mgmt-2": False},
            id="agreeing",
        ),
    ],
)
def test_a_running_replica_with_other_policies_than_the_reference_is_marked(
    ctx: ctx_module.Context, rows: list[tuple[str, str, str | None, float]], expected: dict[str, bool]
) -> None:
    assert marked(ctx, rows) == expected


def test_each_replica_shows_its_digest_and_role(ctx: ctx_module.Context) -> None:
    marked(ctx, [("mgmt-1", "leader", SHIPPED, 1.0), ("mgmt-2", "follower", EDITED, LOST_S)])

    shown = {r.host: (r.role, r.policies_sha256) for r in status.replicas(ctx)}

    assert shown == {"mgmt-1": ("leader", SHIPPED), "mgmt-2": ("lost", EDITED)}
