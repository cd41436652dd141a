"""The ``cloudctl`` command: exit codes, one-line errors, stable JSON, and the demo."""

from __future__ import annotations

import json
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from cloudctl.cli import main
from tests.conftest import POLICIES, TOPOLOGY
from tests.support import operators


class Cli:
    def __init__(self, home: Path, database_url: str | None = None) -> None:
        self.home = home
        self.database_url = database_url
        self.runner = CliRunner()

    def __call__(self, *args: str, code: int = 0, role: str | None = None) -> Any:
        argv = ["--home", str(self.home), "--topology", str(TOPOLOGY), "--policies", str(POLICIES)]
        argv.append("--simulated-time")  # waits advance a simulated clock: no test sleeps
        if self.database_url:
            argv += ["--database-url", self.database_url]
        argv += operators.break_glass(list(args), role=role)
        result = self.runner.invoke(main.app, argv + main.hoist_global_options(list(args)))
        assert result.exit_code == code, (
            f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
        )
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json").stdout)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "home")


@pytest.fixture
def ready(cli: Cli) -> Cli:
    cli("init")
    return cli


def one_line_error(result: Any) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_the_state_is_readable_by_its_owner_alone(cli: Cli) -> None:
    cli("init")
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in cli.home.iterdir()}
    assert modes["state.db"] == 0o600
    assert stat.S_IMODE(cli.home.stat().st_mode) == 0o700


def test_init_creates_the_state_and_is_safe_to_run_again(cli: Cli) -> None:
    first = cli.json("init")
    assert first["outcome"] == "initialised"
    assert first["centers"] == 4
    assert first["org_nodes_created"] >= 24
    again = cli("init")
    assert "already initialised" in again.stdout
    reapplied = cli.json("init", "--force")
    assert (reapplied["outcome"], reapplied["org_nodes_created"]) == ("reapplied", 0)


def test_an_invalid_topology_exits_2_naming_the_path_and_writes_nothing(cli: Cli, tmp_path: Path) -> None:
    data = yaml.safe_load(TOPOLOGY.read_text(encoding="utf-8"))
    data["centers"][2]["capacity"]["vcpu"] = "many"
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    result = cli("init", str(broken), code=2)
    assert one_line_error(result).startswith("error: centers[2].capacity.vcpu: ")
    assert not (cli.home / "state.db").exists()


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["init", "{file}"], "topology"),
        (["drill", "show", "{file}"], "plan"),
        (["drill", "run", "{file}"], "plan"),
        (["failover", "run", "--from", "qd-a", "--planned", "--dry-run", "--hooks", "{file}"], "hooks"),
        (["login", "--api", "http://127.0.0.1:9", "--token-file", "{file}"], "token-file"),
    ],
)
def test_a_file_that_is_not_utf8_is_one_line_naming_it(
    ready: Cli, tmp_path: Path, args: list[str], field: str
) -> None:
    binary = tmp_path / "latin1.yaml"
    binary.write_bytes("name: caf\u00e9\n".encode("latin-1"))
    result = ready(*[arg.format(file=binary) for arg in args], code=2)
    assert one_line_error(result) == (
        f"error: {field}: cannot read {str(binary)!r}: not UTF-8 text (byte 0xe9 at offset 9)"
    )


def test_default_files_missing_from_the_working_directory_are_named_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run away from a checkout, the default topology and policies are relative paths: the error
    says where they were looked for, so the operator knows to pass ``--topology``/``--policies``."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    runner = CliRunner()
    home = ["--home", str(tmp_path / "home")]

    init = runner.invoke(main.app, [*home, "init"])
    assert init.exit_code == 2
    assert one_line_error(init) == (
        f"error: topology: no such file 'infra/topology.yaml' (relative to {str(elsewhere)!r})"
    )
    assert not (tmp_path / "home" / "state.db").exists()

    assert runner.invoke(main.app, [*home, "--topology", str(TOPOLOGY), "init"]).exit_code == 0
    refused = runner.invoke(main.app, [*home, "--as", "secadmin", "--reason", "probe", "token", "list"])
    assert refused.exit_code == 2
    assert one_line_error(refused) == (
        f"error: policies: no directory of Cedar policies at 'policies' (relative to {str(elsewhere)!r})"
    )
    break_glass = ["--as", "secadmin", "--reason", "probe"]
    listed = runner.invoke(main.app, [*home, "--policies", str(POLICIES), *break_glass, "token", "list"])
    assert listed.exit_code == 0, listed.stderr


