"""The admission thread's CPU per admission, in process: ``python -m bench.admission_thread``.

``python -m bench admission`` measures the whole server over HTTP, which a shared machine's load
moves a lot. This measures one part of it more steadily: batches of ``--size`` orders (24 by
default, what the admission thread takes under 32 clients) over the admission benchmark's
departments and tiers, each admitted by ``services.requests._admit_jobs`` (what the admission
thread runs), on the calling thread, with no other thread competing. It prints the thread's CPU
time (``time.thread_time``) per admission for each round; ``--profile FILE`` writes a cProfile
of the last round and prints its top functions.

    python -m bench.admission_thread --backend postgres --rounds 3
"""

from __future__ import annotations

import argparse
import contextvars
import cProfile
import pstats
import tempfile
import time
from pathlib import Path

from bench import admission, common
from cloudctl.services import identity
from cloudctl.services import requests as requests_service


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.admission_thread", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--batches", type=int, default=40, help="batches per round")
    parser.add_argument("--size", type=int, default=24, help="orders per batch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", type=Path, help="write a cProfile of the last round here")
    arguments = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as directory, common.throwaway_database(arguments.backend) as url:
        home = Path(directory) / "home"
        home.mkdir()
        topology_file = common.write_bench_topology(Path(directory))
        context = common.open_context(url, home=home, topology_file=topology_file)
        try:
            departments = admission.create_department_tree(context, count=admission.DEPARTMENTS)
            operator = identity.local_operator("secadmin")
            principals = [
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
            bodies = admission.order_bodies(context.topology)

            def batch(start: int) -> None:
                jobs = [
                    requests_service._Job(
                        principals[(start + i) % len(principals)],
                        requests_service.RequestCreate(**bodies[(start + i) % len(bodies)]),
                        None,
                        contextvars.copy_context(),
                        requests_service._ignore,
                    )
                    for i in range(arguments.size)
                ]
                requests_service._admit_jobs(context, jobs)
                for job in jobs:
                    job.result()  # raises what a caller would get

            for warm in range(5):
                batch(warm)
            for round_number in range(arguments.rounds):
                last = round_number == arguments.rounds - 1
                profile = cProfile.Profile() if arguments.profile and last else None
                cpu_s, wall_s = time.thread_time(), time.perf_counter()
                if profile is not None:
                    profile.enable()
                for index in range(arguments.batches):
                    batch(index * 7)
                if profile is not None:
                    profile.disable()
                cpu_s, wall_s = time.thread_time() - cpu_s, time.perf_counter() - wall_s
                admitted = arguments.batches * arguments.size
                print(
                    f"{arguments.backend} round {round_number}: CPU {cpu_s / admitted * 1e3:.3f} ms per "
                    f"admission, wall {wall_s / admitted * 1e3:.3f} ms{' (profiled)' if profile else ''}",
                    flush=True,
                )
                if profile is not None and arguments.profile is not None:
                    profile.dump_stats(arguments.profile)
                    pstats.Stats(profile).sort_stats("cumulative").print_stats(40)
        finally:
            context.close()


if __name__ == "__main__":
    main()
