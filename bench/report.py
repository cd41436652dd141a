"""``python -m bench.report [results.json]``: the figures of a results file as Markdown, for README.md.

Prints the machine the run measured on and one table of every figure (subject, baseline,
ratio and how to read it), then the notes of each benchmark; nothing is measured here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

DEFAULT_RESULTS = Path(__file__).resolve().parent / "results.json"


def _number(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def markdown(document: dict[str, Any]) -> str:
    machine = document.get("machine", {})
    memory = (machine.get("free_h") or "").splitlines()
    lines = [
        f"Run `{document.get('command', 'python -m bench')}` at {document.get('generated_at', '?')} on "
        f"{machine.get('nproc', '?')} cores ({machine.get('processor', '?')}), "
        f"Python {machine.get('python', '?')}, {machine.get('platform', '?')}.",
        "",
        "```",
        "$ nproc",
        str(machine.get("nproc", "?")),
        "$ free -h",
        *memory,
        "```",
        "",
        "| benchmark | figure | unit | subject | baseline | ratio | read ratio as |",
        "| --- | --- | --- | ---: | ---: | ---: | --- |",
    ]
    for name, result in document.get("benchmarks", {}).items():
        label = f"{name}{' (smoke)' if result.get('smoke') else ''}"
        for figure in result.get("figures", []):
            lines.append(
                f"| {label} | {figure['name']} | {figure['unit']} | {_number(figure['subject'])} | "
                f"{_number(figure['baseline'])} | {_number(figure['ratio'])} | {figure['ratio_meaning']} |"
            )
            label = ""
    lines.append("")
    for name, result in document.get("benchmarks", {}).items():
        lines.append(
            f"**{name}** — baseline: {result.get('baseline', '')}; took {result.get('duration_s')} s."
        )
        lines += [f"- {note}" for note in result.get("notes", [])]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    path = Path(arguments[0]) if arguments else DEFAULT_RESULTS
    print(markdown(json.loads(path.read_text(encoding="utf-8"))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
