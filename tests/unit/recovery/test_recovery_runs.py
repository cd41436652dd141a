"""Recovery runs can be found, show who started them, tell an interrupted run from a running one,
take hooks with failure policies, and say which workloads are not protected."""

from __future__ import annotations

import http.server
import json
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from cloudctl import errors
from cloudctl.model import recovery as model
from cloudctl.recovery import failover
from cloudctl.services import audit, faults, identity, observability, provisioning, recovery
from cloudctl.services import context as ctx_module
from cloudctl.services import requests as requests_service
from cloudctl.store import schema

HRSS = identity.Principal(
    id="t:hrss", role="dept-admin", department="hrss", department_path=("qingdao", "hrss")
)
OPS = identity.local_operator("sysadmin")
AUDITOR = identity.local_operator("auditor")


def ready_workload(ctx: ctx_module.Context, tier: str, home: str = "qd-a") -> str:
    body = requests_service.RequestCreate(offering="vm.small", tier=tier, preferred_center=home)
    request, _ = requests_service.submit(ctx, principal=HRSS, body=body)
    assert provisioning.reconcile(ctx, kind="request", object_id=request.id).done
    return request.workload_id or ""


def run_outcomes(ctx: ctx_module.Context, run_id: str) -> list[str]:
    return [
        r.outcome
        for r in audit.list_records(ctx, principal=AUDITOR, limit=1000)
        if r.detail.get("run") == run_id
    ]


def hooks(*items: dict[str, Any]) -> tuple[model.Hook, ...]:
    return model.hooks_from_data({"hooks": list(items)})


def python(code: str) -> dict[str, Any]:
    return {"argv": [sys.executable, "-c", code]}


# --- finding runs ------------------------------------------------------------------------------------


def test_runs_are_listed_newest_first_with_state_steps_and_who_started_them(ctx: ctx_module.Context) -> None:
    ready_workload(ctx, "gold")
    first = recovery.plan_failover(ctx, principal=OPS, from_center="qd-a", planned=True)
    recovery.execute(ctx, first.run_id or "")
    back = recovery.plan_failback(ctx, principal=OPS, to_center="qd-a")
    runs = recovery.list_runs(ctx, principal=OPS)
    assert [(r.id, r.kind) for r in runs] == [(back.run_id, "failback"), (first.run_id, "failover")]
    assert (runs[1].state, runs[1].steps_done, runs[1].steps_total) == ("done", 4, 4)
    assert runs[0].started_by == OPS.id == runs[1].started_by
    assert runs[1].resume is None
    shown = recovery.get_run(ctx, back.run_id or "", principal=OPS)
    assert [s.action for s in shown.steps][:2] == ["resync", "final-sync"]
    assert shown.next_step == shown.steps[0].id
    assert [r.id for r in recovery.list_runs(ctx, principal=OPS, kind="failover")] == [first.run_id]
    with pytest.raises(errors.InvalidInput) as caught:
        recovery.list_runs(ctx, principal=OPS, state="sleeping")
    assert caught.value.field == "state"
    with pytest.raises(errors.PolicyDenied):
        recovery.list_runs(ctx, principal=HRSS)


def test_a_run_whose_process_died_is_shown_interrupted_audited_so_and_resumable(
    ctx: ctx_module.Context, store: Any
) -> None:
    ready_workload(ctx, "gold")
    plan = recovery.plan_failover(ctx, principal=OPS, from_center="qd-a", planned=True)
    # The process that started it is gone (as after SIGKILL): its owner names no live process.
    with store.transaction() as tx:
        tx.execute(
            schema.recovery_runs.update()
            .where(schema.recovery_runs.c.id == plan.run_id)
            .values(owner=f"{recovery.owner().rpartition(':')[0]}:{2**22 + 7}")
        )
    (listed,) = recovery.list_runs(ctx, principal=OPS)
    assert (listed.state, listed.resume) == ("interrupted", f"cloudctl failover resume {plan.run_id}")
    assert "is gone" in listed.error
    with store.read() as tx:  # the store says so too, not only the listing
        raw = tx.execute(
            sa.select(schema.recovery_runs.c.state).where(schema.recovery_runs.c.id == plan.run_id)
        )
        assert raw.scalar_one() == "interrupted"
    assert run_outcomes(ctx, plan.run_id or "") == ["started", "interrupted"]
    with pytest.raises(errors.Conflict):
        recovery.plan_failover(ctx, principal=OPS, from_center="qd-a", planned=True)
    done = recovery.resume(ctx, plan.run_id or "", principal=OPS)
    assert (done.state, done.steps_done) == ("done", 4)
    assert run_outcomes(ctx, plan.run_id or "") == ["started", "interrupted", "success"]


