"""Tuning real backends from the command line's point of view: a bad ``calls:`` value in the
topology or a bad breaker setting in the environment is one line on stderr and exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import TOPOLOGY
from tests.unit.cli.test_cli import Cli, one_line_error


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "home")


def test_a_bad_calls_value_exits_2_naming_its_path_and_writes_nothing(cli: Cli, tmp_path: Path) -> None:
    data = yaml.safe_load(TOPOLOGY.read_text(encoding="utf-8"))
    data["centers"][1]["drivers"] = {"object_storage": "s3"}
    data["centers"][1]["backends"] = {
        "s3": {"endpoint_url": "http://127.0.0.1:9000", "calls": {"attempts": 0, "timeout_s": 0.5}}
    }
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")

    result = cli("init", str(broken), code=2)

    assert one_line_error(result) == (
        "error: centers[1].backends.s3.calls.attempts: input should be greater than or equal to 1"
    )
    assert not (cli.home / "state.db").exists()


def test_a_bad_breaker_setting_exits_2_naming_it(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDCTL_BREAKER_COOLDOWN_S", "-1")

    result = cli("status", code=2)

    assert one_line_error(result) == "error: breaker_cooldown_s: input should be greater than 0, not '-1'"
