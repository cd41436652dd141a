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
from tests.unit.cli.transports import Canned

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


@pytest.fixture
def answering(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("CLOUDCTL_API", "http://127.0.0.1:8080")
    monkeypatch.setenv("CLOUDCTL_TOKEN", TOKEN)
    monkeypatch.setenv("COLUMNS", "300")

    def answer(body: Any) -> None:
        monkeypatch.setattr(client, "open_transport", lambda api: Canned(200, body))

    return answer


KEYS = ["reports/[/]2026.csv", "[bold red]ledger[/].xlsx"]
"""Object keys a department chose: any text."""


def test_restore_names_missing_objects_as_their_keys_read(answering: Any) -> None:
    answering(
        {
            "workload_id": "wl-1",
            "dry_run": False,
            "center": "qd-a",
            "point": "pt-1",
            "seq": 3,
            "consistent_at": "2026-12-01T00:00:00Z",
            "volumes": [{"name": "[/]data", "of": "vm-1", "restored_from": "snap-1", "id": None}],
            "objects_rewound": [],
            "objects_removed": [],
            "objects_missing": KEYS,
            "at": "2026-12-01T00:00:00Z",
            "changes_lost": 0,
            "data_lost_s": 0.0,
        }
    )
    result = invoke("restore", "wl-1", "--at", "2026-12-01T00:00:00Z")
    assert result.exit_code == 1, result.stderr  # objects missing
    assert f"2 missing ({', '.join(KEYS)})" in result.stdout
    assert "[/]data" in result.stdout


def test_scrub_shows_repaired_keys_and_errors_as_they_read(answering: Any) -> None:
    answering(
        {
            "data": [
                {
                    "workload_id": "wl-1",
                    "source": "qd-a",
                    "target": "qd-b",
                    "mismatches": KEYS,
                    "error": "[/]",
                }
            ]
        }
    )
    result = invoke("replication", "scrub")
    assert result.exit_code == 1, result.stderr  # a stream failed
    assert ", ".join(KEYS) in result.stdout and "│ [/]" in result.stdout


def test_audit_export_keeps_a_record_holding_a_line_separator_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = [{"seq": 1, "reason": "line\u2028separator\u2029paragraph\x85"}, {"seq": 2, "reason": "ok"}]
    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("CLOUDCTL_API", "http://127.0.0.1:8080")
    monkeypatch.setenv("CLOUDCTL_TOKEN", TOKEN)
    monkeypatch.setattr(client, "open_transport", lambda api: Canned(200, body))
    target = tmp_path / "audit.jsonl"
    result = invoke("-o", "json", "audit", "export", "--file", str(target))
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"path": str(target), "records": 2, "first_seq": 1, "last_seq": 2}
    assert target.read_bytes() == body


@pytest.mark.parametrize(
    "body", [b'{"seq": 1}\nnot json\n', b'{"seq": 1}\n{"no": "seq"}\n', b"\xff\xfe\n", b"[1]\n"]
)
def test_audit_export_of_anything_but_records_writes_nothing(
    body: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("CLOUDCTL_API", "http://127.0.0.1:8080")
    monkeypatch.setenv("CLOUDCTL_TOKEN", TOKEN)
    monkeypatch.setattr(client, "open_transport", lambda api: Canned(200, body))
    target = tmp_path / "audit.jsonl"
    result = invoke("audit", "export", "--file", str(target))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: api: the API's export is not audit records, one a line (line ")
    assert not target.exists() and list(tmp_path.glob("*.jsonl*")) == []
