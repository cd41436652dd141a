"""DR drills that measure instead of assume.

A drill creates canary workloads in each tier in scope, writes a canary dataset to
them continuously (replication running as in production), injects the scenario's
fault, runs the recovery plan, then counts which acknowledged writes survived where
the workloads serve afterwards (measured RPO, writes lost) and when they served
again (measured RTO). It compares both with the targets and names the GB/T 20988
level achieved.

Invariants:
- Every figure in the report is measured in this run; targets only judge them.
- With ``simulated_time`` the drill runs on its own manual clock: waits (server
  boot, link transfers, replication intervals) advance it, so a drill is
  deterministic and takes seconds; otherwise it runs in real time.
- A drill leaves nothing behind: faults are cleared and canary workloads deleted
  (their quota released), whatever the outcome; its report is stored with the run.
  A drill interrupted (Ctrl-C, killed) keeps its canaries and faults, and its
  phases, so ``resume_drill`` finishes it.
- On its own clock a drill groups its writes to the store into few transactions (50
  canaries admitted, provisioned, measured or deleted; a few ticks of writes and passes;
  50 recovery steps): a kill loses the group in flight whole, never half of it.
- Detection time is not modelled: recovery starts the moment the fault is injected.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.drivers import base
from cloudctl.model import drill_report as report_model
from cloudctl.model import drills
from cloudctl.model import topology as topo
from cloudctl.recovery import replication as repl
from cloudctl.services import audit, faults, identity, provisioning, recovery, workloads
from cloudctl.services import context as ctx_module
from cloudctl.services import requests as requests_service
from cloudctl.store import orgs, replication
from cloudctl.store import recovery as recovery_store
from cloudctl.store import requests as requests_store

OnStep = Callable[[report_model.TimelineStep], None]
T = TypeVar("T")
UNIT_SIZE = 50
"""Canaries handled per store transaction when a drill creates, measures or deletes them."""
WRITES_PER_UNIT = 5000
"""Canary writes per store transaction on a drill's own clock (a few ticks of a large drill)."""
LOSE_SCENARIOS = ("lose-local-center", "lose-both-local-centers")


@dataclasses.dataclass
class Canary:
    workload_id: str
    tier: str
    department: str
    writes: list[tuple[str, str, float]] = dataclasses.field(default_factory=list)
    """Acknowledged writes: (key, sha256, time)."""
    owner: identity.Principal | None = None
    """The department principal that ordered (and deletes) the canary."""
    served_in: str | None = None
    served_at: float | None = None
    lost: list[tuple[str, str, float]] = dataclasses.field(default_factory=list)
    rpo_s: float | None = None