def test_a_resume_claims_the_run_before_its_steps_go_on_and_a_second_resume_is_refused(
    ctx: ctx_module.Context, store: Any
) -> None:
    ready_workload(ctx, "gold")
    plan = recovery.plan_failover(ctx, principal=OPS, from_center="qd-a", planned=True)
    with store.transaction() as tx:  # its process is gone
        tx.execute(
            schema.recovery_runs.update()
            .where(schema.recovery_runs.c.id == plan.run_id)
            .values(owner=f"{recovery.owner().rpartition(':')[0]}:{2**22 + 7}")
        )
    claimed = recovery.claim_for_resume(ctx, run_id=plan.run_id or "", principal=OPS)
    assert (claimed.state, claimed.steps_done) == ("running", 0)  # seen running before any step
    with pytest.raises(errors.Conflict, match="still running"):
        recovery.claim_for_resume(ctx, run_id=plan.run_id or "", principal=OPS)
    done = recovery.execute(ctx, plan.run_id or "", principal=OPS)
    assert (done.state, done.steps_done) == ("done", 4)


def test_a_run_on_another_host_is_interrupted_only_after_the_lease(
    ctx: ctx_module.Context, store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ready_workload(ctx, "gold")
    plan = recovery.plan_failover(ctx, principal=OPS, from_center="qd-a", planned=True)
    now = recovery.WALL_CLOCK.now()
    with store.transaction() as tx:
        tx.execute(
            schema.recovery_runs.update()
            .where(schema.recovery_runs.c.id == plan.run_id)
            .values(owner="another-host:4242", heartbeat_at=now)
        )
    assert recovery.list_runs(ctx, principal=OPS)[0].state == "running"
    with pytest.raises(errors.Conflict) as caught:
        recovery.resume(ctx, plan.run_id or "", principal=OPS)
    assert "another-host:4242" in caught.value.reason

    class Later:
        def now(self) -> float:
            return now + recovery.RUN_LEASE_S + 1

        def sleep(self, seconds: float) -> None:
            raise AssertionError("no waiting")

    monkeypatch.setattr(recovery, "WALL_CLOCK", Later())
    assert recovery.list_runs(ctx, principal=OPS)[0].state == "interrupted"


def test_a_step_that_fails_leaves_the_run_interrupted_with_its_error(
    ctx: ctx_module.Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recovery, "SIMULATED_STEPS_PER_COMMIT", 1)  # each step commits alone
    ready_workload(ctx, "gold")
    plan = recovery.plan_failover(ctx, principal=OPS, from_center="qd-a", planned=True)
    real_do = failover._do

    def fails_on_promote(env: Any, run: Any, step: model.RecoveryStep, **kw: Any) -> dict[str, Any]:
        if step.action is model.StepAction.PROMOTE:
            raise errors.BackendUnavailable("qd-b compute did not answer", field="compute")
        return real_do(env, run, step, **kw)

    monkeypatch.setattr(failover, "_do", fails_on_promote)
    with pytest.raises(errors.BackendUnavailable):
        recovery.execute(ctx, plan.run_id or "")
    shown = recovery.get_run(ctx, plan.run_id or "", principal=OPS)
    assert (shown.state, shown.steps_done, shown.error) == (
        "interrupted",
        1,
        "compute: qd-b compute did not answer",
    )
    assert run_outcomes(ctx, plan.run_id or "") == ["started", "interrupted"]
    monkeypatch.setattr(failover, "_do", real_do)
    assert recovery.resume(ctx, plan.run_id or "", principal=OPS).state == "done"


# --- input checked first ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        ({"from_center": "nosuch", "planned": None}, "from", "no center 'nosuch'"),
        ({"from_center": "mgmt", "planned": True}, "from", "management center"),
        ({"from_center": "qd-a", "to_center": "nowhere", "planned": True}, "to", "no center 'nowhere'"),
        ({"from_center": "qd-a", "planned": None}, "mode", "--planned or --unplanned"),
        ({"from_center": "qd-a", "planned": True, "department": "hrs"}, "department", "no org node"),
    ],
)
def test_bad_failover_input_names_its_field_and_changes_nothing(
    ctx: ctx_module.Context, kwargs: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(errors.InvalidInput) as caught:
        recovery.plan_failover(ctx, principal=OPS, dry_run=True, **kwargs)
    assert (caught.value.field, words in caught.value.reason) == (field, True)
    assert recovery.list_runs(ctx, principal=OPS) == []


def test_a_protection_filter_naming_no_department_is_refused(ctx: ctx_module.Context) -> None:
    with pytest.raises(errors.NotFound) as caught:
        recovery.protection(ctx, department="hrss-insurace")
    assert caught.value.field == "department"


def test_a_state_filter_is_applied_before_the_limit(ctx: ctx_module.Context, store: Any) -> None:
    ready_workload(ctx, "gold")
    first = recovery.plan_failover(ctx, principal=OPS, from_center="qd-a", planned=True)
    with store.transaction() as tx:  # its process is gone: interrupted
        tx.execute(
            schema.recovery_runs.update()
            .where(schema.recovery_runs.c.id == first.run_id)
            .values(owner=f"{recovery.owner().rpartition(':')[0]}:{2**22 + 7}")
        )
    assert recovery.list_runs(ctx, principal=OPS)[0].state == "interrupted"
    recovery.resume(ctx, first.run_id or "", principal=OPS)
    second = recovery.plan_failback(ctx, principal=OPS, to_center="qd-a")
    with store.transaction() as tx:
        tx.execute(
            schema.recovery_runs.update()
            .where(schema.recovery_runs.c.id == first.run_id)
            .values(state="failed")
        )
    (newest,) = recovery.list_runs(ctx, principal=OPS, limit=1)
    assert newest.id == second.run_id
    (failed,) = recovery.list_runs(ctx, principal=OPS, state="failed", limit=1)  # not cut by the limit
    assert failed.id == first.run_id


def test_a_failback_to_a_center_still_down_or_unknown_is_refused(ctx: ctx_module.Context) -> None:
    faults.inject(ctx, kind="center-down", center="qd-a")
    for center, words in (("qd-a", "still down"), ("atlantis", "no center"), ("mgmt", "management")):
        with pytest.raises(errors.InvalidInput) as caught:
            recovery.plan_failback(ctx, principal=OPS, to_center=center)
        assert (caught.value.field, words in caught.value.reason) == ("to", True)
    assert recovery.list_runs(ctx, principal=OPS) == []


# --- hooks --------------------------------------------------------------------------------------------


def test_hooks_are_placed_around_their_group_and_tier_and_shown_in_a_dry_run(ctx: ctx_module.Context) -> None:
    gold = ready_workload(ctx, "gold")
    silver = ready_workload(ctx, "silver")
    plan = recovery.plan_failover(
        ctx,
        principal=OPS,
        from_center="qd-a",
        planned=True,
        dry_run=True,
        hooks=hooks(
            {"name": "freeze writes", "when": "pre", "command": python("pass")},
            {
                "name": "dns check",
                "when": "post",
                "group": "switch-traffic",
                "http": {"url": "http://x.test/"},
            },
            {"name": "gold app up", "when": "post", "tier": "gold", "command": python("pass")},
            {"name": "never", "when": "pre", "tier": "bronze", "command": python("pass")},
        ),
    )
    shape = [(s.workload_id, s.action.value if s.hook is None else s.hook.name) for s in plan.steps]
    assert shape == [
        ("", "freeze writes"),
        (gold, "final-sync"),
        (gold, "promote"),
        (gold, "switch-traffic"),
        (gold, "reprotect"),
        ("", "gold app up"),
        (silver, "final-sync"),
        (silver, "promote"),
        (silver, "switch-traffic"),
        ("", "dns check"),
        (silver, "reprotect"),
    ]
    assert len({s.id for s in plan.steps}) == len(plan.steps)
    assert recovery.list_runs(ctx, principal=OPS) == []


@pytest.fixture
def hook_server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(500 if self.path == "/fail" else 204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()
    thread.join(30)


def test_hooks_run_and_are_recorded_a_failing_continue_hook_does_not_stop_the_run(
    ctx: ctx_module.Context, hook_server: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = hook_server
    ready_workload(ctx, "gold")
    plan = recovery.plan_failover(
        ctx,
        principal=OPS,
        from_center="qd-a",
        planned=True,
        hooks=hooks(
            {"name": "notify", "when": "pre", "group": "promote", "http": {"url": f"{url}/ok"}},
            {"name": "smoke", "when": "post", "http": {"url": f"{url}/fail"}, "on_failure": "continue"},
        ),
    )
    run = recovery.execute(ctx, plan.run_id or "")
    assert run.state == "done"
    assert [(h["hook"], h["ok"]) for h in run.hooks] == [("notify", True), ("smoke", False)]
    assert run.hooks[1]["error"] == "HTTP 500"
    assert [(r["run"], r["when"]) for r in received] == [(plan.run_id, "pre"), (plan.run_id, "post")]


def test_a_hook_that_times_out_aborts_the_run_before_anything_changes(ctx: ctx_module.Context) -> None:
    gold = ready_workload(ctx, "gold")
    plan = recovery.plan_failover(
        ctx,
        principal=OPS,
        from_center="qd-a",
        planned=True,
        hooks=hooks(
            {
                "name": "quiesce",
                "when": "pre",
                "command": python("import time; time.sleep(60)"),
                "timeout_s": 0.5,
            }
        ),
    )
    run = recovery.execute(ctx, plan.run_id or "")
    assert (run.state, run.steps_done, run.resume) == ("failed", 1, None)
    assert run.hooks[0]["error"] == "timed out after 0.5 s"
    moved = recovery.protection(ctx, tier="gold")[0]
    assert (moved.workload_id, moved.serving_in) == (gold, ["qd-a"])  # nothing moved
    assert run_outcomes(ctx, plan.run_id or "") == ["started", "failed"]
    # A failed run holds no center: the next failover may start.
    assert recovery.plan_failover(ctx, principal=OPS, from_center="qd-a", planned=True, dry_run=True).steps


def test_a_pause_hook_stops_the_run_until_an_operator_resumes_it(ctx: ctx_module.Context) -> None:
    ready_workload(ctx, "gold")
    plan = recovery.plan_failover(
        ctx,
        principal=OPS,
        from_center="qd-a",
        planned=True,
        hooks=hooks(
            {
                "name": "app owner approves",
                "when": "post",
                "group": "final-sync",
                "command": python("raise SystemExit(3)"),
                "on_failure": "pause",
            }
        ),
    )
    paused = recovery.execute(ctx, plan.run_id or "")
    assert (paused.state, paused.steps_done, paused.hooks[0]["exit_code"]) == ("paused", 2, 3)
    assert paused.resume == f"cloudctl failover resume {plan.run_id}"
    done = recovery.resume(ctx, plan.run_id or "", principal=OPS)
    assert (done.state, done.steps_done) == ("done", 5)
    assert run_outcomes(ctx, plan.run_id or "") == ["started", "paused", "success"]


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("hooks: [{when: pre}]", "hooks[0]"),
        ("hooks: [{when: sometime, command: {argv: [hostname]}}]", "hooks[0].when"),
        ("hooks: [{when: pre, command: {argv: [hostname]}, timeout_s: 0}]", "hooks[0].timeout_s"),
        ("hooks: [{when: pre, group: promote, http: {url: 'ftp://x'}}]", "hooks[0].http.url"),
        ("hooks: [{when: pre, command: {argv: [hostname]}, on_failure: retry}]", "hooks[0].on_failure"),
        ("hooks: [{when: pre, command: {argv: [hostname]}, colour: red}]", "hooks[0].colour"),
    ],
)
def test_a_bad_hooks_file_names_the_path_of_what_is_wrong(text: str, field: str) -> None:
    with pytest.raises(errors.InvalidInput) as caught:
        model.parse_hooks(text)
    assert caught.value.field == field


def test_a_hook_naming_an_unknown_tier_is_refused_before_anything_is_planned(ctx: ctx_module.Context) -> None:
    with pytest.raises(errors.InvalidInput) as caught:
        recovery.plan_failover(
            ctx,
            principal=OPS,
            from_center="qd-a",
            planned=True,
            hooks=hooks({"when": "pre", "tier": "diamond", "command": python("pass")}),
        )
    assert caught.value.field == "hooks[0].tier"


# --- protection ---------------------------------------------------------------------------------------


def test_a_workload_without_a_healthy_copy_shows_unprotected_with_the_reason_and_in_the_metric(
    ctx: ctx_module.Context,
) -> None:
    silver = ready_workload(ctx, "silver")
    gold = ready_workload(ctx, "gold")
    assert {p.workload_id: p.protection for p in recovery.protection(ctx)} == {
        silver: "protected",
        gold: "protected",
    }
    faults.inject(ctx, kind="center-down", center="qd-a")
    plan = recovery.plan_failover(ctx, principal=OPS, from_center="qd-a", planned=False)
    recovery.execute(ctx, plan.run_id or "")
    found = {p.workload_id: p for p in recovery.protection(ctx)}
    assert (found[silver].protection, found[silver].serving_in) == ("unprotected", ["dz-dr"])
    assert found[silver].reason == "dz-dr>qd-a degraded (qd-a failed)"
    assert (found[gold].protection, found[gold].reason) == ("degraded", "qd-b>qd-a degraded (qd-a failed)")
    assert [p.workload_id for p in recovery.protection(ctx, unprotected_only=True)] == sorted([silver, gold])
    exposition = observability.exposition(ctx).decode()
    assert 'cloudctl_workloads_protection{protection="unprotected",tier="silver"} 1.0' in exposition
    assert 'cloudctl_workloads_protection{protection="degraded",tier="gold"} 1.0' in exposition
    assert 'cloudctl_workloads_protection{protection="unprotected",tier="gold"} 0.0' in exposition


def test_a_long_run_writes_its_sign_of_life_at_most_every_few_seconds_not_with_each_step(
    ctx: ctx_module.Context, store: Any
) -> None:
    """Each heartbeat rewrites the run's row, plan included: a large run paid for it at each step."""
    for _ in range(3):
        ready_workload(ctx, "gold")
    plan = recovery.plan_failover(ctx, principal=OPS, from_center="qd-a", planned=True)
    seconds = iter(range(1_000, 2_000, 4))  # the owner's clock: 4 s later at each look
    beats: list[Any] = []

    def count(_conn: Any, _cursor: Any, statement: str, params: Any, *_rest: Any) -> None:
        if statement.startswith("UPDATE recovery_runs SET heartbeat_at"):
            beats.append(params)

    sa.event.listen(store.engine, "before_cursor_execute", count)
    try:
        done = failover.execute(
            recovery.environment(ctx),
            plan.run_id or "",
            owner="here:1",
            alive_at=lambda: float(next(seconds)),
        )
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", count)

    assert (done.state, len(done.progress), len(done.plan)) == ("done", 12, 12)
    # Claimed at 1,000 s; steps seen at 1,004 … 1,048 s; a beat once 10 s have passed since the last.
    assert len(beats) == 4
    assert done.heartbeat_at == 1_048.0
