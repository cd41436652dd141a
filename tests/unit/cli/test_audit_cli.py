"""``cloudctl audit``: verify, checkpoint and key rotation from the command line."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.unit.cli.test_cli import Cli


def test_a_checkpoint_makes_a_truncated_log_fail_verification(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home")
    cli("init")
    cli("dept", "create", "cli-office", "--name", "命令行办公室", "--parent", "shinan")
    cli("quota", "set", "cli-office", "--center", "qd-a", "--vcpu", "4")
    written = cli.json("audit", "checkpoint")
    with sqlite3.connect(tmp_path / "home" / "state.db") as raw:
        actions = [row[0] for row in raw.execute("SELECT action FROM audit_records ORDER BY seq")]
    # each console command breaks glass first: its record, then the command's own
    assert actions == ["break-glass", "org.create", "break-glass", "quota.set", "break-glass"]
    assert (written["written"], written["seq"]) == (True, 5)
    assert oct((tmp_path / "home" / "audit-checkpoints.jsonl").stat().st_mode & 0o777) == "0o600"
    assert "checkpoint 5" in cli("audit", "verify").stdout
    with sqlite3.connect(tmp_path / "home" / "state.db") as raw:
        first = raw.execute("SELECT hash FROM audit_records WHERE seq = 1").fetchone()[0]
        raw.execute("DELETE FROM audit_records WHERE seq > 1")
        raw.execute("UPDATE audit_head SET seq = 1, hash = ?", (first,))
    result = cli("audit", "verify", code=1)
    assert "records were removed" in result.stdout
    assert cli("audit", "checkpoint", code=1).stdout.startswith("no checkpoint written")


def test_a_rotated_key_signs_what_follows(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home")
    cli("init")
    cli("quota", "set", "shinan", "--center", "qd-a", "--vcpu", "40")
    rotated = cli.json("audit", "key", "rotate")
    cli("quota", "set", "shinan", "--center", "qd-a", "--vcpu", "41")
    records = cli.json("audit", "list")
    assert records[-1]["key_id"] == rotated["key_id"] != records[0]["key_id"]
    assert [record["action"] for record in records][-4:] == [
        "audit.key-rotate",
        "break-glass",
        "quota.set",
        "break-glass",
    ]
    own = [record for record in records if record["action"] != "break-glass"]
    assert own[-2]["action"] == "audit.key-rotate"
    assert own[-1]["action"] == "quota.set" and own[-1]["key_id"] == rotated["key_id"]
    verified = cli.json("audit", "verify")
    assert verified["ok"] and verified["key_ids"] == [records[0]["key_id"], rotated["key_id"]]


def test_an_export_at_the_console_holds_every_record(tmp_path: Path) -> None:
    # the in-process API said the client had gone once the request was read: the streamed
    # export stopped before its first line, and an empty file was reported as "0 record(s)"
    cli = Cli(tmp_path / "home")
    cli("init")
    cli("dept", "create", "cli-office", "--name", "命令行办公室", "--parent", "shinan")
    target = tmp_path / "export" / "audit.jsonl"
    exported = cli.json("audit", "export", "--file", str(target))
    with sqlite3.connect(tmp_path / "home" / "state.db") as raw:
        seqs = [row[0] for row in raw.execute("SELECT seq FROM audit_records ORDER BY seq")]
    lines = target.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["seq"] for line in lines] == seqs
    assert (exported["records"], exported["last_seq"]) == (len(seqs), seqs[-1])


def test_an_export_is_its_owners_alone_and_a_bad_destination_leaves_nothing(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home")
    cli("init")
    target = tmp_path / "audit.jsonl"
    cli("audit", "export", "--file", str(target))
    assert oct(target.stat().st_mode & 0o777) == "0o600"  # every department's records

    (tmp_path / "a-directory").mkdir()
    with sqlite3.connect(tmp_path / "home" / "state.db") as raw:
        before = raw.execute("SELECT count(*) FROM audit_records").fetchone()[0]
    result = cli("audit", "export", "--file", str(tmp_path / "a-directory"), code=2)
    assert (
        result.stderr.strip()
        == f"error: file: cannot write {str(tmp_path / 'a-directory')!r}: Is a directory"
    )
    with sqlite3.connect(tmp_path / "home" / "state.db") as raw:
        assert raw.execute("SELECT count(*) FROM audit_records").fetchone()[0] == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a-directory", "audit.jsonl", "home"]
