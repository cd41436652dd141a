"""The command line as a client of the API: contexts, remote commands, roles, break-glass.

Remote commands run against the real app over the in-process ASGI transport (the same one
break-glass uses) with real tokens, and once against a real ``cloudctl serve`` over HTTP.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cloudctl import clock as clocks
from cloudctl.api import app as api_app
from cloudctl.cli import client, contexts, inprocess, main
from cloudctl.services import context as ctx_module
from cloudctl.services import identity
from tests.conftest import POLICIES, TOPOLOGY

OPS = identity.local_operator("secadmin")


class Remote:
    """``cloudctl`` as a person logged in with a token of ``role`` (XDG config in a temp dir)."""

    def __init__(self, ctx: ctx_module.Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.ctx = ctx
        self.runner = CliRunner()
        self.monkeypatch = monkeypatch
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
        monkeypatch.delenv("CLOUDCTL_API", raising=False)
        monkeypatch.delenv("CLOUDCTL_TOKEN", raising=False)
        application = api_app.create_app(context=ctx)
        monkeypatch.setattr(
            client, "open_transport", lambda api: inprocess.AsgiTransport(application, client_host="10.0.0.7")
        )

    def token(self, role: str, department: str | None = None) -> str:
        return identity.create_token(self.ctx, principal=OPS, role=role, department=department).secret

    def __call__(self, *args: str, code: int | None = 0, stdin: str | None = None) -> Any:
        argv = [
            "--topology",
            str(TOPOLOGY),
            "--policies",
            str(POLICIES),
            *main.hoist_global_options(list(args)),
        ]
        result = self.runner.invoke(main.app, argv, input=stdin)
        if code is not None:
            assert result.exit_code == code, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
        return result


@pytest.fixture
def remote(ctx: ctx_module.Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Remote:
    return Remote(ctx, tmp_path, monkeypatch)


def config_file(tmp_path: Path) -> Path:
    return tmp_path / "xdg" / "cloudctl" / "config.yaml"


def test_login_checks_the_token_and_stores_it_for_the_owner_alone(remote: Remote, tmp_path: Path) -> None:
    secret = remote.token("sysadmin")
    result = remote("login", "--api", "https://mgmt.example:8443", "--name", "qingdao", stdin=secret + "\n")
    assert "as token:" in result.stdout and "(sysadmin)" in result.stdout
    assert secret not in result.stdout + result.stderr
    path = config_file(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    stored = contexts.load(path)
    assert (stored.current, stored.contexts["qingdao"].token) == ("qingdao", secret)
    status = json.loads(remote("status", "-o", "json").stdout)
    assert [c["name"] for c in status["centers"]] == ["mgmt", "qd-a", "qd-b", "dz-dr"]


def test_login_with_a_bad_token_stores_nothing(remote: Remote, tmp_path: Path) -> None:
    result = remote(
        "login", "--api", "https://mgmt.example:8443", code=2, stdin="cct_0000000000000000.nope\n"
    )
    assert "log in again" in result.stderr
    assert not config_file(tmp_path).exists()


def test_a_config_file_others_can_read_is_refused(remote: Remote, tmp_path: Path) -> None:
    remote("login", "--api", "https://mgmt.example:8443", stdin=remote.token("sysadmin") + "\n")
    path = config_file(tmp_path)
    path.chmod(0o644)
    result = remote("status", code=2)
    assert "accessible by others (mode 0644)" in result.stderr and "chmod 600" in result.stderr


def test_contexts_switch_between_identities_and_the_environment_overrides(remote: Remote) -> None:
    remote(
        "login", "--api", "https://mgmt.example:8443", "--name", "ops", stdin=remote.token("sysadmin") + "\n"
    )
    remote(
        "login", "--api", "https://mgmt.example:8443", "--name", "audit", stdin=remote.token("auditor") + "\n"
    )
    assert remote("config", "current-context").stdout.strip() == "audit"
    listed = json.loads(remote("config", "get-contexts", "-o", "json").stdout)
    assert [(c["name"], c["current"]) for c in listed] == [("audit", True), ("ops", False)]
    assert "secret" not in remote("config", "get-contexts").stdout
    remote("status", code=2)  # the auditor reads no centers
    remote("config", "use-context", "ops")
    remote("status")
    remote("audit", "list", code=2)
    remote("--context", "audit", "audit", "list")
    remote.monkeypatch.setenv("CLOUDCTL_TOKEN", remote.token("auditor"))
    remote("audit", "list")  # CLOUDCTL_TOKEN over the context's token
    remote("config", "delete-context", "ops")
    remote("config", "use-context", "ops", code=2)


def test_with_no_context_and_no_break_glass_an_operator_command_refuses_in_one_line(remote: Remote) -> None:
    result = remote("status", code=2)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "cloudctl login --api URL" in lines[0] and "--as ROLE --reason TEXT" in lines[0]


def test_break_glass_needs_a_reason_and_an_identity(remote: Remote, tmp_path: Path) -> None:
    home = ["--home", str(tmp_path / "home")]
    remote(*home, "init")
    assert "--reason" in remote(*home, "--as", "sysadmin", "status", code=2).stderr
    assert "identity" in remote(*home, "--break-glass", "--reason", "flood", "status", code=2).stderr
    assert "unknown role" in remote(*home, "--as", "root", "--reason", "flood", "status", code=2).stderr


def test_break_glass_by_role_is_an_operators_a_department_breaks_glass_with_its_token(
    remote: Remote, tmp_path: Path
) -> None:
    """``--as dept-admin`` would name no department: it is refused before anything is recorded."""
    home = ["--home", str(tmp_path / "home")]
    remote(*home, "init")
    refused = remote(*home, "--as", "dept-admin", "--reason", "flood", "workload", "list", code=2)
    assert refused.stderr.strip() == (
        "error: as: 'dept-admin' is not an operator's role (sysadmin, secadmin, auditor): a department "
        "breaks glass with its token (`--break-glass`)"
    )
    audited = remote(*home, "--as", "auditor", "--reason", "check", "audit", "list", "-o", "json").stdout
    assert [record["role"] for record in json.loads(audited)] == ["auditor"]


def test_break_glass_with_a_token_takes_the_logged_in_contexts(remote: Remote, tmp_path: Path) -> None:
    """A person logged in breaks glass as themselves, with no token file or variable to set."""
    home = ["--home", str(tmp_path / "home")]
    remote(*home, "init")
    issued = json.loads(
        remote(*home, "--as", "secadmin", "--reason", "first token", "token", "create", "--role",
               "sysadmin", "--name", "li.wei", "-o", "json").stdout
    )  # fmt: skip
    contexts.save(
        contexts.Config(
            path=config_file(tmp_path),
            current="qingdao",
            contexts={
                "qingdao": contexts.Context(
                    name="qingdao", api="https://mgmt.example:8443", token=issued["secret"]
                )
            },
        )
    )
    remote(*home, "--break-glass", "--reason", "API down", "sim", "inject", "center-down", "--center", "qd-b")
    records = json.loads(
        remote(*home, "--as", "auditor", "--reason", "check", "audit", "list", "-o", "json").stdout
    )
    glass = [
        (r["role"], r["target_id"], r["detail"]["reason"]) for r in records if r["action"] == "break-glass"
    ]
    assert glass[1] == ("sysadmin", f"token:{issued['token']['id']}", "API down")


def test_a_data_grant_from_publish_to_use_on_the_command_line(remote: Remote) -> None:
    provider, consumer, outsider = (
        remote.token("dept-admin", department) for department in ("samr", "approval", "hrss-insurance")
    )
    as_provider, as_consumer, as_outsider = (
        ("login", "--api", "https://mgmt.example:8443", "--name", name) for name in ("p", "c", "o")
    )
    remote(*as_provider, stdin=provider + "\n")
    remote(*as_consumer, stdin=consumer + "\n")
    remote(*as_outsider, stdin=outsider + "\n")
    in_90_days = clocks.isoformat(remote.ctx.clock.now() + 90 * 86400)
    remote(
        "--context", "p", "data", "items", "publish", "enterprise-licences", "--class", "internal",
        "--dataset", "licences/2026", "--description", "营业执照 of 460,000 legal persons",
    )  # fmt: skip
    requested = json.loads(
        remote(
            "--context", "c", "data", "grants", "request", "enterprise-licences",
            "--purpose", "license-verification", "--expires", in_90_days, "-o", "json",
        ).stdout
    )  # fmt: skip
    grant = requested["id"]
    remote("--context", "c", "data", "grants", "use", grant, code=2)  # not active yet: refused
    remote("--context", "p", "data", "grants", "approve", grant)
    used = remote("--context", "c", "data", "grants", "use", grant)
    assert used.stdout.strip() == f"{grant} (enterprise-licences): read nothing yet"  # a dataset: no bucket
    refused = remote("--context", "o", "data", "grants", "use", grant, code=2)
    assert refused.stderr.strip() == f"error: grant: no data grant {grant!r}"  # as if it did not exist


# --- roles, identically on both paths --------------------------------------------------------------

MATRIX: list[tuple[tuple[str, ...], str, str, str | None]] = [
    # (command, method, path, body): the CLI command and the API call it makes
    (("status",), "GET", "/v1/status", None),
    (("dept", "list"), "GET", "/v1/org/nodes", None),
    (("quota", "show", "hrss"), "GET", "/v1/quota?department=hrss", None),
    (
        ("dept", "create", "matrix-office", "--name", "x", "--parent", "shinan"),
        "POST",
        "/v1/org/nodes",
        "org",
    ),
    (
        ("quota", "set", "hrss-insurance", "--center", "qd-a", "--object-gb", "100"),
        "PUT",
        "/v1/quota/hrss-insurance",
        "quota",
    ),
    (("token", "list"), "GET", "/v1/tokens", None),
    (("token", "create", "--role", "dept-user", "--dept", "hrss"), "POST", "/v1/tokens", "token"),
    (("audit", "list"), "GET", "/v1/audit", None),
    (("audit", "verify"), "GET", "/v1/audit/verify", None),
    (
        ("failover", "run", "--from", "qd-b", "--planned", "--dry-run"),
        "POST",
        "/v1/failover/runs",
        "failover",
    ),
    (("failover", "list"), "GET", "/v1/failover/runs", None),
    (("drill", "history"), "GET", "/v1/drills/runs", None),
    (("replication", "status"), "GET", "/v1/replication/status", None),
    (("replication", "scrub"), "POST", "/v1/replication/scrub", None),
]
BODIES = {
    "org": {"id": "matrix-office", "display_name": "x", "parent": "shinan"},
    "quota": {"center": "qd-a", "limits": {"object_gb": 100}},
    "token": {"role": "dept-user", "department": "hrss"},
    "failover": {"from_centers": ["qd-b"], "planned": True, "dry_run": True},
}
ALLOWED = {
    "sysadmin": {"status", "dept", "quota", "failover", "drill", "replication"},
    "secadmin": {"token"},
    "auditor": {"audit"},
}


@pytest.mark.parametrize("role", sorted(ALLOWED))
def test_the_role_matrix_is_the_same_through_the_cli_and_the_api(remote: Remote, role: str) -> None:
    secret = remote.token(role)
    remote("login", "--api", "https://mgmt.example:8443", stdin=secret + "\n")
    transport = inprocess.AsgiTransport(api_app.create_app(context=remote.ctx), client_host="10.0.0.8")
    seen = []
    for command, method, path, body in MATRIX:
        allowed = command[0] in ALLOWED[role]
        cli = remote(*command, code=None)
        reply = transport.request(
            method,
            path,
            headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
            body=json.dumps(BODIES[body]).encode() if body else None,
        )
        api_ok = reply.status < 400 or (allowed and reply.status == 409)  # created once already by the CLI
        seen.append((command, cli.exit_code == 0, api_ok))
        assert (cli.exit_code == 0) == allowed, (role, command, cli.stderr)
        assert api_ok == allowed, (role, command, reply.status, reply.body[:200])
        if not allowed:
            assert reply.status in (403, 404), (role, command, reply.status)
    transport.close()
    assert len(seen) == len(MATRIX)


# --- every CLI command has its endpoint ------------------------------------------------------------

ENDPOINTS = {
    "status": ("GET", "/v1/status"),
    "centers list": ("GET", "/v1/status"),
    "centers show": ("GET", "/v1/status"),
    "metrics": ("GET", "/metrics"),
    "dept list": ("GET", "/v1/org/nodes"),
    "dept show": ("GET", "/v1/org/nodes/{node_id}"),
    "dept create": ("POST", "/v1/org/nodes"),
    "dept delete": ("DELETE", "/v1/org/nodes/{node_id}"),
    "quota show": ("GET", "/v1/quota"),
    "quota set": ("PUT", "/v1/quota/{node_id}"),
    "token create": ("POST", "/v1/tokens"),
    "token list": ("GET", "/v1/tokens"),
    "token revoke": ("POST", "/v1/tokens/{token_id}/revoke"),
    "request list": ("GET", "/v1/requests"),
    "request show": ("GET", "/v1/requests/{request_id}"),
    "request approve": ("POST", "/v1/requests/{request_id}/approve"),
    "request reject": ("POST", "/v1/requests/{request_id}/reject"),
    "workload list": ("GET", "/v1/workloads"),
    "workload show": ("GET", "/v1/workloads/{workload_id}"),
    "replication status": ("GET", "/v1/replication/status"),
    "replication points": ("GET", "/v1/replication/points"),
    "replication scrub": ("POST", "/v1/replication/scrub"),
    "failover": ("POST", "/v1/failover/runs"),
    "failover run": ("POST", "/v1/failover/runs"),
    "failover list": ("GET", "/v1/failover/runs"),
    "failover show": ("GET", "/v1/failover/runs/{run_id}"),
    "failover resume": ("POST", "/v1/failover/runs/{run_id}/resume"),
    "failback": ("POST", "/v1/failback/runs"),
    "restore": ("POST", "/v1/workloads/{workload_id}/restore"),
    "drill run": ("POST", "/v1/drills/runs"),
    "drill resume": ("POST", "/v1/drills/runs/{run_id}/resume"),
    "drill history": ("GET", "/v1/drills/runs"),
    "drill report": ("GET", "/v1/drills/runs/{run_id}/report"),
    "audit list": ("GET", "/v1/audit"),
    "audit verify": ("GET", "/v1/audit/verify"),
    "audit export": ("GET", "/v1/audit/export"),
    "showback": ("GET", "/v1/showback"),
    "capacity forecast": ("GET", "/v1/capacity/forecast"),
    "data items list": ("GET", "/v1/data/items"),
    "data items show": ("GET", "/v1/data/items/{item_id}"),
    "data items publish": ("POST", "/v1/data/items"),
    "data grants list": ("GET", "/v1/data/grants"),
    "data grants show": ("GET", "/v1/data/grants/{grant_id}"),
    "data grants request": ("POST", "/v1/data/grants"),
    "data grants approve": ("POST", "/v1/data/grants/{grant_id}/approve"),
    "data grants revoke": ("POST", "/v1/data/grants/{grant_id}/revoke"),
    "data grants use": ("POST", "/v1/data/grants/{grant_id}/use"),
    "quota reserve": ("POST", "/v1/reservations"),
    "quota commit": ("POST", "/v1/reservations/{reservation_id}/commit"),
    "quota release": ("POST", "/v1/reservations/{reservation_id}/release"),
    "quota reservations": ("GET", "/v1/reservations"),
}
LOCAL = {
    # Set-up, the client's own config, and what acts on the database or backends directly
    # (break-glass): nothing a remote operator needs the API for.
    "init", "serve", "demo", "login", "config get-contexts", "config use-context",
    "config current-context", "config delete-context", "quota sync", "replication run",
    "audit retention", "audit checkpoint", "audit key rotate", "sim inject", "sim faults",
    "sim clear", "infra preview", "infra up", "infra refresh", "infra diff", "drill list",
    "drill show", "drill due", "capacity record",
    # The management database's DR copy: these act on the PostgreSQL servers themselves, so a
    # promotion works while the API (whose database is lost) is down; break-glass as sysadmin.
    "mgmt status", "mgmt promote", "mgmt fence", "mgmt failback",
}  # fmt: skip


def _leaves(command: Any, prefix: str = "") -> Iterator[str]:
    children = getattr(command, "commands", None)
    if prefix and (not children or getattr(command, "invoke_without_command", False)):
        yield prefix
    for name, child in (children or {}).items():
        if not getattr(child, "hidden", False):
            yield from _leaves(child, f"{prefix} {name}".strip())


def test_every_cli_command_has_its_endpoint_or_is_local_by_design(ctx: ctx_module.Context) -> None:
    main.load_all()
    commands = set(_leaves(main.command()))
    assert commands == set(ENDPOINTS) | LOCAL
    spec = api_app.create_app(context=ctx).openapi()
    operations = {(method.upper(), path) for path, methods in spec["paths"].items() for method in methods}
    operations.add(("GET", "/metrics"))
    missing = {command: call for command, call in ENDPOINTS.items() if call not in operations}
    assert missing == {}


# --- a real server over HTTP -----------------------------------------------------------------------


TOKEN_CREATE = ("token", "create", "--role", "sysadmin", "-o", "json")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_remote_command_against_a_real_serve_imports_no_store_no_driver_and_no_pydantic(
    tmp_path: Path,
) -> None:
    cloudctl = [
        sys.executable,
        "-m",
        "cloudctl",
        "--home",
        str(tmp_path / "home"),
        "--topology",
        str(TOPOLOGY),
    ]
    cloudctl += ["--policies", str(POLICIES)]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDCTL_")}
    environment["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    subprocess.run([*cloudctl, "init"], env=environment, check=True, capture_output=True, timeout=300)
    issued = subprocess.run(
        [*cloudctl, "--as", "secadmin", "--reason", "first operator", *TOKEN_CREATE],
        env=environment, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    secret = json.loads(issued.stdout)["secret"]
    port = _free_port()
    server = subprocess.Popen(
        [*cloudctl, "serve", "--port", str(port)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        api = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "serve did not start"
                time.sleep(0.2)
        login = subprocess.run(
            [sys.executable, "-m", "cloudctl", "login", "--api", api], input=secret + "\n",
            env=environment, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert login.returncode == 0, login.stderr
        probe = (
            "import sys; from cloudctl.cli import main; sys.argv = ['cloudctl', 'status', '-o', 'json']\n"
            "try:\n    main.run()\nexcept SystemExit as done:\n    assert not done.code, done.code\n"
            "heavy = sorted(m for m in sys.modules"
            " if m.split('.')[0] in ('sqlalchemy', 'fastapi', 'uvicorn', 'pydantic')"
            " or m.startswith(('cloudctl.store', 'cloudctl.drivers', 'cloudctl.services', 'cloudctl.api')))\n"
            "print('HEAVY', heavy, file=sys.stderr)\nassert not heavy, heavy\n"
        )
        status = subprocess.run(
            [sys.executable, "-c", probe],
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert status.returncode == 0, status.stderr
        assert [c["name"] for c in json.loads(status.stdout)["centers"]] == ["mgmt", "qd-a", "qd-b", "dz-dr"]
        assert "HEAVY []" in status.stderr
    finally:
        server.terminate()
        server.wait(timeout=60)
