"""Paths and text a person typed, printed back in a line or a title: shown as typed, never read
as rich markup (a ``[/]`` in a file name crashed the command after it had acted)."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from cloudctl.cli import client, main, output
from tests.conftest import POLICIES, TOPOLOGY

TOKEN = "cct_0123456789abcdef.secret"


class Export:
    """A transport answering the audit export with two records."""

    def request(
        self, method: str, target: str, *, headers: dict[str, str], body: bytes | None
    ) -> client.Reply:
        lines = [json.dumps({"seq": seq, "action": "token.create"}) for seq in (1, 2)]
        return client.Reply(status=200, headers={}, body=("\n".join(lines) + "\n").encode())

    def close(self) -> None:
        pass


def invoke(*args: str) -> Any:
    result = CliRunner().invoke(main.app, main.hoist_global_options(list(args)))
    assert not result.exception or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


@pytest.mark.parametrize("name", ["export[/].jsonl", "export[bold red]x.jsonl"])
def test_audit_export_names_the_file_it_wrote_as_typed(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("CLOUDCTL_API", "http://127.0.0.1:8080")
    monkeypatch.setenv("CLOUDCTL_TOKEN", TOKEN)
    monkeypatch.setattr(client, "open_transport", lambda api: Export())
    target = tmp_path / name
    result = invoke("audit", "export", "--file", str(target))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.replace("\n", "") == f"exported 2 record(s) to {target}"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_init_names_a_home_holding_markup_as_typed(tmp_path: Path) -> None:
    home = tmp_path / "home[/]"
    result = invoke("--home", str(home), "--topology", str(TOPOLOGY), "--policies", str(POLICIES), "init")
    assert result.exit_code == 0, result.stderr
    assert str(home / "state.db") in result.stdout.replace("\n", "")


def test_a_table_title_is_shown_as_its_text() -> None:
    console = Console(width=100, record=True)
    console.print(output.table("differences in /srv/topo[/]\x1b[2J.yaml", ["a"], [["1"]]))
    assert "differences in /srv/topo[/]\\x1b[2J.yaml" in console.export_text().replace("\n", "")