def test_state_of_the_previous_schema_is_named_and_init_upgrades_it_keeping_it(
    ready: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cloudctl.store import db, migrations

    token = ready.json("token", "create", "--role", "auditor", "--name", "kept")["token"]["id"]
    store = db.Store(db.sqlite_url(ready.home))
    migrations.downgrade(store.engine, "-1")  # as the cloudctl before this one left it
    previous = migrations.current_revision(store.engine)
    head = migrations.script_head()
    assert previous is not None and previous != head

    refused = ready("token", "list", code=2)
    assert one_line_error(refused) == (
        f"error: home: the cloudctl state at {ready.home / 'state.db'} is at schema revision {previous} "
        f"and this cloudctl needs {head}: run `cloudctl init` to upgrade it in place (what it holds is kept)"
    )
    monkeypatch.setenv("COLUMNS", "400")  # one line for the whole path, however deep the test's home
    upgraded = ready("init")
    said = " ".join(upgraded.stdout.split())
    assert (
        f"upgraded the schema of {ready.home / 'state.db'} from revision {previous}; what it held is kept"
        in said
    )
    assert migrations.current_revision(store.engine) == head
    assert [t["id"] for t in ready.json("token", "list")] == [token]
    assert ready.json("init")["schema_upgraded_from"] is None  # once only
    store.dispose()


def test_state_written_by_a_newer_cloudctl_is_refused_and_left_alone(ready: Cli) -> None:
    import sqlalchemy as sa

    from cloudctl.store import db, migrations

    store = db.Store(db.sqlite_url(ready.home))
    with store.engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = 'f00d'"))
    head = migrations.script_head()
    expected = (
        f"error: home: the cloudctl state at {ready.home / 'state.db'} is at schema revision f00d, which "
        f"this cloudctl does not know (its newest is {head}): it was written by a newer cloudctl; run that "
        "one or a newer one"
    )

    assert one_line_error(ready("status", code=2)) == expected
    assert one_line_error(ready("init", code=2)) == expected
    assert one_line_error(ready("init", "--force", code=2)) == expected
    assert migrations.current_revision(store.engine) == "f00d"
    store.dispose()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["quota", "set"], "error: node: required (see 'cloudctl quota set --help')"),
        (
            ["quota", "reserve", "hrss-insurance", "--vcpu", "2"],
            "error: center: required (see 'cloudctl quota reserve --help')",
        ),
        (
            ["quota", "set", "hrss-insurance", "--center", "qd-a", "--ram-gb", "lots"],
            "error: ram-gb: Input should be a valid integer, unable to parse string as an integer "
            "(see 'cloudctl quota set --help')",
        ),
        (
            ["quota", "set", "hrss-insurance", "--center", "qd-a", "--vcpu", "-5"],
            "error: vcpu: Input should be greater than or equal to 0 (see 'cloudctl quota set --help')",
        ),
        (
            ["quota", "set", "hrss-insurance", "--bogus"],
            "error: usage: No such option: --bogus (see 'cloudctl quota set --help')",
        ),
        (["bogus"], "error: usage: No such command 'bogus' (see 'cloudctl --help')"),
        # An option given twice would keep the last value silently: which did the operator mean?
        (
            ["quota", "set", "hrss-insurance", "--center", "qd-a", "--vcpu", "8", "--vcpu=80"],
            "error: vcpu: given more than once: say it once (see 'cloudctl quota set --help')",
        ),
        (
            ["quota", "set", "hrss-insurance", "--center", "qd-a", "--center", "qd-b", "--vcpu", "8"],
            "error: center: given more than once: say it once (see 'cloudctl quota set --help')",
        ),
        (
            ["-o", "json", "quota", "set", "hrss-insurance", "--center", "qd-a", "--vcpu", "8", "-o", "yaml"],
            "error: output: given more than once: say it once (see 'cloudctl --help')",
        ),
    ],
)
def test_a_usage_error_is_one_line_naming_the_field_and_changes_nothing(
    ready: Cli, args: list[str], expected: str
) -> None:
    before = ready.json("quota", "show", "hrss-insurance", "--center", "qd-a")

    result = ready(*args, code=2)

    assert one_line_error(result) == expected
    assert ready.json("quota", "show", "hrss-insurance", "--center", "qd-a") == before


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["request", "list", "--state", "bogus"], "error: state: 'bogus' is not a request state ("),
        (["request", "list", "--dept", "bogus"], "error: dept: no org node 'bogus'"),
        (["workload", "list", "--tier", "bogus"], "error: tier: no tier 'bogus' (known: "),
        (["workload", "list", "--dept", "bogus"], "error: dept: no org node 'bogus'"),
    ],
)
def test_a_list_filter_with_an_unknown_value_is_refused_not_answered_empty(
    ready: Cli, args: list[str], expected: str
) -> None:
    """A typo in a filter must not look like "nothing pending": it names the option instead."""
    assert one_line_error(ready(*args, code=2)).startswith(expected)


def test_a_state_file_that_is_not_a_database_is_one_line_and_kept_as_it_is(cli: Cli) -> None:
    cli.home.mkdir()
    damaged = b"\x00not a cloudctl store\xff" * 512
    (cli.home / "state.db").write_bytes(damaged)

    for args in (["status"], ["init"]):
        result = cli(*args, code=2)
        assert one_line_error(result) == (
            f"error: database: the store at {cli.home / 'state.db'} cannot be read (file is not a "
            "database): restore it from a backup"
        )
    assert (cli.home / "state.db").read_bytes() == damaged


def test_a_home_that_is_not_a_directory_is_one_line(cli: Cli) -> None:
    cli.home.write_text("a file, not a directory\n", encoding="utf-8")

    result = cli("init", code=2)

    assert one_line_error(result) == f"error: home: cannot make the state directory {cli.home}: File exists"
    assert cli.home.read_text(encoding="utf-8") == "a file, not a directory\n"


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["request", "approve", ""], "request"),
        (["workload", "show", "../../v1/tokens"], "workload"),
        (["dept", "show", "hrss/x"], "node"),
        (["failover", "show", "/"], "run"),
    ],
)
def test_an_id_that_cannot_be_one_names_its_argument(ready: Cli, args: list[str], field: str) -> None:
    """An id is one path segment of the API: an empty one or one with '/' names the argument,
    not the API's bare "Not Found"."""
    assert one_line_error(ready(*args, code=2)) == f"error: {field}: {args[-1]!r} is not an id"


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_metrics_asked_for_data_is_refused_rather_than_printing_the_exposition(ready: Cli, fmt: str) -> None:
    result = ready("metrics", "-o", fmt, code=2)
    assert result.stdout == ""
    assert one_line_error(result) == (
        "error: output: metrics prints the Prometheus text exposition only: leave out -o"
    )


