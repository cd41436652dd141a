"""``cloudctl infra``: engine commands fail cleanly without the engine; ``diff`` shows drift without it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from cloudctl.cli import commands_core, commands_infra, commands_org, main
from cloudctl.drivers.pulumi import automation
from tests.conftest import TOPOLOGY
from tests.support import operators


@pytest.fixture
def app() -> typer.Typer:
    """The global options of ``cloudctl`` with the command groups these tests use."""
    result = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)
    result.callback()(main.main)
    commands_core.register(result)
    commands_org.register(result)
    commands_infra.register(result)
    return result


@pytest.fixture
def no_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


class Cli:
    def __init__(self, app: typer.Typer, home: Path) -> None:
        self.app = app
        self.home = home
        self.runner = CliRunner()

    def __call__(self, *args: str, code: int = 0) -> Any:
        argv = [
            "--home",
            str(self.home),
            "--topology",
            str(TOPOLOGY),
            *operators.break_glass(list(args)),
            *main.hoist_global_options(list(args)),
        ]
        result = self.runner.invoke(self.app, argv)
        assert result.exit_code == code, (
            f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
        )
        return result

    def json(self, *args: str, code: int = 0) -> Any:
        return json.loads(self(*args, "-o", "json", code=code).stdout)


@pytest.fixture
def cli(app: typer.Typer, tmp_path: Path) -> Cli:
    return Cli(app, tmp_path / "home")


def one_line_error(result: Any) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize("operation", ["preview", "up", "refresh"])
@pytest.mark.usefixtures("no_engine")
def test_without_the_engine_each_stack_command_exits_3_saying_how_to_install_it(
    cli: Cli, operation: str
) -> None:
    result = cli("infra", operation, "--center", "qd-a", code=3)
    assert one_line_error(result) == f"error: {automation.INSTALL_HINT}"
    assert not (cli.home / "pulumi").exists()


@pytest.mark.usefixtures("no_engine")
def test_an_unknown_center_is_bad_input_before_the_engine_is_looked_for(cli: Cli) -> None:
    result = cli("infra", "preview", "--center", "atlantis", code=2)
    assert one_line_error(result).startswith("error: center: ")


@pytest.mark.usefixtures("no_engine")
def test_a_center_without_foundation_is_bad_input(cli: Cli) -> None:
    result = cli("infra", "up", "--center", "mgmt", code=2)
    assert "holds no foundation" in one_line_error(result)


@pytest.mark.usefixtures("no_engine")
def test_diff_needs_no_engine_and_shows_a_changed_limit(cli: Cli) -> None:
    cli("init")
    clean = cli.json("infra", "diff")
    assert clean["differences"] == []
    assert clean["centers"] == ["qd-a", "qd-b", "dz-dr"]
    assert "no drift" in cli("infra", "diff").stdout

    cli("quota", "set", "psb-traffic", "--center", "qd-b", "--volume-gb", "1000")
    drift = cli.json("infra", "diff", "--center", "qd-b")
    assert drift["differences"] == [
        {
            "kind": "project",
            "center": "qd-b",
            "name": "psb-traffic",
            "field": "quota.gigabytes",
            "declared": 3200,
            "stored": 1000,
        }
    ]
    assert "quota.gigabytes" in cli("infra", "diff").stdout
    failed = cli("infra", "diff", "--fail-on-drift", code=1)
    assert "1 difference between" in one_line_error(failed)


def test_diff_before_init_says_to_run_init(cli: Cli) -> None:
    result = cli("infra", "diff", code=2)
    assert "run `cloudctl init` first" in one_line_error(result)


def test_an_engine_that_fails_exits_1_with_its_last_word_in_one_line(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    engine = bin_dir / "pulumi"  # a stand-in for the engine process, at cloudctl's boundary
    engine.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = version ]; then echo v3.272.0; exit 0; fi\n'
        'echo "error: refused: $*" >&2\n'
        "exit 255\n",
        encoding="utf-8",
    )
    engine.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    cli("init")  # the engine runs only once the break-glass use is recorded in the state
    result = cli("infra", "preview", "--center", "qd-a", code=1)
    line = one_line_error(result)
    assert line.startswith("error: pulumi: preview of stack 'qd-a' failed: error: refused: ")
    with sqlite3.connect(cli.home / "state.db") as raw:
        used = raw.execute("SELECT role, detail FROM audit_records WHERE action = 'break-glass'").fetchall()
    assert [(role, json.loads(detail)["reason"]) for role, detail in used] == [("sysadmin", operators.REASON)]


@pytest.mark.usefixtures("no_engine")
def test_a_stack_command_without_an_identity_exits_2_and_runs_nothing(
    app: typer.Typer, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    argv = ["--home", str(home), "--topology", str(TOPOLOGY), "infra", "up", "--center", "qd-a"]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2
    assert one_line_error(result).startswith("error: as: this command acts on the database directly")
    assert not home.exists()
