"""Retention windows per tier: which replication points the DR copy keeps, by age (every one for
a while, then one per slice of time), with the newest always kept; checked in the topology."""

from __future__ import annotations

import pytest

from cloudctl import errors
from cloudctl.model import topology as topo
from cloudctl.recovery import snapshots
from cloudctl.services import context as ctx_module
from cloudctl.services import replication_points
from tests.conftest import TOPOLOGY
from tests.unit.recovery.test_replication_points import ready_workload, ship, snapshot_names

HOUR = 3600


def windows(*pairs: tuple[int, int]) -> list[topo.RetentionWindow]:
    return [topo.RetentionWindow(every_s=every, until_s=until) for every, until in pairs]


def test_every_point_within_the_first_window_then_the_newest_of_each_slice() -> None:
    # A point every 300 s for ten hours; every one for an hour, then one per half hour until 4 h.
    points = [(n + 1, float(n * 300)) for n in range(121)]  # t = 0 .. 36000
    kept = snapshots.kept_by_windows(points, windows=windows((0, HOUR), (1800, 4 * HOUR)), now=36000.0)
    every = {n + 1 for n in range(121) if n * 300 >= 36000 - HOUR}  # 13 points, t = 32400 .. 36000
    per_slice = {t // 300 + 1 for t in (23100, 24900, 26700, 28500, 30300, 32100)}  # t in [21600, 32400)
    assert kept == every | per_slice
    assert len(kept) == 19


def test_the_newest_point_is_kept_however_old_and_an_unknown_time_only_while_newest() -> None:
    assert snapshots.kept_by_windows([(1, 0.0)], windows=windows((0, HOUR)), now=10 * HOUR) == {1}
    assert snapshots.kept_by_windows([(1, None), (2, 5.0)], windows=windows((0, HOUR)), now=10.0) == {2}
    assert snapshots.kept_by_windows([], windows=windows((0, HOUR)), now=0.0) == set()


def test_a_tier_with_windows_prunes_points_by_age_not_by_count(ctx: ctx_module.Context) -> None:
    tiers = [
        t.model_copy(update={"point_retention": windows((0, 900), (1800, 3600))}) if t.name == "silver" else t
        for t in ctx.topology.tiers
    ]
    ctx.__dict__["topology"] = ctx.topology.model_copy(update={"tiers": tiers})
    ctx.settings.replication_points_kept = 1  # ignored where the tier declares windows
    workload = ready_workload(ctx)
    for n in range(1, 16):  # a point every 301 s
        replication_points.take_points(ctx, ship(ctx, workload, f"case/{n}"))
    points = replication_points.list_points(ctx, workload_id=workload)
    seqs = [p.seq for p in points]
    # Points 14 and 15 are within 900 s of the last pass; of the older ones within 3600 s, the
    # newest of each epoch-aligned half hour: 6, 12 and 13; points 1-3 are older than 3600 s.
    assert seqs == [6, 12, 13, 14, 15]
    assert snapshot_names(ctx) == sorted(f"rp-{workload}-0-{seq}" for seq in seqs)
    assert {p.state for p in points} == {"ready"}


def test_windows_that_do_not_grow_are_refused_naming_the_path() -> None:
    text = TOPOLOGY.read_text(encoding="utf-8").replace("until_s: 604800", "until_s: 3600")
    with pytest.raises(errors.TopologyError) as refused:
        topo.parse(text)
    assert refused.value.field == "tiers[2].point_retention[1].until_s"


def test_the_shipped_topology_keeps_silver_points_a_week() -> None:
    silver = topo.parse(TOPOLOGY.read_text(encoding="utf-8")).tier("silver")
    assert [(w.every_s, w.until_s) for w in silver.point_retention] == [(0, 86400), (3600, 7 * 86400)]