@pytest.mark.parametrize(
    ("where", "reason"),
    [
        ("no/x.prom", "No such file or directory"),
        ("a-file/x.prom", "Not a directory"),
        ("", "Is a directory"),
    ],
)
def test_metrics_write_to_a_place_it_cannot_is_refused_before_breaking_glass(
    ready: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str, reason: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("kept\n", encoding="utf-8")
    before = audit_count(ready)
    result = ready("metrics", "--write", where, code=2)
    assert one_line_error(result) == f"error: write: cannot write {str(Path(where))!r}: {reason}"
    assert audit_count(ready) == before  # not even the break-glass: nothing was done
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a-file", "home"]


def audit_count(cli: Cli) -> int:
    with sqlite3.connect(cli.home / "state.db") as db:
        return int(db.execute("SELECT count(*) FROM audit_records").fetchone()[0])


@pytest.mark.parametrize("token", ["cct_abc\nX-Injected: 1", "cct_\u4e2d\u6587", "cct_a\x1bb"])
@pytest.mark.parametrize("source", ["CLOUDCTL_TOKEN", "token-file", "context"])
def test_a_token_that_cannot_be_a_header_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, token: str, source: str
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("CLOUDCTL_TOKEN", raising=False)
    monkeypatch.delenv("CLOUDCTL_API", raising=False)
    api = "http://127.0.0.1:9"  # nothing listens: the token must be refused before any call
    argv = ["status"]
    if source == "CLOUDCTL_TOKEN":
        monkeypatch.setenv("CLOUDCTL_API", api)
        monkeypatch.setenv("CLOUDCTL_TOKEN", token)
    elif source == "token-file":
        monkeypatch.setenv("CLOUDCTL_API", api)
        (tmp_path / "token").write_text(token, encoding="utf-8")
        argv = ["--token-file", str(tmp_path / "token"), "status"]
    else:
        from cloudctl.cli import contexts

        config = contexts.Config(path=contexts.config_path(), current="mgmt")
        config.contexts["mgmt"] = contexts.Context(name="mgmt", api=api, token=token)
        contexts.save(config)
    result = CliRunner().invoke(main.app, argv)
    assert result.exit_code == 2, (result.exception, result.stderr)
    field = {"CLOUDCTL_TOKEN": "CLOUDCTL_TOKEN", "token-file": "token-file", "context": "contexts.mgmt.token"}
    assert one_line_error(result) == f"error: {field[source]}: not a cloudctl token (they start with cct_)"


def test_a_config_file_nested_too_deep_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    path = tmp_path / "cloudctl" / "config.yaml"
    path.parent.mkdir()
    path.write_text("contexts: " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    path.chmod(0o600)
    result = CliRunner().invoke(main.app, ["config", "get-contexts"])
    assert result.exit_code == 2, result.exception
    assert one_line_error(result) == f"error: config: {path} is not valid YAML"


def test_commands_before_init_say_to_run_init(cli: Cli) -> None:
    result = cli("status", code=2)
    assert "run `cloudctl init` first" in one_line_error(result)


def test_a_command_on_a_home_that_does_not_exist_creates_nothing(cli: Cli) -> None:
    """A mistyped ``--home`` is refused; no empty state is left behind to be mistaken for one."""
    for args in (["status"], ["token", "list"], ["workload", "list"]):
        assert "run `cloudctl init` first" in one_line_error(cli(*args, code=2))
    assert not cli.home.exists()


def test_status_warns_of_a_replica_deciding_with_other_policies(ready: Cli) -> None:
    from cloudctl import settings as settings_module
    from cloudctl.services import context as ctx_module
    from tests.support import replicas

    ctx = ctx_module.open_context(
        settings_module.Settings(home=ready.home, topology=TOPOLOGY, policies=POLICIES)
    )
    beat = ctx.clock.now() + 3600  # a heartbeat ahead of the clock never goes stale while the test runs
    rows = [
        ("mgmt-1", "leader", "a" * 64),
        ("mgmt-2", "follower", "a" * 64),
        ("mgmt-3", "follower", "b" * 64),
    ]
    replicas.record(
        ctx,
        (
            replicas.replica(host, role=role, started_at=beat - 60 + index, heartbeat_at=beat, policies=sha)
            for index, (host, role, sha) in enumerate(rows)
        ),
    )
    ctx.close()

    result = ready("status")
    shown = ready.json("status")["replicas"]

    assert result.stdout.count("≠ leader") == 1  # the table's cells wrap: the mark is on one row
    assert one_line_error(result) == (
        "warning: mgmt-3:1:abcdef decide(s) with other Cedar policies than the leader (with no leader: "
        "the newest replica): make the policies directory the same on every replica and restart the ones "
        "that differ"
    )
    assert [(r["host"], r["policies_sha256"][:1], r["policies_differ"]) for r in shown] == [
        ("mgmt-1", "a", False),
        ("mgmt-2", "a", False),
        ("mgmt-3", "b", True),
    ]


def test_status_json_has_the_documented_shape(ready: Cli) -> None:
    status = ready.json("status")
    assert set(status) == {"topology", "display_name", "generated_at", "centers", "links", "replicas"}
    assert status["replicas"] == []  # no `cloudctl serve` has run on this store
    center = status["centers"][1]
    assert set(center) == {"name", "display_name", "site", "role", "health", "drivers", "capacity"}
    assert center["drivers"]["compute"] == "simulator"
    assert set(center["capacity"]) == {"vcpu", "ram_gb", "volume_gb", "object_gb", "instances"}
    assert set(center["capacity"]["vcpu"]) == {"total", "allocated", "used"}
    assert {link["mode"] for link in status["links"]} >= {"sync", "async"}
    assert all(
        set(link) == {"between", "mode", "rtt_ms", "bandwidth_mbps", "state"} for link in status["links"]
    )


def test_global_options_may_follow_the_command(ready: Cli) -> None:
    assert main.hoist_global_options(["status", "-o", "json"]) == ["-o", "json", "status"]
    assert main.hoist_global_options(["quota", "show", "x", "--output=yaml"]) == [
        "--output=yaml",
        "quota",
        "show",
        "x",
    ]
    assert yaml.safe_load(ready("centers", "list", "--output", "yaml").stdout)[0]["name"] == "mgmt"


@pytest.mark.parametrize(
    "args", [["status", "-o"], ["dept", "list", "--output"], ["quota", "show", "x", "--home"]]
)
def test_a_global_option_at_the_end_without_its_value_is_named_as_missing_it(
    ready: Cli, args: list[str]
) -> None:
    result = ready(*args, code=2)
    assert one_line_error(result) == f"error: usage: Option {args[-1]!r} requires an argument"


def test_a_short_global_option_may_follow_the_command_with_its_value_attached(ready: Cli) -> None:
    assert main.hoist_global_options(["status", "-ojson"]) == ["-ojson", "status"]
    assert json.loads(ready("centers", "list", "-ojson").stdout)[0]["name"] == "mgmt"


def test_centers_show_names_an_unknown_center(ready: Cli) -> None:
    shown = ready.json("centers", "show", "dz-dr")
    assert shown["center"]["role"] == "dr"
    assert {tuple(link["between"]) for link in shown["links"]} >= {("qd-a", "dz-dr")}
    result = ready("centers", "show", "sh-x", code=2)
    assert one_line_error(result).startswith("error: center: no center 'sh-x'")


def test_dept_create_show_list_delete(ready: Cli) -> None:
    ready("dept", "create", "shinan-edu", "--name", "青岛市市南区教育和体育局", "--parent", "shinan")
    shown = ready.json("dept", "show", "shinan-edu")
    assert shown["node"]["path"] == ["qingdao", "shinan", "shinan-edu"]
    tree = ready("dept", "list", "--under", "shinan").stdout
    assert "shinan-edu" in tree and "青岛市市南区教育和体育局" in tree
    assert ready.json("dept", "delete", "shinan-edu") == {"id": "shinan-edu", "deleted": True}
    result = ready("dept", "delete", "shinan-edu", code=2)
    assert one_line_error(result) == "error: node: no org node 'shinan-edu'"


def test_names_with_brackets_are_shown_as_typed_not_read_as_markup(ready: Cli) -> None:
    # "[/]" closed nothing: the command that made the name ended in a traceback, and every later
    # table or line that showed it too (`token list` for good); "[red]" vanished into a colour
    name = "ops[/] [red]x"
    created = ready("dept", "create", "shinan-ops", "--name", name, "--parent", "shinan")
    assert f"({name})" in created.stdout
    assert name in ready("dept", "show", "shinan-ops").stdout
    ready("token", "create", "--role", "auditor", "--name", name)
    listed = ready("token", "list").stdout  # the name's cell wraps at its space
    assert "ops[/]" in listed and "[red]x" in listed


def test_dept_delete_refuses_a_node_with_children(ready: Cli) -> None:
    result = ready("dept", "delete", "shinan", code=2)
    assert "still has children" in one_line_error(result)


def test_quota_set_over_the_parent_exits_2_and_changes_nothing(ready: Cli) -> None:
    before = ready.json("quota", "show", "shinan-civil", "--center", "qd-a")
    result = ready(
        "quota", "set", "shinan-civil", "--center", "qd-a", "--vcpu", "1000", "--ram-gb", "8", code=2
    )
    assert one_line_error(result) == (
        "error: limits.vcpu: 1000 exceeds the limit 64 of ancestor 'shinan' on center qd-a"
    )
    assert ready.json("quota", "show", "shinan-civil", "--center", "qd-a") == before


def test_quota_set_and_unset(ready: Cli) -> None:
    after = ready.json(
        "quota", "set", "shinan-civil", "--center", "qd-a", "--vcpu", "12", "--unset", "ram_gb"
    )
    limits = {item["resource"]: item["limit"] for item in after["centers"][0]["resources"]}
    assert (limits["vcpu"], limits["ram_gb"]) == (12, None)


def test_reserve_commit_release_round_trip(ready: Cli) -> None:
    reservation = ready.json(
        "quota", "reserve", "psb-traffic", "--center", "qd-b", "--vcpu", "4", "--ram-gb", "8"
    )
    assert (reservation["state"], reservation["amounts"]) == ("reserved", {"vcpu": 4, "ram_gb": 8})
    assert [r["id"] for r in ready.json("quota", "reservations", "psb")] == []
    assert [r["id"] for r in ready.json("quota", "reservations", "psb-traffic")] == [reservation["id"]]
    assert ready.json("quota", "commit", reservation["id"])["state"] == "committed"
    assert ready.json("quota", "release", reservation["id"])["state"] == "released"
    assert ready.json("quota", "reservations") == []


@pytest.mark.parametrize("amounts", [[], ["--vcpu", "0"]])
def test_a_reservation_of_nothing_is_refused_and_holds_nothing(ready: Cli, amounts: list[str]) -> None:
    result = ready("quota", "reserve", "psb-traffic", "--center", "qd-b", *amounts, code=2)
    assert one_line_error(result) == "error: amounts: name at least one resource to reserve, more than 0"
    assert ready.json("quota", "reservations") == []


def test_reservations_are_the_sysadmins_and_each_is_audited(ready: Cli) -> None:
    held = ready.json("quota", "reserve", "psb-traffic", "--center", "qd-b", "--vcpu", "4")
    ready.json("quota", "commit", held["id"])
    for role in ("auditor", "secadmin"):
        for args in (["reserve", "psb-traffic", "--center", "qd-b", "--vcpu", "1"], ["release", held["id"]]):
            refused = ready("quota", *args, code=2, role=role)
            assert one_line_error(refused).startswith("error: quota.set: denied by operations-sysadmin-only")
    ready.json("quota", "release", held["id"])

    assert [r["id"] for r in ready.json("quota", "reservations", "--all")] == [held["id"]]
    records = [r for r in ready.json("audit", "list") if r["action"].startswith("quota.")]
    assert [(r["action"], r["role"], r["outcome"]) for r in records] == [
        ("quota.reserve", "sysadmin", "success"),
        ("quota.commit", "sysadmin", "success"),
        ("quota.reserve", "auditor", "denied"),
        ("quota.release", "auditor", "denied"),
        ("quota.reserve", "secadmin", "denied"),
        ("quota.release", "secadmin", "denied"),
        ("quota.release", "sysadmin", "success"),
    ]
    assert records[0]["target_id"] == "psb-traffic"
    assert records[0]["detail"]["reservation"] == held["id"]


@pytest.mark.parametrize(
    ("args", "action"),
    [
        (("sim", "inject", "center-down", "--center", "qd-a"), "drill.run"),
        (("sim", "clear"), "drill.run"),
        (("replication", "run"), "failover.run"),
        (("quota", "sync"), "quota.set"),
    ],
)
def test_commands_that_change_the_centers_are_the_sysadmins(
    ready: Cli, args: tuple[str, ...], action: str
) -> None:
    for role in ("auditor", "secadmin"):
        refused = ready(*args, code=2, role=role)
        assert one_line_error(refused).startswith(f"error: {action}: denied by "), refused.stderr
    assert ready.json("sim", "faults") == []  # nothing injected by a refused role
    ready(*args)  # the sysadmin's


def test_a_refused_reservation_names_the_node_and_resource(ready: Cli) -> None:
    result = ready("quota", "reserve", "psb-household", "--center", "qd-a", "--instances", "9", code=2)
    assert one_line_error(result).startswith(
        "error: quota.instances: psb-household has 8 of 8 available on center qd-a, 9 requested"
    )


def test_sim_faults_show_in_status(ready: Cli) -> None:
    ready("sim", "inject", "link-cut", "--center", "qd-a", "--peer", "dz-dr")
    links = {tuple(link["between"]): link["state"] for link in ready.json("status")["links"]}
    assert links[("qd-a", "dz-dr")] == "cut"
    assert [fault["id"] for fault in ready.json("sim", "faults")] == ["link-cut:dz-dr~qd-a"]
    result = ready("sim", "inject", "link-cut", "--center", "qd-a", "--peer", "mgmt-x", code=2)
    assert one_line_error(result).startswith("error: center: no center 'mgmt-x'")
    assert ready.json("sim", "clear") == {"cleared": 1}


def test_the_demo_runs_end_to_end_and_leaves_nothing_behind(ready: Cli) -> None:
    result = ready("demo")
    assert "refused (exit code 2)" in result.stdout
    assert "released" in result.stdout
    assert ready.json("quota", "reservations") == []
    assert ready.json("sim", "faults") == []
    ready("demo")


def test_an_unreachable_database_exits_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDCTL_STORE_ATTEMPTS", "1")
    cli = Cli(tmp_path, database_url="postgresql://postgres@127.0.0.1:1/none")
    result = cli("status", code=3)
    assert one_line_error(result).startswith("error: database: the store did not answer")


def test_help_imports_no_database_or_web_stack() -> None:
    probe = (
        "import sys; from cloudctl.cli import main; "
        "heavy = [m for m in ('sqlalchemy', 'alembic', 'fastapi', 'boto3', 'openstack', 'kubernetes', "
        "'pydantic', 'yaml', 'croniter', 'cedarpy', 'prometheus_client') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == ""


def test_tokens_are_shown_once_and_listed_without_secrets(ready: Cli) -> None:
    issued = ready.json("token", "create", "--role", "dept-admin", "--dept", "hrss", "--name", "人社局管理员")
    assert issued["secret"].startswith("cct_")
    listed = ready.json("token", "list")
    assert [t["id"] for t in listed] == [issued["token"]["id"]]
    assert "secret" not in json.dumps(listed)
    result = ready("token", "create", "--role", "dept-admin", code=2)
    assert one_line_error(result) == "error: dept: a dept-admin token belongs to a department; name it"
    ready("token", "revoke", issued["token"]["id"])
    assert ready.json("token", "list") == []


@pytest.mark.parametrize("days", ["inf", "nan", "3651", "0"])
def test_a_token_expiry_out_of_range_is_refused_naming_the_option(ready: Cli, days: str) -> None:
    result = ready("token", "create", "--role", "auditor", "--expires-in-days", days, code=2)
    assert "expires-in-days" in result.output and "expires_in_s" not in result.output
    assert ready.json("token", "list") == []


def test_operators_approve_and_provision_from_the_cli(ready: Cli, tmp_path: Path) -> None:
    from cloudctl import clock
    from cloudctl.services import identity
    from cloudctl.services import requests as requests_service
    from cloudctl.store import db
    from tests.conftest import make_context

    store = db.Store(db.sqlite_url(ready.home))
    ctx = make_context(store, clock.ManualClock(), tmp_path)
    principal = identity.Principal(
        id="t", role="dept-admin", department="bigdata", department_path=("qingdao", "bigdata")
    )
    body = requests_service.RequestCreate(offering="vm.large", count=5, tier="silver")
    request, _ = requests_service.submit(ctx, principal=principal, body=body)
    pending = ready.json("request", "list", "--state", "pending-approval")
    assert [r["id"] for r in pending] == [request.id]
    approved = ready.json("request", "approve", request.id)
    assert approved["state"] == "approved"
    # What `cloudctl serve`'s reconcile loop does next.
    from cloudctl.services import provisioning

    assert provisioning.reconcile(ctx, kind="request", object_id=request.id).done
    ctx.close()
    assert ready.json("request", "show", request.id)["state"] == "ready"
    workload = ready.json("workload", "show", request.workload_id)
    assert {p["role"]: p["state"] for p in workload["placements"]} == {"primary": "ready", "dr": "reserved"}
    assert "ready" in ready("workload", "list", "--dept", "bigdata").stdout
    result = ready("request", "reject", request.id, "--reason", "too late", code=2)
    assert "only a pending-approval request can be rejected" in one_line_error(result)


def test_audit_list_and_verify_detect_tampering(ready: Cli) -> None:
    import sqlite3

    ready("token", "create", "--role", "auditor")
    ready("token", "create", "--role", "sysadmin")
    records = ready.json("audit", "list")
    # Each command at the console broke glass first: who, from which host, and why are on record.
    # (the last: this very listing, as the auditor).
    assert [r["action"] for r in records] == ["break-glass", "token.create"] * 2 + ["break-glass"]
    assert {r["detail"]["reason"] for r in records if r["action"] == "break-glass"} == {operators.REASON}
    assert [r["role"] for r in records] == ["secadmin"] * 4 + ["auditor"]
    assert ready.json("audit", "verify")["ok"] is True
    with sqlite3.connect(ready.home / "state.db") as raw:
        raw.execute("UPDATE audit_records SET actor = 'someone-else' WHERE seq = 1")
    result = ready("audit", "verify", code=1)
    assert "audit chain broken at record 1" in result.stdout


def test_failover_and_replication_from_the_cli(ready: Cli, tmp_path: Path) -> None:
    from cloudctl import clock
    from cloudctl.services import identity, provisioning
    from cloudctl.services import requests as requests_service
    from cloudctl.store import db
    from tests.conftest import make_context

    store = db.Store(db.sqlite_url(ready.home))
    ctx = make_context(store, clock.ManualClock(), tmp_path)
    principal = identity.Principal(
        id="t", role="dept-admin", department="hrss", department_path=("qingdao", "hrss")
    )
    body = requests_service.RequestCreate(offering="vm.small", tier="gold", preferred_center="qd-a")
    request, _ = requests_service.submit(ctx, principal=principal, body=body)
    provisioning.reconcile(ctx, kind="request", object_id=request.id)
    ctx.close()
    (protected,) = ready.json("replication", "status", "--tier", "gold")
    assert (protected["protection"], protected["reason"]) == ("protected", "")
    assert {(s["source"], s["target"], s["mode"]) for s in protected["streams"]} == {
        ("qd-a", "qd-b", "sync"),
        ("qd-a", "dz-dr", "async"),
    }
    plan = ready.json("failover", "--from", "qd-a", "--planned", "--dry-run")
    assert (plan["run_id"], [s["action"] for s in plan["steps"]][:2]) == (None, ["final-sync", "promote"])
    result = ready("failover", "--from", "qd-a", code=2)
    assert one_line_error(result) == "error: mode: say --planned or --unplanned"
    run = ready.json("failover", "--from", "qd-a", "--planned")
    assert (run["state"], run["steps_done"]) == ("done", 4)
    again = ready("failover", "resume", run["id"], code=2)
    assert "nothing to resume" in one_line_error(again)


def test_failover_runs_are_subcommands_found_by_list_and_show_and_failback_comes_home(
    ready: Cli, tmp_path: Path
) -> None:
    from cloudctl import clock
    from cloudctl.services import identity, provisioning
    from cloudctl.services import requests as requests_service
    from cloudctl.store import db
    from tests.conftest import make_context

    store = db.Store(db.sqlite_url(ready.home))
    ctx = make_context(store, clock.ManualClock(), tmp_path)
    principal = identity.Principal(
        id="t", role="dept-admin", department="hrss", department_path=("qingdao", "hrss")
    )
    body = requests_service.RequestCreate(offering="vm.small", tier="silver", preferred_center="qd-a")
    request, _ = requests_service.submit(ctx, principal=principal, body=body)
    provisioning.reconcile(ctx, kind="request", object_id=request.id)
    ctx.close()
    store.dispose()
    unknown = ready("failover", "run", "--from", "nosuch", "--dry-run", code=2)
    assert one_line_error(unknown).startswith("error: from: no center 'nosuch'")
    assert one_line_error(ready("failover", "--from", "nosuch", code=2)).startswith("error: from: ")
    hooks_file = tmp_path / "hooks.yaml"
    hooks_file.write_text("hooks:\n  - {when: pre, command: {argv: [hostname]}, on_failure: later}\n")
    bad = ready("failover", "run", "--from", "qd-a", "--planned", "--hooks", str(hooks_file), code=2)
    assert one_line_error(bad).startswith("error: hooks[0].on_failure: ")
    hooks_file.write_text("hooks:\n  - {name: announce, when: pre, command: {argv: [hostname]}}\n")
    dry = ready.json(
        "failover", "run", "--from", "qd-a", "--planned", "--dry-run", "--hooks", str(hooks_file)
    )
    assert (dry["run_id"], dry["steps"][0]["action"]) == (None, "hook")
    assert dry["steps"][0]["hook"]["name"] == "announce"
    assert dry["steps"][0]["hook"]["on_failure"] == "abort"
    assert ready.json("failover", "list") == []

    moved = ready("failover", "run", "--from", "qd-a", "--planned", "--hooks", str(hooks_file), "-o", "json")
    run = json.loads(moved.stdout)
    assert f"failover run {run['id']} started" in moved.stderr
    assert (run["state"], run["steps_done"], run["hooks"][0]["ok"]) == ("done", 5, True)
    listed = ready.json("failover", "list")
    assert [(r["id"], r["state"], r["steps_done"], r["started_by"]) for r in listed] == [
        (run["id"], "done", 5, run["started_by"])
    ]
    assert run["started_by"].startswith("breakglass:")
    shown = ready.json("failover", "show", run["id"])
    assert [s["action"] for s in shown["steps"]] == [
        "hook",
        "final-sync",
        "promote",
        "switch-traffic",
        "reprotect",
    ]
    assert shown["steps"][2]["from_centers"] == ["qd-a"]
    unprotected = ready.json("replication", "status", "--unprotected")
    assert [w["protection"] for w in unprotected] == []  # planned: qd-a still holds a ready copy

    back = ready("failback", "--to", "qd-a", "-o", "json")
    assert "failback run" in back.stderr
    assert json.loads(back.stdout)["state"] == "done"
    again = ready.json("failback", "--to", "qd-a")
    assert (again["run_id"], again["steps"]) == (None, [])
    assert "0 step(s)" in ready("failback", "--to", "qd-a").stdout
    assert one_line_error(ready("failover", "show", "failover-nope", code=2)).startswith("error: run: ")


def test_replication_points_from_the_cli(ready: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cloudctl import clock
    from cloudctl.services import identity, provisioning, recovery
    from cloudctl.services import requests as requests_service
    from cloudctl.store import db
    from tests.conftest import make_context

    store = db.Store(db.sqlite_url(ready.home))
    # An hour before the CLI's clock: by the time the CLI runs, the silver DR copy (every 300 s) is due.
    ctx = make_context(store, clock.ManualClock(start=clock.SystemClock().now() - 3600), tmp_path)
    principal = identity.Principal(
        id="t", role="dept-admin", department="hrss", department_path=("qingdao", "hrss")
    )
    made = []
    for offering in ("volume.100g", "bucket.100g"):
        body = requests_service.RequestCreate(offering=offering, tier="silver", preferred_center="qd-a")
        request, _ = requests_service.submit(ctx, principal=principal, body=body)
        provisioning.reconcile(ctx, kind="request", object_id=request.id)
        made.append(request.workload_id or "")
        recovery.write(ctx, made[-1], key="case/1", data=b"record 1")
    workload, bucket_only = made
    ctx.close()
    assert "2 replication point(s) taken, 0 failed" in ready("replication", "run").stdout
    points = ready.json("replication", "points", "--workload", workload)
    assert [(p["center"], p["volume_name"], p["snapshot_name"], p["seq"], p["state"]) for p in points] == [
        ("dz-dr", f"{workload}-0", f"rp-{workload}-0-1", 1, "ready")
    ]
    assert set(points[0]) == {
        "id",
        "workload_id",
        "department",
        "center",
        "kind",
        "volume_id",
        "volume_name",
        "snapshot_id",
        "snapshot_name",
        "bucket",
        "seq",
        "consistent_at",
        "state",
        "last_error",
        "taken_at",
    }
    (objects,) = ready.json("replication", "points", "--workload", bucket_only)
    assert (objects["id"], objects["kind"], objects["bucket"], objects["seq"], objects["state"]) == (
        f"dz-dr/data-{bucket_only}@1",
        "objects",
        f"data-{bucket_only}",
        1,
        "ready",
    )
    assert (points[0]["kind"], points[0]["bucket"]) == ("volume", None)
    assert sorted(p["id"] for p in ready.json("replication", "points", "--dept", "hrss")) == sorted(
        [points[0]["id"], objects["id"]]
    )
    assert ready.json("replication", "points", "--dept", "psb") == []
    monkeypatch.setenv("COLUMNS", "200")  # wide enough for whole ids
    (row,) = [line for line in ready("replication", "points").stdout.splitlines() if workload in line]
    assert [cell.strip() for cell in row.split("│")[1:-1]] == [
        workload,
        "dz-dr",
        f"{workload}-0",
        f"rp-{workload}-0-1",
        "1",
        points[0]["consistent_at"],
        "ready",
    ]
    (row,) = [line for line in ready("replication", "points").stdout.splitlines() if bucket_only in line]
    assert [cell.strip() for cell in row.split("│")[1:-1]] == [
        bucket_only,
        "dz-dr",
        f"data-{bucket_only}",
        "–",
        "1",
        objects["consistent_at"],
        "ready",
    ]
    result = ready("replication", "points", "--workload", "w-nope", code=2)
    assert one_line_error(result) == "error: workload: no workload 'w-nope'"
    result = ready("replication", "points", "--dept", "nope", code=2)
    assert one_line_error(result) == "error: dept: no org node 'nope'"


@pytest.mark.parametrize("glass", [[], ["--as", "auditor", "--reason", "look"], ["--as", "sysadmin"]])
def test_mgmt_commands_break_glass_as_the_sysadmin_with_a_reason_before_touching_a_server(
    tmp_path: Path, glass: list[str]
) -> None:
    argv = ["--home", str(tmp_path / "home"), "--database-url", "postgresql://postgres@127.0.0.1:1/none"]
    result = CliRunner().invoke(
        main.app, [*argv, *glass, "mgmt", "fence", "--url", "postgresql://x@127.0.0.1:1/y"]
    )
    assert result.exit_code == 2
    line = one_line_error(result)
    assert line.startswith(("error: as: ", "error: reason: ")), line
    assert not (tmp_path / "home").exists()


def test_the_failover_dry_run_shows_each_servers_address_kept_or_remapped(ready: Cli, tmp_path: Path) -> None:
    from cloudctl import clock
    from cloudctl.services import identity, provisioning
    from cloudctl.services import requests as requests_service
    from cloudctl.store import db
    from tests.conftest import make_context

    ctx = make_context(db.Store(db.sqlite_url(ready.home)), clock.ManualClock(), tmp_path)
    principal = identity.Principal(
        id="t", role="dept-admin", department="hrss", department_path=("qingdao", "hrss")
    )
    body = requests_service.RequestCreate(offering="vm.small", tier="gold", preferred_center="qd-a")
    request, _ = requests_service.submit(ctx, principal=principal, body=body)
    provisioning.reconcile(ctx, kind="request", object_id=request.id)
    ctx.close()
    workload = request.workload_id or ""
    plan = ready.json("failover", "run", "--from", "qd-a", "--planned", "--dry-run")
    (promote,) = [s for s in plan["steps"] if s["action"] == "promote"]
    (mapping,) = promote["addresses"]
    assert (mapping["server"], mapping["network"], mapping["to_network"], mapping["kept"]) == (
        f"{workload}-0",
        "gov-apps",
        "gov-apps",
        True,
    )
    assert mapping["old_address"] == mapping["new_address"]
    shown = ready("failover", "run", "--from", "qd-a", "--planned", "--dry-run").stdout
    assert "Addresses (network maps of the topology):" in shown
    address = mapping["old_address"]
    assert f"  {workload}-0: qd-a gov-apps {address} → qd-b gov-apps {address} (kept)" in shown.splitlines()
    assert ready.json("failover", "list") == []  # nothing was started
    unplanned = ready.json("failover", "run", "--from", "qd-a", "--to", "dz-dr", "--unplanned", "--dry-run")
    (promote,) = [s for s in unplanned["steps"] if s["action"] == "promote"]
    (mapping,) = promote["addresses"]
    assert (mapping["to_network"], mapping["kept"]) == ("gov-apps-dr", False)
    assert mapping["new_address"] == mapping["old_address"].replace("10.16.", "10.80.", 1)


def test_overlapping_network_maps_exit_2_naming_the_path_and_write_nothing(cli: Cli, tmp_path: Path) -> None:
    data = yaml.safe_load(TOPOLOGY.read_text(encoding="utf-8"))
    data["networks"].append({"center": "dz-dr", "name": "spare", "subnet": "10.96.0.0/20"})
    data["network_maps"].append(
        {"between": [{"center": "qd-b", "network": "gov-apps"}, {"center": "dz-dr", "network": "spare"}]}
    )
    broken = tmp_path / "overlapping.yaml"
    broken.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    result = cli("init", str(broken), code=2)
    assert one_line_error(result) == (
        "error: network_maps[3].between: overlaps network_maps[2]: "
        "10.16.0.0/20 of qd-b is mapped to dz-dr twice"
    )
    assert not (cli.home / "state.db").exists()


def test_a_failover_run_says_which_planned_addresses_another_server_held(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from cloudctl.cli import commands_recovery

    held = {"server": "wl-7f3a-0", "planned": "10.80.0.2", "got": "10.80.0.3"}
    run = {
        "id": "run-1",
        "state": "done",
        "steps_done": 3,
        "steps_total": 3,
        "error": "",
        "workloads": {"wl-7f3a": {"served_in": "dz-dr", "writes_lost": 0, "addresses_held_there": [held]}},
        "hooks": [],
        "resume": "",
    }
    commands_recovery._render_run(run)
    shown = [" ".join(line.split()) for line in capsys.readouterr().out.splitlines()]
    assert (
        "wl-7f3a: wl-7f3a-0 got 10.80.0.3, not the planned 10.80.0.2, which another server there holds"
        in (shown)
    )
