"""A drill on the loopback OpenStack: its figures are what the real cloud took, read back from
Nova through openstacksdk, not what cloudctl recorded of itself.

The drill runs on its own clock (``simulated_time``, the plans' default), as CI runs it; the
servers its recovery starts boot in a real Nova, whose own timestamps bound the RTO from below.
A drill killed in the middle of its failover is resumed by ``cloudctl drill resume``: the run's
steps, read back with SQL, never go back in time, and Nova made each server once.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import yaml

from cloudctl.model import drills
from cloudctl.services import context as ctx_module
from cloudctl.services import drills as drill_service
from tests.conftest import POLICIES, ROOT
from tests.e2e.test_kill_resume import finished, killed
from tests.e2e.test_serve_crash import poll
from tests.integration.openstack import stack
from tests.integration.openstack.test_recovery_on_openstack import assert_nothing_left
from tests.support import operators

OPENSTACK_TOPOLOGY = ROOT / "infra" / "topology.openstack.yaml"
LOSE_QD_A_GOLD = """
name: lose-qd-a-on-openstack
description: Lose qd-a; the gold canary's cold standby in qd-b boots in Nova.
scenario: {kind: lose-local-center, center: qd-a}
scope: {departments: [hrss], tiers: [gold]}
canary: {writes_per_s: 0.5, warmup_s: 60, object_bytes: 256, workloads_per_tier: 1}
simulated_time: true
"""


def _instant(stamp: str) -> float:
    return datetime.datetime.fromisoformat(stamp).replace(tzinfo=datetime.UTC).timestamp()


def test_a_drills_rto_on_openstack_counts_the_time_nova_took_to_boot_the_recovered_server(
    openstack_ctx: ctx_module.Context, openstack_clouds: Path
) -> None:
    report = drill_service.run_drill(openstack_ctx, plan=drills.parse(LOSE_QD_A_GOLD))
    (canary,) = report.workloads
    assert (canary.recovered_in, canary.writes_lost) == ("qd-b", 0)

    with contextlib.closing(stack.sdk_connection(cloud="qd-b", clouds_yaml=openstack_clouds)) as qd_b:
        # The drill deleted its canary: Nova still shows the server it booted for the recovery.
        (server,) = qd_b.compute.servers(all_projects=True, deleted=True, name=f"^{canary.workload_id}-0$")
        boot_s = _instant(server.launched_at) - _instant(server.created_at)
    assert boot_s >= 1  # the rig's fake driver takes seconds to bring a server up
    assert canary.rto_measured_s is not None and canary.rto_measured_s >= boot_s
    assert_nothing_left(openstack_clouds, [canary.workload_id])


def test_a_drill_killed_in_its_failover_on_openstack_resumes_without_going_back_in_time(
    openstack_ctx: ctx_module.Context, openstack_clouds: Path, tmp_path: Path
) -> None:
    plan = yaml.safe_load(LOSE_QD_A_GOLD)
    plan.update(
        name="killed-in-its-failover",
        scenario={**plan["scenario"], "at_s": 130},  # after the DR pass that ends the warm-up
        scope={"departments": ["hrss"], "tiers": ["silver"]},  # recovered in dz-dr, one after another
        canary={**plan["canary"], "warmup_s": 300, "workloads_per_tier": 2},
    )
    plan_file = tmp_path / "killed-in-its-failover.yaml"
    plan_file.write_text(yaml.safe_dump(plan), encoding="utf-8")
    environment = {
        **os.environ,
        "CLOUDCTL_HOME": str(tmp_path),
        "CLOUDCTL_TOPOLOGY": str(OPENSTACK_TOPOLOGY),
        "CLOUDCTL_POLICIES": str(POLICIES),
        "CLOUDCTL_CLOUDS_YAML": str(openstack_clouds),
    }

    def cloudctl(*argv: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "cloudctl", *operators.break_glass(list(argv)), *argv],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    def sql(query: str) -> list[tuple[object, ...]]:
        with contextlib.closing(sqlite3.connect(tmp_path / "state.db")) as database:
            return database.execute(query).fetchall()

    first = cloudctl("drill", "run", str(plan_file))
    poll(lambda: bool(sql("SELECT 1 FROM recovery_steps")), what="the drill's failover to finish a step")
    killed(first)
    steps_at_kill = len(sql("SELECT 1 FROM recovery_steps"))
    assert 1 <= steps_at_kill < 6  # killed with a canary still to recover

    ((drill_id,),) = sql("SELECT id FROM drill_runs")
    code, out = finished(cloudctl("drill", "resume", str(drill_id)))

    assert code == 0, out
    ats = [at for (at,) in sql("SELECT at FROM recovery_steps ORDER BY step_id")]
    assert len(ats) == 6 and ats == sorted(ats)  # what the resumed run did came after the rest
    ((started_at, report_json),) = sql("SELECT started_at, report FROM drill_runs")
    report = json.loads(str(report_json))
    (fault,) = report["faults"]
    served_at = [
        float(outcome["served_at"])
        for outcome in (json.loads(str(raw)) for (raw,) in sql("SELECT outcome FROM recovery_steps"))
        if "served_at" in outcome
    ]
    assert max(served_at) <= ats[-1]
    # The report's RTO is the serving the run recorded, after the kill as before it: exactly (to the
    # report's rounding), whatever the machine's speed.
    injected_at = float(str(started_at)) + fault["injected_offset_s"]
    last_served_s = max(w["rto_measured_s"] for w in report["workloads"])
    assert abs(last_served_s - (max(served_at) - injected_at)) <= 0.002
    canaries = [w["workload_id"] for w in report["workloads"]]
    with contextlib.closing(stack.sdk_connection(cloud="dz-dr", clouds_yaml=openstack_clouds)) as dr:
        made = collections.Counter(
            server.name for server in dr.compute.servers(all_projects=True, deleted=True)
        )
    assert [made[f"{workload_id}-0"] for workload_id in canaries] == [1, 1]  # none made twice
    assert_nothing_left(openstack_clouds, canaries)
