"""The drill's progress: everything a drill knows, as one pydantic model saved after each step.

Invariants: a drill resumed from a saved ``Progress`` continues exactly where the save
left it (the phase, the clock, each canary's next write, each fault's state, the
failover runs it started); nothing is kept outside this model, so resuming needs no
hand-written mapping. The write log itself is the store's change log (read back through
the platform), so a save stays small however many writes a drill makes.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from cloudctl.model import drill_report, drills

PHASE_NAMES = ("prepare", "warm-up", "faults", "recover", "measure", "clean-up")


class Canary(BaseModel):
    workload_id: str
    tier: str
    index: int
    """Its number within its tier."""
    department: str
    home: str
    writes_to: str | None
    """Where its writes go: its home, the center it was recovered in, or ``None`` (where it serves)."""
    next_write_at: float
    """When the canary's next write is due (its seeded schedule)."""
    loss_at: float | None = None
    """The time of the fault that made it recover elsewhere (or of its test failover)."""
    recovered_in: str | None = None
    served_at: float | None = None
    stranded_reason: str | None = None


class Fault(BaseModel):
    index: int
    """Its place in the plan: 0 is ``scenario``, then ``faults`` in order."""
    spec: drills.Scenario
    due_at: float
    injected_at: float | None = None
    fault_ids: list[str] = Field(default_factory=list)
    links: list[tuple[str, str]] = Field(default_factory=list)
    lost_centers: list[str] = Field(default_factory=list)
    failover_runs: dict[str, str] = Field(default_factory=dict)
    """Lost center → the failover run started for it (resumed, never planned twice)."""
    recovered: bool = False
    restore_due_at: float | None = None
    restored_at: float | None = None
    crossing: list[str] = Field(default_factory=list)
    """Canaries whose copies crossed the fault's links when it struck."""
    catching_up: list[str] = Field(default_factory=list)
    """Canaries whose copies must catch up once the link is back (those whose far end survives)."""
    exposure_s: dict[str, float] = Field(default_factory=dict)
    """Per crossing canary: age of the oldest write its copy lacked just before the restore."""
    caught_up_at: dict[str, float] = Field(default_factory=dict)
    write_latency_s: float = 0.0
    """The longest a round of canary writes took to be acknowledged while the fault was active."""
    keys_attacked: int | None = None
    """Ransomware: the canary keys overwritten or deleted (set once: the attack never repeats)."""
    points: dict[str, tuple[str, int, float]] = Field(default_factory=dict)
    """Ransomware: per canary, the recovery point its failover went back to (id, seq, consistent_at)."""

    @property
    def active(self) -> bool:
        return self.injected_at is not None and self.restored_at is None

    @property
    def behind(self) -> list[str]:
        """Canaries whose copies across the restored link have not caught up yet."""
        if self.restored_at is None:
            return []
        return [w for w in self.catching_up if w not in self.caught_up_at]


class Progress(BaseModel):
    run_id: str
    plan: drills.DrillPlan
    owner: str = ""
    """``host:pid`` of the process running the drill (a dead owner means an interrupted run)."""
    phase: str = ""
    """The last phase finished; empty before ``prepare`` finished."""
    started_at: float
    clock_at: float
    """The drill's clock when saved (a drill on its own clock resumes from here)."""
    sequence: int = 0
    warmup_ends_at: float | None = None
    """Canary writes issued so far (the next key)."""
    canaries: list[Canary] = Field(default_factory=list)
    faults: list[Fault] = Field(default_factory=list)
    faults_started_at: float | None = None
    measured_at: float | None = None
    timeline: list[drill_report.TimelineStep] = Field(default_factory=list)
    checks: list[drill_report.CheckResult] = Field(default_factory=list)
    workloads: list[drill_report.WorkloadResult] = Field(default_factory=list)
    cleanup_problems: list[str] = Field(default_factory=list)
    management: drill_report.ManagementResult | None = None
    """Set once the management center's site was lost and its DR standby promoted (never twice)."""
    ransomware: drill_report.RansomwareResult | None = None
    """Set when a ransomware drill measured each canary's recovery to its point."""

    def finished(self, phase: str) -> bool:
        return bool(self.phase) and PHASE_NAMES.index(self.phase) >= PHASE_NAMES.index(phase)
