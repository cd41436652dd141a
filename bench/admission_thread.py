"""The admission thread's CPU per admission, in process: ``python -m bench.admission_thread``.

``python -m bench admission`` measures the whole server over HTTP, which a shared machine's load
moves a lot. This measures one part of it more steadily: batches of ``--size`` orders (24 by
default, what the admission thread takes under 32 clients) over the admission benchmark's
departments and tiers, each admitted by ``services.requests._admit_jobs`` (what the admission
thread runs), on the calling thread, with no other thread competing. It prints the thread's CPU
time (``time.thread_time``) per admission for each round; ``--profile FILE`` writes a cProfile
of the last round and prints its top functions.

    python -m bench.admission_thread --backend postgres --rounds 3

``bench admission`` runs ``measure`` on each store after its HTTP rounds, so that its results
say where an admission's time goes (batches of 24 and of one, and a profile) beside the figures.
"""

from __future__ import annotations

import argparse
import contextvars
import cProfile
import pstats
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import admission, common, recovery
from cloudctl.services import identity
from cloudctl.services import requests as requests_service

BATCH = 24
"""Orders a batch: what the admission thread takes at a time under 32 clients."""
WARM_BATCHES = 5


class Batches:
    """Batches of orders over the benchmark's departments (a token each) and every tier."""

    def __init__(self, context: Any, departments: Sequence[str]) -> None:
        self._context = context
        operator = identity.local_operator("secadmin")
        self._principals = [
            identity.authenticate(
                context,
                authorization="Bearer "
                + identity.create_token(
                    context, principal=operator, role="dept-user", department=department
                ).secret,
                source="127.0.0.1",
            )
            for department in departments
        ]
        self._bodies = admission.order_bodies(context.topology)

    def admit(self, *, size: int, batches: int, start: int = 0) -> None:
        """Admit ``batches`` batches of ``size`` orders, as the admission thread does."""
        for index in range(batches):
            first = start + index * 7
            jobs = [
                requests_service._Job(
                    self._principals[(first + i) % len(self._principals)],
                    requests_service.RequestCreate(**self._bodies[(first + i) % len(self._bodies)]),
                    None,
                    contextvars.copy_context(),
                    requests_service._ignore,
                )
                for i in range(size)
            ]
            requests_service._admit_jobs(self._context, jobs)
            for job in jobs:
                job.result()  # raises what a caller would get

    def per_admission_ms(self, *, size: int, batches: int, start: int = 0) -> tuple[float, float]:
        """This thread's CPU and the wall time, in ms per admission, of ``admit``."""
        cpu_s, wall_s = time.thread_time(), time.perf_counter()
        self.admit(size=size, batches=batches, start=start)
        admitted = size * batches
        return (
            (time.thread_time() - cpu_s) / admitted * 1e3,
            (time.perf_counter() - wall_s) / admitted * 1e3,
        )


def measure(
    context: Any, departments: Sequence[str], *, batches: int, rounds: int, profile_budget_s: float
) -> dict[str, Any]:
    """CPU and wall ms per admission, per round, in batches of ``BATCH`` (``batched``) and of one
    (``alone``), and a profile of ``batches`` batches of ``BATCH`` (``recovery.profiled``)."""
    work = Batches(context, departments)
    figures: dict[str, Any] = {"batch_size": BATCH}
    for label, size in (("batched", BATCH), ("alone", 1)):
        work.admit(size=size, batches=WARM_BATCHES)
        count = batches if size > 1 else batches * 4
        measured = [work.per_admission_ms(size=size, batches=count, start=r * 7) for r in range(rounds)]
        figures[label] = {
            "cpu_ms_per_admission": [round(cpu, 3) for cpu, _wall in measured],
            "wall_ms_per_admission": [round(wall, 3) for _cpu, wall in measured],
        }
    figures["profile_batched"] = recovery.profiled(
        lambda: work.admit(size=BATCH, batches=batches), budget_s=profile_budget_s
    )
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.admission_thread", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--batches", type=int, default=40, help="batches per round")
    parser.add_argument("--size", type=int, default=BATCH, help="orders per batch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", type=Path, help="write a cProfile of the last round here")
    arguments = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as directory, common.throwaway_database(arguments.backend) as url:
        home = Path(directory) / "home"
        home.mkdir()
        topology_file = common.write_bench_topology(Path(directory))
        context = common.open_context(url, home=home, topology_file=topology_file)
        try:
            work = Batches(context, admission.create_department_tree(context, count=admission.DEPARTMENTS))
            work.admit(size=arguments.size, batches=WARM_BATCHES)
            for round_number in range(arguments.rounds):
                last = round_number == arguments.rounds - 1
                profile = cProfile.Profile() if arguments.profile and last else None
                if profile is not None:
                    profile.enable()
                cpu_ms, wall_ms = work.per_admission_ms(
                    size=arguments.size, batches=arguments.batches, start=round_number * 7
                )
                if profile is not None:
                    profile.disable()
                print(
                    f"{arguments.backend} round {round_number}: CPU {cpu_ms:.3f} ms per "
                    f"admission, wall {wall_ms:.3f} ms{' (profiled)' if profile else ''}",
                    flush=True,
                )
                if profile is not None and arguments.profile is not None:
                    profile.dump_stats(arguments.profile)
                    pstats.Stats(profile).sort_stats("cumulative").print_stats(40)
        finally:
            context.close()


if __name__ == "__main__":
    main()
