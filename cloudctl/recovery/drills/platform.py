"""What the drill engine needs from the world, as small protocols.

``services.drills`` implements ``Platform`` over the real services (admission,
provisioning, replication, failover, faults); tests implement it with a scripted write
log, so every figure of a report can be checked against a case whose answer is known.

Invariants: the engine never reaches the store, the drivers or the services except
through a ``Platform``; a ``Check`` runs in-process and answers with a short message.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence
from typing import Protocol

from cloudctl import clock as clocks
from cloudctl.model import drill_report, drills
from cloudctl.model import topology as topo


@dataclasses.dataclass(frozen=True)
class CanarySpec:
    tier: str
    index: int
    home: str
    """The local center the canary is placed (and written) in."""


@dataclasses.dataclass(frozen=True)
class CanaryMade:
    workload_id: str
    tier: str
    department: str
    home: str


@dataclasses.dataclass(frozen=True)
class Write:
    workload_id: str
    key: str
    data: bytes
    center: str | None
    """Where to write; ``None``: where the workload serves now."""


@dataclasses.dataclass(frozen=True)
class Acknowledged:
    key: str
    sha256: str
    at: float


@dataclasses.dataclass(frozen=True)
class PointChosen:
    """The recovery point a failover to a time recovers a workload to."""

    id: str
    seq: int
    consistent_at: float


@dataclasses.dataclass(frozen=True)
class FailoverPlanned:
    run_id: str
    stranded: dict[str, str]
    """Workload id → why it cannot be recovered."""
    points: dict[str, PointChosen] = dataclasses.field(default_factory=dict)
    """A failover to a time: workload id → the point it recovers to."""


@dataclasses.dataclass(frozen=True)
class Served:
    center: str
    at: float


@dataclasses.dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    detail: str
    """One short line."""


class Check(Protocol):
    """A pre- or post-check, run in-process."""

    @property
    def name(self) -> str: ...

    def run(self) -> CheckOutcome: ...


class Platform(Protocol):
    @property
    def clock(self) -> clocks.Clock: ...

    @property
    def topology(self) -> topo.Topology: ...

    def unit(self) -> contextlib.AbstractContextManager[object]:
        """Group what follows into one store transaction where that is safe (own clock)."""
        ...

    def save(self, progress: object) -> None:
        """Persist the drill's progress (a ``progress.Progress``)."""
        ...

    def create_canaries(self, specs: Sequence[CanarySpec]) -> list[CanaryMade]: ...

    def write(self, writes: Sequence[Write]) -> list[float | None]:
        """Each write's acknowledgement time, or ``None`` when its center refused it."""
        ...

    def replicate_due(self, workload_ids: Sequence[str], *, points: bool = False) -> None:
        """The replication passes due; with ``points``, the recovery points they call for too."""
        ...

    def next_pass_at(self, workload_ids: Sequence[str], *, after: float) -> float | None:
        """When the next pass of these workloads' copies falls due by its interval, after ``after``
        (``None``: none will), so the drill runs it then and not at the next write."""
        ...

    def inject(self, fault: drills.AnyScenario) -> list[str]:
        """Break what ``fault`` breaks; the ids of the faults injected."""
        ...

    def clear(self, fault_ids: Sequence[str]) -> None: ...

    def attack(self, fault: drills.Ransomware, workload_ids: Sequence[str]) -> int:
        """Overwrite or delete (``fault.mode``) the oldest ``fault.fraction`` of each workload's
        acknowledged keys where it serves and in its copies, past its write log; how many keys
        (per workload, counted once) were hit."""
        ...

    def lose_management(self, fault: drills.LoseManagementSite) -> drill_report.ManagementResult:
        """The management center's site is lost: promote its DR standby, fence the lost site's
        database, go on against the promoted one, and say which acknowledged records it lacks."""
        ...

    def plan_failover(
        self, *, center: str, to_center: str | None, workload_ids: Sequence[str], at: float | None = None
    ) -> FailoverPlanned:
        """Plan an unplanned failover out of ``center``; with ``at``, each workload to its newest
        recovery point consistent at or before that time (in ``to_center``)."""
        ...

    def execute_failover(self, run_id: str) -> dict[str, Served]:
        """Run (or resume) a planned failover; where and when each workload served again."""
        ...

    def start_isolated_copies(self, workload_ids: Sequence[str], *, center: str) -> dict[str, Served | str]:
        """Each workload's isolated copy up in ``center``, all started before any is waited for
        (as a failover starts its servers): where and when each served, or why it did not."""
        ...

    def serving_center(self, workload_id: str) -> str | None: ...

    def acknowledged_writes(self, workload_id: str) -> list[Acknowledged]: ...

    def holds(self, center: str, workload_id: str, writes: Sequence[Acknowledged]) -> list[bool]:
        """Whether ``center`` holds each write as acknowledged (present, checksum intact)."""
        ...

    def oldest_pending_at(self, workload_ids: Sequence[str], *, link: tuple[str, str]) -> dict[str, float]:
        """Per workload with a copy across ``link``: the write time of the oldest acknowledged
        write that copy lacks (absent: it lacks none)."""
        ...

    def copies_across(self, workload_ids: Sequence[str], *, link: tuple[str, str]) -> set[str]:
        """The workloads that keep a copy across ``link``."""
        ...

    def checks(self, phase: str) -> list[Check]: ...

    def delete_canaries(self, workload_ids: Sequence[str]) -> list[str]:
        """Delete the canaries (their quota released); what could not be deleted, one line each."""
        ...
