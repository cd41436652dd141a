"""``python -m bench [NAME] [--size N] [--smoke]``: run the benchmarks, print a table, write results.

Without a name every benchmark runs at its default size; with a name, that one runs (``--size``
sets its size parameter). Results go to ``bench/results.json`` (``--output`` elsewhere); a
single benchmark's result replaces its entry and keeps the others. A benchmark that fails is
recorded with its error and makes the exit code 1; the others still run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from rich.console import Console
from rich.table import Table

from bench import (
    admission,
    cli_start,
    common,
    portal,
    provisioning,
    provisioning_openstack,
    quota,
    recovery,
    s3_sync,
    scale,
)

BENCHMARKS: dict[str, ModuleType] = {
    module.NAME: module
    for module in (
        admission,
        quota,
        s3_sync,
        scale,
        recovery,
        provisioning,
        provisioning_openstack,
        cli_start,
        portal,
    )
}
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results.json"


def _format(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def table(results: list[common.BenchResult]) -> Table:
    view = Table(title="cloudctl benchmarks (ratio = subject / baseline, measured side by side)")
    for column in ("benchmark", "figure", "unit", "subject", "baseline", "ratio", "read ratio as"):
        view.add_column(column, justify="right" if column in ("subject", "baseline", "ratio") else "left")
    for result in results:
        label = f"{result.name}{' (smoke)' if result.smoke else ''}"
        for figure in result.figures:
            view.add_row(
                label,
                figure.name,
                figure.unit,
                _format(figure.subject),
                _format(figure.baseline),
                _format(figure.ratio),
                figure.ratio_meaning,
            )
            label = ""
        if not result.figures:
            view.add_row(label, "no figures", "", "", "", "", "; ".join(result.notes)[:80])
    return view


def write_results(path: Path, results: list[common.BenchResult], *, argv: list[str]) -> None:
    document: dict[str, Any] = {"benchmarks": {}}
    if path.exists():
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            document = {"benchmarks": {}}
    document["generated_at"] = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    document["command"] = " ".join(["python -m bench", *argv])
    document["machine"] = common.machine()
    document.setdefault("benchmarks", {})
    for result in results:
        document["benchmarks"][result.name] = result.as_json()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", choices=sorted(BENCHMARKS), help="one benchmark (default: all)")
    parser.add_argument("--size", type=int, help="the benchmark's size parameter (see bench/README.md)")
    parser.add_argument(
        "--smoke", action="store_true", help="the smallest size, in seconds: does it still work"
    )
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3; 1 with --smoke)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="results file (JSON)")
    arguments = parser.parse_args(argv)
    if arguments.size is not None and arguments.name is None:
        parser.error("--size needs a benchmark name")
    names = [arguments.name] if arguments.name else list(BENCHMARKS)
    console = Console()
    if not console.is_terminal:
        console = Console(width=180)
    results: list[common.BenchResult] = []
    failed = False
    for name in names:
        console.print(f"[bold]{name}[/bold] …")
        started = time.perf_counter()
        try:
            result = BENCHMARKS[name].run(size=arguments.size, smoke=arguments.smoke, rounds=arguments.rounds)
        except Exception as error:
            failed = True
            result = common.BenchResult(
                name=name, size=arguments.size or 0, smoke=arguments.smoke, baseline="(failed)"
            )
            result.notes.append(f"failed: {type(error).__name__}: {error}")
            result.details["traceback"] = traceback.format_exc()
            console.print(f"[red]{name} failed[/red]: {error}")
        result.duration_s = round(time.perf_counter() - started, 1)
        results.append(result)
        for note in result.notes:
            console.print(f"  [dim]{note}[/dim]")
        write_results(arguments.output, results, argv=argv)
    console.print(table(results))
    console.print(f"results written to {arguments.output}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
