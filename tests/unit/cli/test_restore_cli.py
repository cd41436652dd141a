"""``cloudctl restore``: the point before a time, its volumes and rewound data, and the loss; bad
input exits 2 with one line naming the field."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cloudctl import clock
from tests.unit.cli.test_cli import Cli, one_line_error


def protected_workload(cli: Cli, tmp_path: Path, *, offering: str = "volume.100g") -> str:
    """A silver workload of hrss with one write, written an hour before the CLI's clock."""
    from cloudctl.services import identity, provisioning, recovery
    from cloudctl.services import requests as requests_service
    from cloudctl.store import db
    from tests.conftest import make_context

    store = db.Store(db.sqlite_url(cli.home))
    ctx = make_context(store, clock.ManualClock(start=clock.SystemClock().now() - 3600), tmp_path)
    principal = identity.Principal(
        id="t", role="dept-admin", department="hrss", department_path=("qingdao", "hrss")
    )
    body = requests_service.RequestCreate(offering=offering, tier="silver", preferred_center="qd-a")
    request, _ = requests_service.submit(ctx, principal=principal, body=body)
    provisioning.reconcile(ctx, kind="request", object_id=request.id)
    workload = request.workload_id or ""
    recovery.write(ctx, workload, key="case/1", data=b"record 1")
    ctx.close()
    return workload


def test_restore_from_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # wide enough for whole ids
    cli = Cli(tmp_path / "home")
    cli("init")
    workload = protected_workload(cli, tmp_path)
    assert "1 replication point(s) taken, 0 failed" in cli("replication", "run").stdout
    at = clock.isoformat(time.time())

    plan = cli.json("restore", workload, "--at", at, "--dry-run")
    assert (plan["point"], plan["seq"], plan["dry_run"], plan["changes_lost"]) == (
        f"dz-dr/{workload}@1",
        1,
        True,
        0,
    )
    shown = cli("restore", workload, "--at", at, "--dry-run").stdout
    assert f"would restore in dz-dr to point dz-dr/{workload}@1" in shown
    assert "data lost up to" in shown

    failover = cli(
        "failover", "run", "--from", "qd-a", "--to", "dz-dr", "--unplanned", "--dry-run", "--at", at
    )
    assert f"{workload}: dz-dr/{workload}@1 (seq 1" in failover.stdout
    refused = cli("failover", "run", "--from", "qd-a", "--unplanned", "--point", "dz-dr/wl-nope@1", code=2)
    assert one_line_error(refused).startswith("error: point: ")

    done = cli.json("restore", workload, "--at", at)
    assert [v["name"] for v in done["volumes"]] == [f"rs-{workload}-0-1"]
    assert (done["objects_missing"], done["dry_run"]) == ([], False)

    for args, field in [
        (("--at", "2000-01-01T00:00:00Z"), "at"),
        (("--at", "2999-01-01T00:00:00Z"), "at"),
        (("--at", "tuesday"), "at"),
        (("--at", at, "--to", "qd-a"), "to"),
    ]:
        result = cli("restore", workload, *args, code=2)
        assert one_line_error(result).startswith(f"error: {field}: "), result.stderr
    result = cli("restore", "wl-nope", "--at", at, code=2)
    assert one_line_error(result) == "error: workload: no workload 'wl-nope'"


def test_restore_of_a_workload_with_no_volume_from_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    cli = Cli(tmp_path / "home")
    cli("init")
    workload = protected_workload(cli, tmp_path, offering="bucket.100g")
    at = clock.isoformat(time.time())
    refused = cli("restore", workload, "--at", at, code=2)  # no DR pass yet: no point
    assert one_line_error(refused).startswith("error: at: ")
    assert "1 replication point(s) taken, 0 failed" in cli("replication", "run").stdout
    at = clock.isoformat(time.time())

    shown = cli("restore", workload, "--at", at, "--dry-run").stdout
    assert f"would restore in dz-dr to point dz-dr/{workload}@1" in shown
    assert "from snapshot" not in shown  # no volume to make
    failover = cli(
        "failover", "run", "--from", "qd-a", "--to", "dz-dr", "--unplanned", "--dry-run", "--at", at
    )
    assert f"{workload}: dz-dr/{workload}@1 (seq 1" in failover.stdout

    done = cli.json("restore", workload, "--at", at)
    assert (done["point"], done["volumes"], done["objects_missing"]) == (f"dz-dr/{workload}@1", [], [])