class _Drill:
    def __init__(self, ctx: ctx_module.Context, plan: drills.DrillPlan, on_step: OnStep | None) -> None:
        self.plan = plan
        self.on_step = on_step
        clock: clocks.Clock = ctx.clock
        if plan.simulated_time:
            clock = clocks.ManualClock(start=ctx.clock.now())
        self.ctx = ctx_module.Context(settings=ctx.settings, clock=clock, _store=ctx.store)
        self.started = clock.now()
        self.timeline: list[report_model.TimelineStep] = []
        self.canaries: list[Canary] = []
        self.checks: list[report_model.CheckResult] = []
        self.sequence = 0
        self.fault_at = self.started
        self.injected: list[str] = []
        self.run_id = ""
        self.phase = "started"
        self.lost_centers: list[str] = []
        self.failover_runs: dict[str, str] = {}
        """Failover run per lost center, so a resumed drill resumes them instead of planning anew."""
        self.measured_at: float | None = None
        """Writes up to this time count: the fault for lost centers, the end of the hold for links."""

    @property
    def clock(self) -> clocks.Clock:
        return self.ctx.clock

    # --- persistence: each finished phase is saved, so a killed drill resumes after it ----------

    def before(self, phase: str) -> bool:
        """Whether ``phase`` is still to be done."""
        return PHASES.index(self.phase) < PHASES.index(phase)

    def save(self, phase: str) -> None:
        self.phase = phase
        state = {
            "plan": self.plan.model_dump(mode="json"),
            "phase": phase,
            "started": self.started,
            "clock_now": self.clock.now(),
            "fault_at": self.fault_at,
            "measured_at": self.measured_at,
            "sequence": self.sequence,
            "injected": self.injected,
            "lost_centers": self.lost_centers,
            "failover_runs": self.failover_runs,
            "timeline": [step.model_dump(mode="json") for step in self.timeline],
            "checks": [check.model_dump(mode="json") for check in self.checks],
            "canaries": [
                {
                    "workload_id": c.workload_id,
                    "tier": c.tier,
                    "department": c.department,
                    "served_in": c.served_in,
                    "served_at": c.served_at,
                    "lost": c.lost,
                    "rpo_s": c.rpo_s,
                }
                for c in self.canaries
            ],
        }
        with self.ctx.transaction() as tx:
            recovery_store.update_drill_run(tx, self.run_id, report={"progress": state})

    @classmethod
    def restore(
        cls, ctx: ctx_module.Context, plan: drills.DrillPlan, state: dict[str, Any], on_step: OnStep | None
    ) -> _Drill:
        drill = cls(ctx, plan, on_step)
        if drill.on_own_clock:
            drill.ctx = ctx_module.Context(
                settings=ctx.settings,
                clock=clocks.ManualClock(start=float(state["clock_now"])),
                _store=ctx.store,
            )
        drill.started = float(state["started"])
        drill.phase = str(state["phase"])
        drill.fault_at = float(state["fault_at"])
        drill.measured_at = state.get("measured_at")
        drill.sequence = int(state["sequence"])
        drill.injected = list(state["injected"])
        drill.lost_centers = list(state["lost_centers"])
        drill.failover_runs = dict(state["failover_runs"])
        drill.timeline = [report_model.TimelineStep(**step) for step in state["timeline"]]
        drill.checks = [report_model.CheckResult(**check) for check in state["checks"]]
        for saved in state["canaries"]:
            canary = Canary(
                workload_id=saved["workload_id"],
                tier=saved["tier"],
                department=saved["department"],
                owner=drill._principal(saved["department"]),
                served_in=saved["served_in"],
                served_at=saved["served_at"],
                lost=[tuple(item) for item in saved["lost"]],
                rpo_s=saved["rpo_s"],
            )
            with ctx.read() as tx:
                changes = replication.changes_after(tx, workload_id=canary.workload_id, seq=0)
            canary.writes = [(change.key, change.sha256, change.at) for change in changes]
            drill.canaries.append(canary)
        return drill

    def note(self, step: str, detail: str = "") -> None:
        now = self.clock.now()
        entry = report_model.TimelineStep(
            at=clocks.isoformat(now), offset_s=round(now - self.started, 3), step=step, detail=detail
        )
        self.timeline.append(entry)
        if self.on_step is not None:
            self.on_step(entry)

    def wait(self, seconds: float) -> None:
        self.clock.sleep(seconds)

    # --- canaries -----------------------------------------------------------------------------------

    def create_canaries(self) -> None:
        topology = self.ctx.topology
        offering = min(
            (o for o in topology.catalog if o.kind is topo.OfferingKind.VM), key=lambda o: (o.vcpu, o.ram_gb)
        )
        home = self._home_center()
        owners = self._owners()
        sysadmin = identity.local_operator("sysadmin")
        planned = [
            (tier, index)
            for tier in drills.tiers_in_scope(self.plan, topology)
            for index in range(self.plan.canary.workloads_per_tier)
        ]
        for chunk in _chunks(planned):
            with self._unit():  # a chunk of canaries is made whole or not at all
                bodies = [
                    requests_service.RequestCreate(
                        offering=offering.name,
                        count=1,
                        tier=tier.name,
                        name=f"drill-{tier.name}-{index}-{secrets.token_hex(2)}",
                        preferred_center=home,
                    )
                    for tier, index in chunk
                ]
                for request in self._admit_all(owners, bodies):
                    if request.state == "pending-approval":
                        requests_service.approve(self.ctx, principal=sysadmin, request_id=request.id)
                    result = provisioning.reconcile(self.ctx, kind="request", object_id=request.id)
                    if not result.done:
                        raise errors.OperationFailed(
                            f"canary {request.name} was not provisioned: {result.message}"
                        )
                    self.canaries.append(
                        Canary(
                            workload_id=request.workload_id or "",
                            tier=request.tier,
                            department=request.department,
                            owner=self._principal(request.department),
                        )
                    )
        self.note("canaries ready", f"{len(self.canaries)} × {offering.name} in {home}")

    @property
    def on_own_clock(self) -> bool:
        """Whether the drill runs on its own (simulated) clock, where waits take no time."""
        return isinstance(self.clock, clocks.ManualClock)

    def _unit(self) -> contextlib.AbstractContextManager[object]:
        """One store transaction for what follows, on the drill's own clock only: there, waits
        take no time, so the transaction stays short; in real time each call commits alone."""
        return self.ctx.store.unit_of_work() if self.on_own_clock else contextlib.nullcontext()

    def _home_center(self) -> str:
        scenario = self.plan.scenario
        if isinstance(scenario, drills.LoseLocalCenter):
            return scenario.center
        if isinstance(scenario, drills.CutDrLink) and scenario.center:
            return scenario.center
        if isinstance(scenario, drills.DegradeLink):
            local = {c.name for c in self.ctx.topology.centers_with_role(topo.CenterRole.LOCAL)}
            ends = [c for c in scenario.between if c in local]
            if ends:
                return ends[0]
        return self.ctx.topology.centers_with_role(topo.CenterRole.LOCAL)[0].name

    def _owners(self) -> list[str]:
        """Departments that may own canaries: the plan's, else every org node (leaves first)."""
        with self.ctx.read() as tx:
            nodes = orgs.list_nodes(tx)
            known = {node.id for node in nodes}
            for index, department in enumerate(self.plan.scope.departments):
                if department not in known:
                    raise errors.InvalidInput(
                        f"no org node {department!r}", field=f"scope.departments[{index}]"
                    )
        if self.plan.scope.departments:
            return list(self.plan.scope.departments)
        parents = {node.parent_id for node in nodes}
        leaves = [node.id for node in nodes if node.id not in parents]
        return leaves + [node.id for node in nodes if node.id in parents]

    def _principal(self, department: str) -> identity.Principal:
        with self.ctx.read() as tx:
            path = tuple(orgs.get_node(tx, department).ancestor_ids)
        return identity.Principal(
            id=f"drill:{self.plan.name}", role="dept-admin", department=department, department_path=path
        )

    def _admit_all(
        self, owners: list[str], bodies: list[requests_service.RequestCreate]
    ) -> list[requests_service.RequestPublic]:
        """Admit the canaries together for the first department that has quota for all of them,
        else one by one, each for the first department that has quota for it."""
        for department in owners:
            try:
                return requests_service.submit_many(
                    self.ctx, principal=self._principal(department), bodies=bodies
                )
            except errors.QuotaExceeded:
                continue
        return [self._admit(owners, body) for body in bodies]

    def _admit(
        self, owners: list[str], body: requests_service.RequestCreate
    ) -> requests_service.RequestPublic:
        refusals = []
        for department in owners:
            principal = self._principal(department)
            try:
                request, _ = requests_service.submit(self.ctx, principal=principal, body=body)
            except errors.QuotaExceeded as refused:
                refusals.append(refused.one_line())
                continue
            return request
        first = refusals[0] if refusals else "no department in scope"
        raise errors.OperationFailed(
            f"no department in scope has quota for a {body.tier} canary: {first}", field="scope"
        )

    # --- writing and replicating -----------------------------------------------------------------------

    def write_for(self, seconds: float) -> None:
        """Write the canary dataset for ``seconds``, running replication passes as they fall due."""
        interval = 1.0 / self.plan.canary.writes_per_s
        deadline = self.clock.now() + seconds
        env = recovery.environment(self.ctx)
        # On the drill's own clock, one store transaction per few ticks (up to WRITES_PER_UNIT
        # writes): the writes and the passes of those instants.
        ticks_per_unit = max(WRITES_PER_UNIT // max(len(self.canaries), 1), 1) if self.on_own_clock else 1
        while self.clock.now() < deadline:
            with self._unit():
                for _tick in range(ticks_per_unit):
                    self._write_all(env)
                    self._replicate(env)
                    self.wait(interval)
                    if self.clock.now() >= deadline:
                        break

    def _write_all(self, env: repl.Environment) -> None:
        """One canary write to every canary; a write its center refused is not counted."""
        writes = []
        for canary in self.canaries:
            self.sequence += 1
            key = f"canary/{self.sequence:08d}"
            header = f"{self.plan.name} {canary.workload_id} {self.sequence} ".encode()
            size = self.plan.canary.object_bytes
            writes.append(repl.Write(canary.workload_id, key, (header * (size // len(header) + 1))[:size]))
        outcomes = repl.write_many(env, writes)
        for canary, item, outcome in zip(self.canaries, writes, outcomes, strict=True):
            if isinstance(outcome, repl.Ack):  # a refused write was seen failing: not counted
                canary.writes.append((item.key, hashlib.sha256(item.data).hexdigest(), outcome.at))

    def _replicate(self, env: repl.Environment) -> None:
        repl.run_due(env, workload_ids=[c.workload_id for c in self.canaries])

    # --- fault and recovery --------------------------------------------------------------------------------

    def inject(self) -> list[str]:
        """Break what the scenario breaks; the centers lost (if any)."""
        scenario = self.plan.scenario
        topology = self.ctx.topology
        local = [c.name for c in topology.centers_with_role(topo.CenterRole.LOCAL)]
        dr = [c.name for c in topology.centers_with_role(topo.CenterRole.DR)]
        self.fault_at = self.clock.now()
        lost: list[str] = []
        inject = self._inject
        if isinstance(scenario, drills.LoseLocalCenter):
            inject(kind="center-down", center=scenario.center)
            lost = [scenario.center]
        elif isinstance(scenario, drills.LoseBothLocalCenters):
            for center in local:
                inject(kind="center-down", center=center)
            lost = local
        elif isinstance(scenario, drills.CutDrLink):
            for center in [scenario.center] if scenario.center else local:
                for target in dr:
                    inject(kind="link-cut", center=center, peer=target)
        elif isinstance(scenario, drills.DegradeLink):
            inject(
                kind="link-degraded",
                center=scenario.between[0],
                peer=scenario.between[1],
                factor=scenario.factor,
            )
        self.note("fault injected", scenario.summary)
        return lost

    def _inject(self, **fault: Any) -> None:
        self.injected.append(faults.inject(self.ctx, **fault).id)

    def recover(self, lost: list[str]) -> None:
        sysadmin = identity.local_operator("sysadmin")
        canary_ids = [c.workload_id for c in self.canaries]
        outcomes: dict[str, Any] = {}
        stranded: list[dict[str, Any]] = []
        for center in lost:
            plan = recovery.plan_failover(
                self.ctx, principal=sysadmin, from_center=center, planned=False, workload_ids=canary_ids
            )
            self.note(
                f"recovery plan for {center}", f"{len(plan.steps)} steps, {len(plan.stranded)} stranded"
            )
            run = recovery.execute(self.ctx, plan.run_id or "")
            for workload_id, outcome in run.workloads.items():
                outcomes.setdefault(workload_id, {}).update(outcome)
        for canary in self.canaries:
            outcome = outcomes.get(canary.workload_id)
            if outcome and "served_at" in outcome:
                canary.served_in = outcome.get("served_in") or outcome.get("traffic_to")
                canary.served_at = float(outcome["served_at"])
        self.note(
            "recovery finished", f"{len(stranded)} workload(s) could not be recovered" if stranded else ""
        )

    def measure_survivors(self) -> None:
        """Which acknowledged writes (up to the fault) the serving center holds."""
        env = recovery.environment(self.ctx)
        for chunk in _chunks(self.canaries):
            with self._unit():
                for canary in chunk:
                    self._measure_survivors(env, canary)

    def _measure_survivors(self, env: repl.Environment, canary: Canary) -> None:
        center = canary.served_in
        if center is None:
            return
        storage = env.drivers_for(center).object_storage
        bucket = repl.data_bucket(canary.workload_id)
        for key, sha256, at in canary.writes:
            if at > self.fault_at:
                continue
            try:
                data, _info = storage.get_object(bucket, key=key)
                survived = hashlib.sha256(data).hexdigest() == sha256
            except (errors.NotFound, errors.OperationFailed):
                survived = False
            if not survived:
                canary.lost.append((key, sha256, at))
        canary.rpo_s = max(self.fault_at - min(at for _k, _s, at in canary.lost), 0.0) if canary.lost else 0.0

    def measure_exposure(self) -> None:
        """Link scenarios: production keeps serving; the exposure is what the best copy lacks."""
        env = recovery.environment(self.ctx)
        with self.ctx.read() as tx:
            streams = replication.list_streams(tx, workload_ids=[c.workload_id for c in self.canaries])
        for canary in self.canaries:
            own = [s for s in streams if s.workload_id == canary.workload_id]
            exposure = min((repl.current_rpo_s(env, s) for s in own), default=0.0)
            with self.ctx.read() as tx:
                pending = min(
                    (
                        len(replication.changes_after(tx, workload_id=canary.workload_id, seq=s.last_seq))
                        for s in own
                    ),
                    default=0,
                )
            canary.rpo_s = exposure
            canary.lost = canary.writes[len(canary.writes) - pending :] if pending else []
        self.measured_at = self.clock.now()
        for canary in self.canaries:
            serving = None
            with self.ctx.read() as tx:
                workload = requests_store.get_workload(tx, canary.workload_id)
            centers = repl.serving_centers(workload)
            serving = centers[0] if centers else None
            canary.served_in = serving
            canary.served_at = self.fault_at if serving else None

    def test_failover(self) -> None:
        """An isolated copy in the DR center: servers up from the DR data, production untouched."""
        env = recovery.environment(self.ctx)
        topology = self.ctx.topology
        scenario = self.plan.scenario
        assert isinstance(scenario, drills.IsolatedFailoverTest)
        dr_center = scenario.center or topology.centers_with_role(topo.CenterRole.DR)[0].name
        offering = None
        for canary in self.canaries:
            with self.ctx.read() as tx:
                workload = requests_store.get_workload(tx, canary.workload_id)
            offering = topology.offering(workload.offering)
            compute = env.drivers_for(dr_center).compute
            server = compute.create_server(
                name=f"test-{canary.workload_id}",
                project=workload.department,
                vcpu=offering.vcpu,
                ram_gb=offering.ram_gb,
                disk_gb=offering.volume_gb,
                metadata={"drill": self.plan.name, "isolated": "true"},
            )
            compute.wait_for_status(server.id, status=base.ServerStatus.ACTIVE, timeout_s=600)
            canary.served_in = dr_center
            canary.served_at = self.clock.now()
            compute.delete_server(server.id, ignore_missing=True)
        self.note("isolated copies up", f"in {dr_center}; production untouched")

    # --- checks, cleanup, report ------------------------------------------------------------------------

    def run_checks(self, phase: str) -> None:
        for step in self.plan.steps:
            for check in step.pre if phase == "pre" else step.post:
                passed, detail = _probe(check, env=self._environment())
                self.checks.append(
                    report_model.CheckResult(name=check.label, phase=phase, passed=passed, detail=detail)
                )
                self.note(f"{phase}-check {'passed' if passed else 'FAILED'}", check.label)

    def _environment(self) -> dict[str, str]:
        """What a check command needs to act on the same state as the drill."""
        settings = self.ctx.settings
        environment = dict(os.environ)
        environment.update(
            CLOUDCTL_HOME=str(settings.home),
            CLOUDCTL_TOPOLOGY=str(settings.topology),
            CLOUDCTL_POLICIES=str(settings.policies),
        )
        if settings.database_url:
            environment["CLOUDCTL_DATABASE_URL"] = settings.database_url
        return environment

    def cleanup(self) -> None:
        for fault_id in self.injected:
            faults.clear(self.ctx, fault_id=fault_id)
        left: list[str] = []
        for chunk in _chunks(self.canaries):
            with self._unit():
                for canary in chunk:
                    assert canary.owner is not None
                    try:
                        workloads.delete(self.ctx, principal=canary.owner, workload_id=canary.workload_id)
                    except errors.CloudctlError as error:
                        left.append(f"{canary.workload_id}: {error.one_line()}")
        with self._unit():
            results = provisioning.run_pending(self.ctx)
        left += [f"{object_id}: {r.message}" for object_id, r in results.items() if not r.done]
        self.note("cleaned up", "faults cleared, canary workloads deleted" if not left else "; ".join(left))

    def report(self, run_id: str) -> report_model.DrillReport:
        targets = {t.tier: t for t in drills.effective_targets(self.plan, self.ctx.topology)}
        results = []
        for canary in self.canaries:
            target = targets[canary.tier]
            cutoff = self.fault_at if self.measured_at is None else self.measured_at
            acknowledged = len([w for w in canary.writes if w[2] <= cutoff])
            rto = None if canary.served_at is None else max(canary.served_at - self.fault_at, 0.0)
            rpo = canary.rpo_s
            results.append(
                report_model.WorkloadResult(
                    workload_id=canary.workload_id,
                    department=canary.department,
                    tier=canary.tier,
                    recovered_in=canary.served_in,
                    **_objectives(
                        self.ctx.topology, target, rpo=rpo, rto=rto, acked=acknowledged, lost=len(canary.lost)
                    ),
                )
            )
        tiers = []
        for tier_name, target in targets.items():
            mine = [r for r in results if r.tier == tier_name]
            if not mine:
                continue
            rpos = [r.rpo_measured_s for r in mine]
            rtos = [r.rto_measured_s for r in mine]
            tiers.append(
                report_model.TierResult(
                    tier=tier_name,
                    workloads=len(mine),
                    gbt20988_level_target=target.gbt20988_level_target,
                    **_objectives(
                        self.ctx.topology,
                        target,
                        rpo=None if None in rpos else max(r for r in rpos if r is not None),
                        rto=None if None in rtos else max(r for r in rtos if r is not None),
                        acked=sum(r.writes_acknowledged for r in mine),
                        lost=sum(r.writes_lost for r in mine),
                    ),
                )
            )
        passed = all(t.passed for t in tiers) and all(c.passed for c in self.checks) and bool(tiers)
        return report_model.DrillReport(
            plan=self.plan.name,
            description=self.plan.description,
            scenario=self.plan.scenario.kind,
            started_at=clocks.isoformat(self.started),
            finished_at=clocks.isoformat(self.clock.now()),
            simulated_time=self.plan.simulated_time,
            passed=passed,
            tiers=tiers,
            workloads=results,
            checks=self.checks,
            timeline=self.timeline,
            run_id=run_id,
        )


def _chunks(items: list[T]) -> list[list[T]]:
    """``items`` in order, ``UNIT_SIZE`` at a time: what a drill handles in one store transaction."""
    return [items[start : start + UNIT_SIZE] for start in range(0, len(items), UNIT_SIZE)]


def _objectives(
    topology: topo.Topology,
    target: drills.EffectiveTarget,
    *,
    rpo: float | None,
    rto: float | None,
    acked: int,
    lost: int,
) -> dict[str, Any]:
    level = None if rpo is None or rto is None else topology.level_achieved(rto_s=rto, rpo_s=rpo)
    passed = rpo is not None and rto is not None and rpo <= target.rpo_target_s and rto <= target.rto_target_s
    return {
        "rpo_target_s": target.rpo_target_s,
        "rto_target_s": target.rto_target_s,
        "rpo_measured_s": None if rpo is None else round(rpo, 3),
        "rto_measured_s": None if rto is None else round(rto, 3),
        "writes_acknowledged": acked,
        "writes_lost": lost,
        "gbt20988_level_achieved": level,
        "passed": passed,
    }


def _probe(check: drills.Check, *, env: dict[str, str]) -> tuple[bool, str]:
    if check.http is not None:
        import httpx

        try:
            response = httpx.get(check.http.url, timeout=check.http.timeout_s)
        except httpx.HTTPError as error:
            return False, f"{type(error).__name__}: {error}"
        return response.status_code == check.http.expect_status, f"HTTP {response.status_code}"
    assert check.command is not None
    argv = list(check.command.argv)
    if argv[0] == "cloudctl":
        argv = [sys.executable, "-m", "cloudctl", *argv[1:]]
    try:
        finished = subprocess.run(
            argv,
            env=env,
            capture_output=True,
            text=True,
            timeout=check.command.timeout_s,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return False, str(error)
    readable = [
        line.strip()
        for line in (finished.stdout or finished.stderr).splitlines()
        if line.strip() and not set(line.strip()) <= set("─━│┃┌┐└┘├┤┬┴┼┏┓┗┛┡┩╇╈┣┫┳┻╋ ")
    ]
    tail = readable[-1:] or [""]
    return finished.returncode == check.command.expect_exit, f"exit {finished.returncode} {tail[0]}".strip()


PHASES = ("started", "canaries-ready", "warmed-up", "fault-injected", "recovered", "checked")


def run_drill(
    ctx: ctx_module.Context, *, plan: drills.DrillPlan, on_step: OnStep | None = None
) -> report_model.DrillReport:
    """Run one drill end to end and store its report; the report says whether every objective held."""
    drills.check_against(plan, ctx.topology)
    drill = _Drill(ctx, plan, on_step)
    drill.run_id = f"drill-{int(drill.started * 1000):013x}{secrets.token_hex(3)}"
    with ctx.transaction() as tx:
        recovery_store.insert_drill_run(
            tx,
            recovery_store.DrillRun(
                id=drill.run_id,
                plan=plan.name,
                scenario=plan.scenario.kind,
                state="running",
                passed=None,
                report={},
                started_at=drill.started,
                finished_at=None,
            ),
        )
    drill.note("drill started", f"{plan.scenario.summary}; scope {plan.scope.summary}")
    drill.save("started")
    return _continue(ctx, drill)


def resume_drill(
    ctx: ctx_module.Context, run_id: str, *, on_step: OnStep | None = None
) -> report_model.DrillReport:
    """Finish a drill that was killed mid-way, from its last finished phase.

    Canaries are not created again and the fault is not injected again; an
    interrupted recovery resumes its own failover runs step by step.
    """
    with ctx.read() as tx:
        runs = [run for run in recovery_store.list_drill_runs(tx, limit=10_000) if run.id == run_id]
    if not runs:
        raise errors.NotFound(f"no drill run {run_id!r}", field="run")
    run = runs[0]
    if run.state != "running":
        raise errors.Conflict(
            f"drill run {run_id} is {run.state}; only a running drill can be resumed", field="run"
        )
    saved = run.report.get("progress")
    if not saved:
        raise errors.Conflict(f"drill run {run_id} saved no progress to resume from", field="run")
    plan = drills.from_data(saved["plan"])
    drill = _Drill.restore(ctx, plan, saved, on_step)
    drill.run_id = run_id
    drill.note("drill resumed", f"after {drill.phase}")
    return _continue(ctx, drill)


def _continue(ctx: ctx_module.Context, drill: _Drill) -> report_model.DrillReport:
    plan = drill.plan
    try:
        if drill.before("canaries-ready"):
            drill.create_canaries()
            drill.save("canaries-ready")
        if drill.before("warmed-up"):
            drill.write_for(plan.canary.warmup_s)
            drill.note("warm-up done", f"{sum(len(c.writes) for c in drill.canaries)} acknowledged writes")
            drill.run_checks("pre")
            drill.save("warmed-up")
        if drill.before("fault-injected"):
            drill.lost_centers = drill.inject()
            drill.save("fault-injected")
        if drill.before("recovered"):
            kind = plan.scenario.kind
            if kind in LOSE_SCENARIOS:
                drill.recover(drill.lost_centers)
                drill.measure_survivors()
            elif kind == "test-failover":
                drill.test_failover()
                drill.measure_survivors()
            else:
                hold_s = max(
                    (float(t.dr_interval_s or 0) for t in drills.tiers_in_scope(plan, ctx.topology)),
                    default=60.0,
                )
                drill.write_for(min(hold_s, 3600.0))
                drill.measure_exposure()
                drill.note("exposure measured", "production kept serving; copies measured for what they lack")
            drill.save("recovered")
        if drill.before("checked"):
            drill.run_checks("post")
            drill.save("checked")
    except Exception:
        # A failed drill cleans up; an interrupted one (Ctrl-C, a kill) keeps its state for resume.
        drill.cleanup()
        raise
    drill.cleanup()
    report = drill.report(drill.run_id)
    with ctx.transaction() as tx:
        recovery_store.update_drill_run(
            tx,
            drill.run_id,
            state="done",
            passed=report.passed,
            report=report.model_dump(mode="json"),
            finished_at=ctx.clock.now(),
        )
    audit.record(
        ctx,
        principal=identity.local_operator("sysadmin"),
        action="drill.run",
        target_type="Drill",
        target_id=drill.run_id,
        outcome="success" if report.passed else "failed",
        detail={"plan": plan.name, "scenario": plan.scenario.kind, "passed": report.passed},
    )
    return report


# --- reading drill runs (operators' supervision pages) -------------------------------------------


@dataclasses.dataclass(frozen=True)
class DrillRunSummary:
    """One drill run as operators follow it: its phase while it runs, its verdict once done."""

    id: str
    plan: str
    scenario: str
    state: str
    passed: bool | None
    phase: str
    """The last finished phase (one of ``PHASES``)."""
    phases_done: int
    phases_total: int
    last_step: str
    """The newest step of the run's timeline, e.g. ``fault injected``."""
    started_at: str
    finished_at: str | None


def _summary(run: recovery_store.DrillRun) -> DrillRunSummary:
    progress = run.report.get("progress") or {}
    phase = "checked" if run.state == "done" else str(progress.get("phase", "started"))
    timeline = run.report.get("timeline") or progress.get("timeline") or []
    return DrillRunSummary(
        id=run.id,
        plan=run.plan,
        scenario=run.scenario,
        state=run.state,
        passed=run.passed,
        phase=phase,
        phases_done=PHASES.index(phase) + 1 if phase in PHASES else 0,
        phases_total=len(PHASES),
        last_step=str(timeline[-1].get("step", "")) if timeline else "",
        started_at=clocks.isoformat(run.started_at),
        finished_at=None if run.finished_at is None else clocks.isoformat(run.finished_at),
    )


def recent_drill_runs(
    ctx: ctx_module.Context, *, principal: identity.Principal, limit: int = 20
) -> list[DrillRunSummary]:
    """The newest drill runs, running or done (policy ``center.read``, as the centers' status)."""
    from cloudctl.services import status

    status.authorize_supervision(ctx, principal=principal)
    with ctx.read() as tx:
        return [_summary(run) for run in recovery_store.list_drill_runs(tx, limit=limit)]


def drill_run_report(
    ctx: ctx_module.Context, *, principal: identity.Principal, run_id: str
) -> report_model.DrillReport:
    """The stored report of a finished drill run (policy ``center.read``)."""
    from cloudctl.services import status

    status.authorize_supervision(ctx, principal=principal)
    with ctx.read() as tx:
        runs = [run for run in recovery_store.list_drill_runs(tx, limit=10_000) if run.id == run_id]
    if not runs or runs[0].state != "done" or not runs[0].report.get("plan"):
        raise errors.NotFound(f"no finished drill run {run_id!r}", field="run")
    return report_model.DrillReport.model_validate(runs[0].report)
