"""Careless and hostile values for options and arguments: each refused with one line naming it
(exit 2) before anything is sent or changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cloudctl.cli import client, main

TOKEN = "cct_0123456789abcdef.secret"


class Untouched:
    """A transport that must not be used: the command refuses its input first."""

    def request(
        self, method: str, target: str, *, headers: dict[str, str], body: bytes | None
    ) -> client.Reply:
        raise AssertionError(f"sent {method} {target}")

    def close(self) -> None:
        pass


@pytest.fixture(autouse=True)
def logged_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("CLOUDCTL_API", "http://127.0.0.1:8080")
    monkeypatch.setenv("CLOUDCTL_TOKEN", TOKEN)
    monkeypatch.setattr(client, "open_transport", lambda api: Untouched())


def invoke(*args: str) -> Any:
    result = CliRunner().invoke(main.app, main.hoist_global_options(list(args)))
    assert not result.exception or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999", "NaN", "Infinity"])
@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["request", "approve", "req-1", "--wait"], "wait"),
        (["failover", "run", "--from", "qd-a", "--timeout"], "timeout"),
        (["failover", "resume", "run-1", "--timeout"], "timeout"),
        (["failback", "--to", "qd-a", "--timeout"], "timeout"),
        (["drill", "resume", "run-1", "--timeout"], "timeout"),
        (["token", "create", "--role", "auditor", "--expires-in-days"], "expires-in-days"),
    ],
)
def test_a_number_that_is_not_finite_is_refused_naming_the_option(
    args: list[str], field: str, value: str
) -> None:
    result = invoke(*args, value)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {field}: must be a finite number, not {value!r}")
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize("reference", ["a" * 300, "a" * 65536])
def test_a_drill_plan_no_file_can_be_named_by_is_refused_naming_the_plan(reference: str) -> None:
    result = invoke("drill", "run", reference)
    assert result.exit_code == 2
    assert result.stderr == "error: plan: no drill plan can be named so: File name too long\n"


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["quota", "show", "\udcff"], "node"),
        (["quota", "reserve", "hrss", "--center", "qd-a", "--purpose", "a\udcffb"], "purpose"),
        (["failover", "run", "--from", "\udcff", "--dry-run"], "from"),
        (["--as", "sysadmin", "--reason", "\udcff", "status"], "reason"),
        (["token", "revoke", "\udcfe"], "token"),
    ],
)
def test_text_that_is_not_utf8_is_refused_naming_it(args: list[str], field: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {field}: not UTF-8 text (byte 0x")
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["failover", "run", "--from", "qd-a", "--dry-run", "--hooks", "{file}"], "hooks"),
        (["failback", "--to", "qd-a", "--dry-run", "--hooks", "{file}"], "hooks"),
        (["drill", "run", "{file}"], "plan"),
    ],
)
@pytest.mark.parametrize("device", [False, True])
def test_a_yaml_file_that_is_a_device_or_huge_is_refused_unread(
    args: list[str], field: str, device: bool, tmp_path: Path
) -> None:
    path = Path("/dev/null")  # a device, as /dev/zero is: that one is read until memory runs out
    if not device:
        path = tmp_path / "huge.yaml"
        path.write_text("# padding\n" * 200_000, encoding="utf-8")
    result = invoke(*[arg.format(file=path) for arg in args])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {field}: {str(path)!r} is a device, or over 1048576 bytes: not a file to read\n"
    )
