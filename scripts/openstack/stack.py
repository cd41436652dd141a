"""A real OpenStack on loopback, from Debian's packages, for cloudctl's OpenStack tests.

Subcommands: ``start`` (idempotent: reuses a stack that is up and healthy), ``stop``,
``status`` and ``clouds-yaml NAME...`` (prints or writes ``clouds.yaml`` entries for it, the
n-th name in the n-th region: one cloud per name).

What ``start`` brings up: Keystone, Placement and Glance API (file store), shared by every
region, under uwsgi (Keystone, Placement) or on their own; then, per region (three by default,
``RegionOne``, ``RegionTwo``, ``RegionThree``; ``$CLOUDCTL_OPENSTACK_REGIONS`` says how many),
a cloud of its own: Nova API under uwsgi, Nova conductor, scheduler and compute (the fake
compute driver, which plugs no VIF), Neutron server (ML2 with the ``openvswitch`` mechanism
driver, VXLAN tenant networks, the L3 router plugin), a stand-in for the Open vSwitch agent of
the region's compute host (``ovs_agent_stand_in.py``: it reports the agent's state so that
ML2 binds ports there, and plugs nothing), Cinder API, scheduler and volume (Cinder's own fake
volume driver, which stores no bytes) as their own processes. Each region has its own API
ports (the first region's plus 10000 per region), its own databases (``os_<service>`` for the
first, ``os_<service>_<region>`` for the others), its own RabbitMQ vhost and compute host, and
its own endpoints in the one Keystone's catalog: a volume, server, port or project quota made
in one region is not seen by another. Everything listens on 127.0.0.1 only; the databases live
on the PostgreSQL server ``$CLOUDCTL_OPENSTACK_DB_URL`` names (default 127.0.0.1:5432) and the
services talk over the RabbitMQ server at 127.0.0.1:5672.

Invariants:

- One stack per machine: fixed ports, one state dir (``$CLOUDCTL_OPENSTACK_STATE``,
  default ``/var/tmp/cloudctl-openstack``) holding the rendered configs, logs, pid files,
  the generated admin password and ``clouds.yaml``. A file lock serialises concurrent
  ``start``/``stop`` calls.
- Only processes this script started (their pids are in ``run/``) are ever stopped.
- A stack started from other configuration templates (``etc/``, ``etc-region/``) or another
  stand-in agent than the ones at hand is not reused: ``start`` restarts it with the current
  ones. It restarts only the regions that need it (the first with the shared services): a
  healthy region keeps running, so its clients never see the others come up. The first
  region's files, ports and fingerprint are those of the one-region stack this grew from, so a
  checkout that knows only one region sees the first region as the same running stack.
- A stack whose processes all run but that is only slow (an API that took longer than the
  health check's 3 s, a worker or agent not reported up) is waited for, up to
  ``SETTLE_TIMEOUT_S``, before ``start`` restarts anything: restarting a region under the tests
  that use it breaks them. Workers count as down only after 600 s without a heartbeat.
- ``start`` ends with every region healthy (it checks them all again) or exits non-zero.
- Package scripts never start a service nor configure a database: installs run with
  ``DEBIAN_FRONTEND=noninteractive``, the packages' database questions preseeded to "no"
  and a ``policy-rc.d`` that forbids starting services (left alone if one exists).
- Every wait is bounded; when a service does not come up, the tail of its log is
  printed and the command exits non-zero.

Run it with the project's virtualenv (it uses openstacksdk to register services, flavors,
images and networks): ``scripts/openstack/stack start``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import openstack
import openstack.connection

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "etc"
STATE_DIR = Path(os.environ.get("CLOUDCTL_OPENSTACK_STATE", "/var/tmp/cloudctl-openstack"))
OWN_POSTGRES_DIR = Path("/var/tmp/cloudctl-openstack-postgres")
OWN_POSTGRES_PORT = 55433
"""The stack's own PostgreSQL cluster (``scripts/ensure-postgres-cluster.sh``), unless
``CLOUDCTL_OPENSTACK_DB_URL`` names another server: whoever starts the stack, the suite or one
test, gets the same databases, so the stack is never restarted just for its database."""
DB_URL = os.environ.get(
    "CLOUDCTL_OPENSTACK_DB_URL", f"postgresql+psycopg2://postgres@127.0.0.1:{OWN_POSTGRES_PORT}"
)
PSQL_URL = DB_URL.replace("postgresql+psycopg2://", "postgresql://")
RABBIT_VHOST = "cloudctl-openstack"
TRANSPORT_URL = os.environ.get(
    "CLOUDCTL_OPENSTACK_TRANSPORT_URL", f"rabbit://guest:guest@127.0.0.1:5672/{RABBIT_VHOST}"
)
REGION_NAMES = ("RegionOne", "RegionTwo", "RegionThree")
REGION_COUNT = int(os.environ.get("CLOUDCTL_OPENSTACK_REGIONS", str(len(REGION_NAMES))))
"""How many regions the stack runs (1 to 3): each is a cloud of its own under the one Keystone."""
REGION = REGION_NAMES[0]
REGION_TEMPLATES = HERE / "etc-region"
PORT_STEP = 10000
"""A further region's API ports are the first region's plus this much per region."""
KEYSTONE_URL = "http://127.0.0.1:5000/v3"
SYSTEM_PYTHON = "/usr/bin/python3"

PACKAGES = (
    "keystone",
    "placement-api",
    "nova-api",
    "nova-conductor",
    "nova-scheduler",
    "cinder-api",
    "cinder-scheduler",
    "glance-api",
    "neutron-server",
    "python3-psycopg2",
)
"""Debian's packages. nova-compute and cinder-volume are not installed: they would pull in a
hypervisor, LVM and an iSCSI target this stack does not use; their entry points are in
python3-nova and python3-cinder, which the packages above bring."""

PRESEED = [
    f"{package} {service}/{question} boolean false"
    for package, service, questions in (
        ("keystone", "keystone", ("configure_db", "create-admin-tenant", "register-endpoint")),
        ("nova-common", "nova", ("configure_db", "configure_rabbit", "configure_ksat", "configure_neutron")),
        ("nova-common", "nova", ("configure_placement",)),
        ("cinder-common", "cinder", ("configure_db", "configure_rabbit", "configure_ksat")),
        (
            "neutron-common",
            "neutron",
            ("configure_db", "configure_rabbit", "configure_ksat", "configure_nova"),
        ),
        ("glance-common", "glance", ("configure_db", "configure_rabbit", "configure_ksat")),
        ("placement-common", "placement", ("configure_db", "configure_ksat")),
    )
    for question in questions
]

SHARED_DATABASES = ("keystone", "placement", "glance")
REGION_DATABASES = ("neutron", "nova_api", "nova", "nova_cell0", "cinder")
DATABASES = (*SHARED_DATABASES, *REGION_DATABASES)

SERVICE_USERS = ("placement", "glance", "neutron", "nova", "cinder")

ENDPOINTS = (
    # (service name, service type, URL)
    ("placement", "placement", "http://127.0.0.1:8778"),
    ("glance", "image", "http://127.0.0.1:9292"),
    ("neutron", "network", "http://127.0.0.1:9696"),
    ("nova", "compute", "http://127.0.0.1:8774/v2.1"),
    ("cinderv3", "volumev3", "http://127.0.0.1:8776/v3"),
)
"""The first region's endpoints. Keystone, Placement and Glance serve every region: a further
region lists their URLs as its own, and its Nova, Cinder and Neutron on ports of its own."""
SHARED_SERVICE_TYPES = ("identity", "placement", "image")

FLAVOR = {"name": "cloudctl.tiny", "vcpus": 1, "ram": 512, "disk": 1}
IMAGE_NAME = "cloudctl-fake"
NETWORK_NAME = "cloudctl-net"
COMPUTE_HOST = "cloudctl-openstack"
"""Nova's compute host (``host`` in nova.conf): the host Neutron binds servers' ports to."""
PHYSICAL_NETWORK = "physnet1"
"""The physical network of flat provider networks (the shared ``cloudctl-net``)."""
OVS_AGENT_TYPE = "Open vSwitch agent"
AGENT_STAND_IN = HERE / "ovs_agent_stand_in.py"
TENANT_NETWORK_SETTING = "tenant"
"""``cloudctl.network`` in the written clouds.yaml: each department's own tenant network."""

START_TIMEOUT_S = float(os.environ.get("CLOUDCTL_OPENSTACK_START_TIMEOUT_S", "300"))
STOP_TIMEOUT_S = 20.0
POLL_INTERVAL_S = 0.5
LOCK_TIMEOUT_S = START_TIMEOUT_S + 300


class StackError(Exception):
    """The stack could not be brought up (or down); the message says which part and why."""


def log(message: str) -> None:
    print(f"openstack-stack: {message}", file=sys.stderr, flush=True)


# --- paths and secrets --------------------------------------------------------------------


def etc_dir() -> Path:
    return STATE_DIR / "etc"


def log_dir() -> Path:
    return STATE_DIR / "log"


def run_dir() -> Path:
    return STATE_DIR / "run"


def lib_dir() -> Path:
    return STATE_DIR / "lib"


def clouds_yaml_path() -> Path:
    return STATE_DIR / "clouds.yaml"


def admin_password() -> str:
    """The stack's password (admin and service users), generated once per state dir."""
    path = STATE_DIR / "password"
    if not path.exists():
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(18), encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip()


# --- regions ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Region:
    """One region of the stack: its own Nova, Cinder and Neutron (processes, API ports,
    databases, RabbitMQ vhost, compute host). The first keeps the names, ports and files the
    stack had when it had one region, so that it is the same cloud as before."""

    name: str
    index: int

    @property
    def first(self) -> bool:
        return self.index == 0

    @property
    def slug(self) -> str:
        return self.name.lower()

    def process(self, name: str) -> str:
        return name if self.first else f"{name}.{self.name}"

    def port(self, first_port: int) -> int:
        return first_port + self.index * PORT_STEP

    def database(self, name: str) -> str:
        return f"os_{name}" if self.first else f"os_{name}_{self.slug}"

    @property
    def compute_host(self) -> str:
        return COMPUTE_HOST if self.first else f"{COMPUTE_HOST}-{self.slug}"

    @property
    def vhost(self) -> str:
        return RABBIT_VHOST if self.first else f"{RABBIT_VHOST}-{self.slug}"

    @property
    def transport_url(self) -> str:
        """The first region's transport, or the same broker with a vhost of the region's own
        (Nova's and Cinder's topics are not per host: two regions on one vhost would mix)."""
        if self.first:
            return TRANSPORT_URL
        parts = urllib.parse.urlsplit(TRANSPORT_URL)
        return urllib.parse.urlunsplit(parts._replace(path=f"{parts.path.rstrip('/')}-{self.slug}"))

    @property
    def lib(self) -> Path:
        return lib_dir() if self.first else lib_dir() / self.name

    def config_files(self, name: str) -> tuple[str, ...]:
        """The configuration files of one service, relative to ``etc_dir()``: the first region's,
        then (for a further region) its overrides."""
        return (name,) if self.first else (name, f"{self.name}/{name}")

    def endpoints(self) -> list[tuple[str, str, str]]:
        """(service name, service type, URL) of the region's own services."""
        found = []
        for name, service_type, first_url in ENDPOINTS:
            url = first_url
            if service_type not in SHARED_SERVICE_TYPES:
                host, _, path = first_url.removeprefix("http://").partition("/")
                address, _, port = host.partition(":")
                url = f"http://{address}:{self.port(int(port))}" + (f"/{path}" if path else "")
            found.append((name, service_type, url))
        return found


def regions() -> list[Region]:
    if not 1 <= REGION_COUNT <= len(REGION_NAMES):
        raise StackError(f"CLOUDCTL_OPENSTACK_REGIONS must be 1 to {len(REGION_NAMES)}, not {REGION_COUNT}")
    return [Region(name, index) for index, name in enumerate(REGION_NAMES[:REGION_COUNT])]


def region_named(name: str) -> Region:
    for region in regions():
        if region.name == name:
            return region
    raise StackError(f"no region {name!r} (the stack runs {', '.join(r.name for r in regions())})")


# --- processes ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Service:
    """One long-running process of the stack, of one region (the shared ones count as the first's)."""

    name: str
    argv: tuple[str, ...]
    port: int | None = None
    health_path: str = "/"
    env: tuple[tuple[str, str], ...] = ()
    region: str = REGION

    @property
    def pid_file(self) -> Path:
        return run_dir() / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return log_dir() / f"{self.name}.log"


def write_config(path: Path, text: str, *, mode: int = 0o600) -> None:
    """Write a service's configuration file whole, and only if it changed.

    ``services()`` is called again while services start (to wait for them and to check them);
    a file truncated and rewritten in place could be read empty by a service starting at that
    moment (uWSGI then finds no ``[uwsgi]`` section and exits), so the new text goes to a file
    beside it that replaces the old one in one rename.
    """
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{path.name}.new")
    staged.write_text(text, encoding="utf-8")
    staged.chmod(mode)
    os.replace(staged, path)


def uwsgi(name: str, *, port: int, wsgi_file: str, env: dict[str, str], region: str = REGION) -> Service:
    ini = etc_dir() / f"{name}-uwsgi.ini"
    lines = [
        "[uwsgi]",
        "plugins = python3",
        f"http-socket = 127.0.0.1:{port}",
        "master = true",
        "processes = 1",
        "threads = 8",
        "enable-threads = true",
        "lazy-apps = true",
        "die-on-term = true",
        "no-orphans = true",
        "buffer-size = 65535",
        # uwsgi's http-socket does not keep connections alive: say so, or clients reuse dead ones.
        "add-header = Connection: close",
        "http-auto-chunked = true",
        "http-raw-body = true",
        "wsgi-manage-chunked-input = true",
        f"chdir = {STATE_DIR}",
        f"wsgi-file = {wsgi_file}",
        *(f"env = {key}={value}" for key, value in env.items()),
    ]
    write_config(ini, "\n".join(lines) + "\n", mode=0o644)
    return Service(name=name, argv=("/usr/bin/uwsgi", "--ini", str(ini)), port=port, region=region)


def config_args(*names: str) -> tuple[str, ...]:
    return tuple(arg for name in names for arg in ("--config-file", str(etc_dir() / name)))


def services() -> list[Service]:
    """Every process of the stack, in start order: the shared ones, then each region's."""
    etc = etc_dir()
    shared = [
        uwsgi(
            "keystone",
            port=5000,
            wsgi_file="/usr/bin/keystone-wsgi-public",
            env={"OS_KEYSTONE_CONFIG_DIR": str(etc)},
        ),
        uwsgi(
            "placement",
            port=8778,
            wsgi_file="/usr/bin/placement-api",
            env={"OS_PLACEMENT_CONFIG_DIR": str(etc)},
        ),
        Service("glance-api", ("/usr/bin/glance-api", *config_args("glance-api.conf")), port=9292),
    ]
    return shared + [service for region in regions() for service in region_services(region)]


def region_services(region: Region) -> list[Service]:
    """The processes of one region's Nova, Cinder and Neutron."""
    nova_files = region.config_files("nova.conf")
    nova = config_args(*nova_files)
    cinder = config_args(*region.config_files("cinder.conf"))
    neutron_files = region.config_files("neutron.conf")

    def service(name: str, argv: tuple[str, ...], port: int | None = None) -> Service:
        return Service(
            region.process(name), argv, port=None if port is None else region.port(port), region=region.name
        )

    return [
        service(
            "neutron-server",
            ("/usr/bin/neutron-server", *config_args(neutron_files[0], "ml2_conf.ini", *neutron_files[1:])),
            port=9696,
        ),
        uwsgi(
            region.process("nova-api"),
            port=region.port(8774),
            wsgi_file="/usr/bin/nova-api-wsgi",
            env={
                "OS_NOVA_CONFIG_DIR": str(etc_dir()),
                "OS_NOVA_CONFIG_FILES": ";".join(("api-paste.ini", *nova_files)),
                "OS_NOVA_DISABLE_EVENTLET_PATCHING": "1",
            },
            region=region.name,
        ),
        service("nova-conductor", ("/usr/bin/nova-conductor", *nova)),
        service("nova-scheduler", ("/usr/bin/nova-scheduler", *nova)),
        service(
            "nova-compute",
            (SYSTEM_PYTHON, "-c", "import sys; from nova.cmd.compute import main; sys.exit(main())", *nova),
        ),
        service(
            "ovs-agent-stand-in",
            (
                SYSTEM_PYTHON,
                str(AGENT_STAND_IN),
                "--host",
                region.compute_host,
                "--bridge-mapping",
                f"{PHYSICAL_NETWORK}:br-ex",
                "--tunnel-type",
                "vxlan",
                "--",
                *config_args(*neutron_files),
            ),
        ),
        service("cinder-api", ("/usr/bin/cinder-api", *cinder), port=8776),
        service("cinder-scheduler", ("/usr/bin/cinder-scheduler", *cinder)),
        service(
            "cinder-volume",
            (
                SYSTEM_PYTHON,
                "-c",
                "import sys; from cinder.cmd.volume import main; sys.exit(main())",
                *cinder,
            ),
        ),
    ]


def read_pid(service: Service) -> int | None:
    """The pid of the service if it runs; a pid file whose pid now names another process is stale."""
    try:
        pid_text, started_text = service.pid_file.read_text(encoding="utf-8").split()
        pid = int(pid_text)
    except (FileNotFoundError, ValueError):
        return None
    return pid if process_alive(pid) and process_start_ticks(pid) == started_text else None


def process_start_ticks(pid: int) -> str:
    """When the process started (clock ticks since boot): with the pid, it names one process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return ""
    # The command name (field 2) may hold spaces; the fields after its closing parenthesis do not.
    return stat.rsplit(")", 1)[1].split()[19]


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) counts as gone.
    with contextlib.suppress(FileNotFoundError):
        status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
        if "\nState:\tZ" in status:
            return False
    return True


def check_ports_free(all_services: list[Service]) -> None:
    """Every API port is free: something else on one of them would make its service exit at once."""
    for service in all_services:
        if service.port is None:
            continue
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", service.port))
            except OSError as error:
                raise StackError(
                    f"127.0.0.1:{service.port} ({service.name}) is taken by a process this script did not "
                    f"start ({error}); `ss -ltnp 'sport = :{service.port}'` names it"
                ) from None


def launch(service: Service) -> None:
    """Start one service in its own session, its output appended to its log."""
    service.log_file.parent.mkdir(parents=True, exist_ok=True)
    service.pid_file.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **dict(service.env)}
    # The virtualenv running this script must not leak into the services' system Python.
    for name in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):
        env.pop(name, None)
    env["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin"
    with service.log_file.open("ab") as output:
        output.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {service.name}\n".encode())
        output.flush()
        process = subprocess.Popen(
            service.argv,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=STATE_DIR,
            env=env,
            start_new_session=True,
        )
    service.pid_file.write_text(f"{process.pid} {process_start_ticks(process.pid)}\n", encoding="utf-8")


def terminate(service: Service) -> None:
    """Stop one service this script started (its whole process group), bounded."""
    pid = read_pid(service)
    if pid is None:
        service.pid_file.unlink(missing_ok=True)
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline and process_alive(pid):
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    service.pid_file.unlink(missing_ok=True)


def log_tail(service: Service, *, lines: int = 40) -> str:
    try:
        text = service.log_file.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return f"(no log at {service.log_file})"
    tail = "\n".join(text.splitlines()[-lines:])
    return f"--- last {lines} lines of {service.log_file} ---\n{tail}"


def http_answers(port: int, path: str) -> bool:
    """True when something answers HTTP on the port with a status below 500."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as response:
            return bool(response.status < 500)
    except urllib.error.HTTPError as error:
        return error.code < 500
    except OSError:
        return False


def wait_until(what: str, check: Callable[[], bool], *, timeout_s: float, service: Service | None) -> None:
    """Poll ``check`` until true; ``StackError`` (with the service's log tail) on timeout or death."""
    deadline = time.monotonic() + timeout_s
    while True:
        if check():
            return
        if service is not None and read_pid(service) is None:
            raise StackError(f"{service.name} exited while waiting for {what}\n{log_tail(service)}")
        if time.monotonic() > deadline:
            tail = f"\n{log_tail(service)}" if service is not None else ""
            raise StackError(f"timed out after {timeout_s:g} s waiting for {what}{tail}")
        time.sleep(POLL_INTERVAL_S)


# --- commands run to completion -----------------------------------------------------------


def run(argv: list[str], *, what: str, ok_codes: tuple[int, ...] = (0,), timeout_s: float = 300) -> str:
    """Run a command to completion; ``StackError`` with its output if it fails."""
    env = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin"
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            cwd=STATE_DIR,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise StackError(f"{what}: timed out after {timeout_s:g} s") from error
    if done.returncode not in ok_codes:
        output = "\n".join((done.stdout + done.stderr).splitlines()[-40:])
        raise StackError(f"{what}: exit code {done.returncode}\n{output}")
    return done.stdout


# --- packages -----------------------------------------------------------------------------


def missing_packages() -> list[str]:
    missing = []
    for package in PACKAGES:
        done = subprocess.run(
            ["/usr/bin/dpkg-query", "-W", "-f=${Status}", package],
            capture_output=True,
            text=True,
            check=False,
        )
        if "install ok installed" not in done.stdout:
            missing.append(package)
    return missing


def install_packages() -> None:
    missing = missing_packages()
    if not missing:
        return
    if os.geteuid() != 0:
        raise StackError(f"packages missing ({', '.join(missing)}) and not root: cannot apt-get install")
    log(f"installing Debian's packages: {' '.join(missing)}")
    subprocess.run(
        ["/usr/bin/debconf-set-selections"],
        input="\n".join(PRESEED) + "\n",
        text=True,
        check=True,
    )
    policy = Path("/usr/sbin/policy-rc.d")
    owned_policy = not policy.exists()
    if owned_policy:
        policy.write_text("#!/bin/sh\n# cloudctl: no service starts during package installs\nexit 101\n")
        policy.chmod(0o755)
    try:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        update = subprocess.run(["apt-get", "update", "-qq"], env=env, check=False)
        if update.returncode != 0:
            log("apt-get update failed; trying the install with the lists at hand")
        done = subprocess.run(
            [
                "apt-get",
                "install",
                "-y",
                "-q",
                "--no-install-recommends",
                "-o",
                "Dpkg::Options::=--force-confdef",
                "-o",
                "Dpkg::Options::=--force-confold",
                *missing,
            ],
            env=env,
            stdout=sys.stderr,
            check=False,
        )
        if done.returncode != 0:
            raise StackError(f"apt-get install {' '.join(missing)} failed (exit code {done.returncode})")
    finally:
        if owned_policy:
            policy.unlink(missing_ok=True)


def package_version(package: str) -> str:
    done = subprocess.run(
        ["/usr/bin/dpkg-query", "-W", "-f=${Version}", package],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip()


# --- PostgreSQL and RabbitMQ --------------------------------------------------------------


def psql(sql: str) -> str:
    return run(["psql", PSQL_URL + "/postgres", "-Atqc", sql], what=f"psql {sql!r}", timeout_s=60)


def check_prerequisites() -> None:
    if "CLOUDCTL_OPENSTACK_DB_URL" not in os.environ:
        script = HERE.parent / "ensure-postgres-cluster.sh"
        run(
            [str(script), str(OWN_POSTGRES_DIR), str(OWN_POSTGRES_PORT), "300"],
            what=script.name,
            timeout_s=600,
        )
    try:
        psql("SELECT 1")
    except StackError as error:
        raise StackError(
            f"PostgreSQL does not answer at {PSQL_URL} (scripts/ensure-postgres.sh): {error}"
        ) from None
    if "CLOUDCTL_OPENSTACK_TRANSPORT_URL" in os.environ:
        return
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=3).close()
    except OSError as error:
        raise StackError(f"RabbitMQ does not answer on 127.0.0.1:5672: {error}") from None


def reset_rabbit_vhost(region: Region) -> None:
    """A fresh vhost per cold start of a region, so that no message of an earlier stack is delivered."""
    if "CLOUDCTL_OPENSTACK_TRANSPORT_URL" in os.environ:
        return
    vhost = region.vhost
    vhosts = run(["rabbitmqctl", "-q", "list_vhosts"], what="rabbitmqctl list_vhosts", timeout_s=60)
    if vhost in vhosts.split():
        run(["rabbitmqctl", "-q", "delete_vhost", vhost], what="rabbitmqctl delete_vhost", timeout_s=60)
    run(["rabbitmqctl", "-q", "add_vhost", vhost], what="rabbitmqctl add_vhost", timeout_s=60)
    run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
        what="rabbitmqctl set_permissions",
        timeout_s=60,
    )


def database_names() -> list[str]:
    """Every database of the stack: the shared services', then each region's."""
    return [f"os_{name}" for name in SHARED_DATABASES] + [
        region.database(name) for region in regions() for name in REGION_DATABASES
    ]


def ensure_databases() -> None:
    """Create the services' databases that are missing."""
    existing = set(psql("SELECT datname FROM pg_database").split())
    for name in database_names():
        if name not in existing:
            psql(f'CREATE DATABASE "{name}"')


def schema_present(service: str, region: Region) -> bool:
    """Every database of the service has tables (a stamp alone could outlive a dropped database)."""
    for name in DATABASES:
        if name == service or name.startswith(f"{service}_"):
            database = region.database(name)
            tables = run(
                [
                    "psql",
                    f"{PSQL_URL}/{database}",
                    "-Atqc",
                    "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
                ],
                what=f"psql {database}",
                timeout_s=60,
            )
            if int(tables.strip() or 0) == 0:
                return False
    return True


def drop_databases(chosen: list[Region]) -> None:
    """Drop the databases of the regions chosen (and the shared ones with the first region)."""
    for region in chosen:
        names = [*(SHARED_DATABASES if region.first else ()), *REGION_DATABASES]
        for name in names:
            psql(f'DROP DATABASE IF EXISTS "{region.database(name)}" WITH (FORCE)')
        for stamp in [*region.lib.glob("*.synced"), *region.lib.glob("*.done")]:
            stamp.unlink()


# --- configuration ------------------------------------------------------------------------


def render_configs() -> None:
    password = admin_password()
    authtoken = (TEMPLATES / "authtoken.part").read_text(encoding="utf-8")
    etc_dir().mkdir(parents=True, exist_ok=True)
    users = {
        "keystone.conf": "keystone",
        "placement.conf": "placement",
        "glance-api.conf": "glance",
        "neutron.conf": "neutron",
        "ml2_conf.ini": "neutron",
        "nova.conf": "nova",
        "cinder.conf": "cinder",
    }
    for name, user in users.items():
        values = {
            "state_dir": str(STATE_DIR),
            "db_url": DB_URL,
            "transport_url": TRANSPORT_URL,
            "service_user": user,
            "service_password": password,
            "compute_host": COMPUTE_HOST,
        }
        section = string.Template(authtoken).substitute(values)
        text = string.Template((TEMPLATES / name).read_text(encoding="utf-8")).substitute(
            values, authtoken=section
        )
        write_config(etc_dir() / name, text)
    shutil.copyfile("/etc/nova/api-paste.ini", etc_dir() / "api-paste.ini")
    for sub in ("keystone", "glance/images", "glance/staging", "glance/tasks", "neutron", "nova", "cinder"):
        (lib_dir() / sub).mkdir(parents=True, exist_ok=True)
    for region in regions()[1:]:
        render_region_configs(region)


def render_region_configs(region: Region) -> None:
    """A further region's overrides of the first region's Nova, Cinder and Neutron configuration."""
    values = {
        "region": region.name,
        "region_lib": str(region.lib),
        "compute_host": region.compute_host,
        "transport_url": region.transport_url,
        "db_url": DB_URL,
        "cinder_port": str(region.port(8776)),
        "neutron_port": str(region.port(9696)),
        **{f"db_{name}": region.database(name) for name in REGION_DATABASES},
    }
    target_dir = etc_dir() / region.name
    target_dir.mkdir(parents=True, exist_ok=True)
    for template in sorted(REGION_TEMPLATES.iterdir()):
        text = string.Template(template.read_text(encoding="utf-8")).substitute(values)
        write_config(target_dir / template.name, text)
    for sub in ("neutron", "nova", "cinder"):
        (region.lib / sub).mkdir(parents=True, exist_ok=True)


# --- database schemas ---------------------------------------------------------------------


def nova_manage(region: Region) -> list[str]:
    return ["nova-manage", *config_args(*region.config_files("nova.conf"))]


def sync_steps(region: Region) -> dict[str, tuple[str, list[list[str]]]]:
    """Per service of the region (the first region's include the shared ones): the package whose
    version stamps the schema, and the commands that sync it."""
    etc = etc_dir()
    nova = nova_manage(region)
    cell0 = f"{DB_URL}/{region.database('nova_cell0')}"
    neutron_files = region.config_files("neutron.conf")
    steps = {
        "keystone": (
            "python3-keystone",
            [["keystone-manage", "--config-file", str(etc / "keystone.conf"), "db_sync"]],
        ),
        "placement": (
            "python3-placement",
            [["placement-manage", "--config-file", str(etc / "placement.conf"), "db", "sync"]],
        ),
        "glance": (
            "python3-glance",
            [["glance-manage", "--config-file", str(etc / "glance-api.conf"), "db_sync"]],
        ),
        "neutron": (
            "python3-neutron",
            [
                [
                    "neutron-db-manage",
                    *config_args(neutron_files[0], "ml2_conf.ini", *neutron_files[1:]),
                    "upgrade",
                    "heads",
                ]
            ],
        ),
        "nova": (
            "python3-nova",
            [
                [*nova, "api_db", "sync"],
                [*nova, "cell_v2", "map_cell0", "--database_connection", cell0],
                [*nova, "db", "sync"],
            ],
        ),
        "cinder": (
            "python3-cinder",
            [["cinder-manage", *config_args(*region.config_files("cinder.conf")), "db", "sync"]],
        ),
    }
    if not region.first:
        for shared in SHARED_DATABASES:
            del steps[shared]
    return steps


SCHEMA_OF = {
    "keystone": "keystone",
    "placement": "placement",
    "glance-api": "glance",
    "neutron-server": "neutron",
    "ovs-agent-stand-in": "neutron",
    "nova-api": "nova",
    "nova-conductor": "nova",
    "nova-scheduler": "nova",
    "nova-compute": "nova",
    "cinder-api": "cinder",
    "cinder-scheduler": "cinder",
    "cinder-volume": "cinder",
}
"""Which schema each process needs before it starts (by its name in the first region)."""


def schema_of(service: Service) -> tuple[str, str]:
    """(schema, region) a process needs before it starts."""
    return SCHEMA_OF[service.name.removesuffix(f".{service.region}")], service.region


def sync_schema(service: str, region: Region, package: str, commands: list[list[str]]) -> None:
    """Bring one service's schema in one region to the installed package's version; skipped when stamped."""
    stamp = region.lib / f"{service}.synced"
    version = package_version(package)
    if (
        stamp.exists()
        and stamp.read_text(encoding="utf-8").strip() == version
        and schema_present(service, region)
    ):
        return
    began = time.monotonic()
    for argv in commands:
        run(argv, what=" ".join(argv[:1] + argv[-2:]))
    if service == "nova":
        # Exit code 2: the cell exists already.
        run(
            [*nova_manage(region), "cell_v2", "create_cell", "--name", "cell1"],
            what="nova-manage cell_v2 create_cell",
            ok_codes=(0, 2),
        )
    if service == "keystone":
        (lib_dir() / "identity.done").unlink(missing_ok=True)
        (lib_dir() / "regions.done").unlink(missing_ok=True)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(version + "\n", encoding="utf-8")
    where = "" if region.first else f" ({region.name})"
    log(f"{service} schema synced{where} in {time.monotonic() - began:.1f} s")


def keystone_keys() -> None:
    keystone = ["keystone-manage", "--config-file", str(etc_dir() / "keystone.conf")]
    owner = ["--keystone-user", "root", "--keystone-group", "root"]
    if not any((lib_dir() / "keystone" / "fernet-keys").glob("0")):
        run([*keystone, "fernet_setup", *owner], what="keystone-manage fernet_setup")
    if not any((lib_dir() / "keystone" / "credential-keys").glob("0")):
        run([*keystone, "credential_setup", *owner], what="keystone-manage credential_setup")


def identity_fingerprint() -> str:
    """What Keystone's users and endpoints were last registered for: password, endpoints, version."""
    text = repr(
        (
            admin_password(),
            ENDPOINTS,
            "roles: admin, service",
            "password_hash_rounds = 4",
            SERVICE_USERS,
            package_version("python3-keystone"),
            DB_URL,  # another database server holds no users yet
        )
    )
    return hashlib.sha256(text.encode()).hexdigest()


def marker_matches(name: str, value: str) -> bool:
    path = lib_dir() / f"{name}.done"
    return path.exists() and path.read_text(encoding="utf-8").strip() == value


def write_marker(name: str, value: str) -> None:
    (lib_dir() / f"{name}.done").write_text(value + "\n", encoding="utf-8")


def keystone_bootstrap() -> None:
    """Admin user, project and role, the identity endpoints; idempotent (resets the password)."""
    run(
        [
            "keystone-manage",
            "--config-file",
            str(etc_dir() / "keystone.conf"),
            "bootstrap",
            "--bootstrap-password",
            admin_password(),
            "--bootstrap-region-id",
            REGION,
            "--bootstrap-admin-url",
            KEYSTONE_URL,
            "--bootstrap-internal-url",
            KEYSTONE_URL,
            "--bootstrap-public-url",
            KEYSTONE_URL,
        ],
        what="keystone-manage bootstrap",
    )


# --- through the APIs (openstacksdk) ------------------------------------------------------


def admin_cloud_config() -> dict[str, object]:
    return {
        "auth": {
            "auth_url": KEYSTONE_URL,
            "username": "admin",
            "password": admin_password(),
            "project_name": "admin",
            "user_domain_name": "Default",
            "project_domain_name": "Default",
        },
        "region_name": REGION,
        "identity_api_version": 3,
        "interface": "public",
    }


def connect(region: str = REGION) -> openstack.connection.Connection:
    config = admin_cloud_config()
    auth = config["auth"]
    assert isinstance(auth, dict)
    return openstack.connect(**auth, region_name=region, identity_api_version=3, interface="public")


def register_services(conn: openstack.connection.Connection) -> None:
    """The service project, the services' users (admin there) and their endpoints."""
    identity = conn.identity
    password = admin_password()
    service_project = identity.find_project("service", domain_id="default") or identity.create_project(
        name="service", domain_id="default", description="OpenStack services"
    )
    # keystonemiddleware accepts a service token (nova -> neutron, cinder) only from a user
    # with the "service" role (service_token_roles_required = true).
    roles = [
        identity.find_role("admin"),
        identity.find_role("service") or identity.create_role(name="service"),
    ]
    for name in SERVICE_USERS:
        user = identity.find_user(name, domain_id="default")
        if user is None:
            user = identity.create_user(name=name, password=password, domain_id="default")
        else:
            identity.update_user(user, password=password)
        for role in roles:
            identity.assign_project_role_to_user(service_project, user, role)
    register_endpoints(conn, regions()[0])


def register_endpoints(conn: openstack.connection.Connection, region: Region) -> None:
    """The region (Keystone's bootstrap made the first) and its endpoints, the shared services' too."""
    identity = conn.identity
    if identity.find_region(region.name) is None:
        identity.create_region(id=region.name, description="cloudctl loopback stack")
    wanted = region.endpoints()
    if not region.first:
        wanted.append(("keystone", "identity", KEYSTONE_URL))
    for name, service_type, url in wanted:
        found = list(identity.services(type=service_type))
        service = found[0] if found else identity.create_service(name=name, type=service_type)
        existing = {
            endpoint.interface: endpoint
            for endpoint in identity.endpoints(service_id=service.id, region_id=region.name)
        }
        for interface in ("public", "internal", "admin"):
            endpoint = existing.get(interface)
            if endpoint is None:
                identity.create_endpoint(
                    service_id=service.id, interface=interface, url=url, region_id=region.name
                )
            elif endpoint.url != url:
                identity.update_endpoint(endpoint, url=url)


def regions_fingerprint() -> str:
    """What the further regions' endpoints were last registered for."""
    endpoints = [region.endpoints() for region in regions()[1:]]
    text = repr((admin_password(), endpoints, KEYSTONE_URL, DB_URL))
    return hashlib.sha256(text.encode()).hexdigest()


def services_up(conn: openstack.connection.Connection, *, compute: bool) -> list[str]:
    """The binaries of Nova (or Cinder) that are not reported up yet."""
    wanted = (
        {"nova-conductor", "nova-scheduler", "nova-compute"}
        if compute
        else {"cinder-scheduler", "cinder-volume"}
    )
    listed = conn.compute.services() if compute else conn.block_storage.services()
    up = {service.binary for service in listed if service.state == "up" and service.status == "enabled"}
    return sorted(wanted - up)


def network_agent_alive(conn: openstack.connection.Connection, region: Region) -> bool:
    """Neutron counts the compute host's Open vSwitch agent (the stand-in) alive: ports bind there."""
    agents = conn.network.agents(host=region.compute_host, agent_type=OVS_AGENT_TYPE)
    return any(agent.is_alive and agent.is_admin_state_up for agent in agents)


def wait_for_agents(conn: openstack.connection.Connection, region: Region, *, timeout_s: float) -> None:
    """The region's Nova and Cinder workers and network agent report up; its compute host is in cell1."""
    by_name = {service.name.removesuffix(f".{region.name}"): service for service in region_services(region)}
    deadline = time.monotonic() + timeout_s
    missing: list[str] = []
    reported: list[str] | None = None
    workers = (
        "nova-conductor",
        "nova-scheduler",
        "nova-compute",
        "cinder-scheduler",
        "cinder-volume",
        "ovs-agent-stand-in",
    )
    while time.monotonic() < deadline:
        for name in workers:
            if read_pid(by_name[name]) is None:
                raise StackError(f"{name} exited\n{log_tail(by_name[name])}")
        missing = services_up(conn, compute=True) + services_up(conn, compute=False)
        if not list(conn.compute.hypervisors()):
            missing.append("hypervisor")
        if not network_agent_alive(conn, region):
            missing.append("ovs-agent-stand-in")
        if not missing:
            return
        if missing != reported:
            log(f"{region.name}: waiting for {', '.join(missing)}")
            reported = missing
        time.sleep(POLL_INTERVAL_S)
    logs = [name for name in missing if name in by_name] or ["nova-compute", "nova-scheduler"]
    tails = "\n".join(log_tail(by_name[name]) for name in logs)
    raise StackError(
        f"{region.name}: timed out after {timeout_s:g} s waiting for "
        f"{', '.join(missing) or 'hypervisor'}\n{tails}"
    )


def ensure_resources(conn: openstack.connection.Connection) -> None:
    """A flavor, a tiny fake image and a shared (flat provider) network, for booting servers by hand.

    cloudctl itself boots servers on each department's own tenant network (``cloudctl.network``
    ``tenant``), which its driver makes in the department's project."""
    if conn.compute.find_flavor(FLAVOR["name"]) is None:
        conn.compute.create_flavor(**FLAVOR, is_public=True)
    if conn.image.find_image(IMAGE_NAME) is None:
        conn.image.create_image(
            name=IMAGE_NAME,
            data=b"cloudctl fake image: the fake compute driver never reads it\n",
            disk_format="raw",
            container_format="bare",
            visibility="public",
            allow_duplicates=True,
        )
    if conn.network.find_network(NETWORK_NAME) is None:
        network = conn.network.create_network(
            name=NETWORK_NAME,
            shared=True,
            provider_network_type="flat",
            provider_physical_network=PHYSICAL_NETWORK,
        )
        conn.network.create_subnet(
            network_id=network.id,
            name=f"{NETWORK_NAME}-v4",
            ip_version=4,
            cidr="10.99.0.0/24",
            is_dhcp_enabled=False,
        )


# --- clouds.yaml --------------------------------------------------------------------------


def clouds_yaml(names: list[str]) -> str:
    """``clouds.yaml`` text with one entry per name, the n-th in the stack's n-th region, all with
    the stack's admin: each name is a cloud of its own (its own Nova, Cinder and Neutron)."""
    available = regions()
    if len(names) > len(available):
        raise StackError(
            f"{len(names)} clouds asked for ({', '.join(names)}), the stack runs {len(available)} regions "
            "(CLOUDCTL_OPENSTACK_REGIONS)"
        )
    lines = ["# The loopback OpenStack of scripts/openstack/stack; one entry per cloud center.", "clouds:"]
    for name, region in zip(names, available, strict=False):
        config = {**admin_cloud_config(), "region_name": region.name}
        auth = config["auth"]
        assert isinstance(auth, dict)
        lines.append(f"  {name}:")
        lines.append("    auth:")
        lines.extend(f"      {key}: {json.dumps(value)}" for key, value in auth.items())
        lines.extend(f"    {key}: {json.dumps(value)}" for key, value in config.items() if key != "auth")
        # cloudctl's own settings (cloudctl.drivers.openstack.cloud.Settings): the fake image, and
        # servers attached to their department's own tenant network (ports bound to the region's
        # compute host).
        settings = {"image": IMAGE_NAME, "network": TENANT_NETWORK_SETTING}
        lines.append(f"    cloudctl: {json.dumps(settings)}")
    return "\n".join(lines) + "\n"


# --- the subcommands ----------------------------------------------------------------------


@contextlib.contextmanager
def locked() -> Iterator[None]:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with (STATE_DIR / "lock").open("w") as handle:
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StackError(f"another start/stop holds {STATE_DIR / 'lock'}") from None
                time.sleep(POLL_INTERVAL_S)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def config_fingerprint(region: Region | None = None) -> str:
    """What a region's processes were made from: the configuration templates, the stand-in agent
    and their command lines. The first region's (with the shared services) is computed as it was
    when the stack had one region, so that it still names the same running stack."""
    first = regions()[0]
    chosen = region or first
    digest = hashlib.sha256()
    for path in [*sorted(TEMPLATES.iterdir()), AGENT_STAND_IN]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    if not chosen.first:
        for path in sorted(REGION_TEMPLATES.iterdir()):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    # The stand-in's path is left out: a checkout elsewhere with the same files runs the same stack.
    listed = [service for service in services() if service.region == chosen.name]
    argv = [[arg.replace(str(HERE), "") for arg in service.argv] for service in listed]
    digest.update(repr(argv).encode())
    # A stack whose databases live on another PostgreSQL server is another stack.
    digest.update(DB_URL.encode())
    return digest.hexdigest()


def config_marker(region: Region) -> Path:
    return run_dir() / ("config.sha256" if region.first else f"config.{region.name}.sha256")


def problems() -> dict[str, list[str]]:
    """Why each region is not up and healthy (a region with none is left out)."""
    found: dict[str, list[str]] = {}
    for region in regions():
        wrong = region_problems(region)
        if wrong:
            found[region.name] = wrong
    return found


def region_problems(region: Region) -> list[str]:
    """Why one region (the first: with the shared services) is not up and healthy; empty when it is."""
    found = []
    marker = config_marker(region)
    recorded = marker.read_text(encoding="utf-8").strip() if marker.exists() else ""
    if recorded != config_fingerprint(region):
        found.append("configuration: the stack runs other templates or agents than scripts/openstack has now")
    for service in services():
        if service.region != region.name:
            continue
        if read_pid(service) is None:
            found.append(f"{service.name}: not running")
        elif service.port is not None and not http_answers(service.port, service.health_path):
            found.append(f"{service.name}: no answer on 127.0.0.1:{service.port}")
    if found:
        return found
    try:
        with contextlib.closing(connect(region.name)) as conn:
            missing = services_up(conn, compute=True) + services_up(conn, compute=False)
            found.extend(f"{binary}: not reported up" for binary in missing)
            if not list(conn.compute.hypervisors()):
                found.append("nova: no hypervisor mapped")
            if conn.compute.find_flavor(FLAVOR["name"]) is None:
                found.append(f"nova: no flavor {FLAVOR['name']}")
            if not network_agent_alive(conn, region):
                found.append(f"neutron: no live Open vSwitch agent on {region.compute_host}")
    except Exception as error:
        found.append(f"api: {type(error).__name__}: {error}")
    return found


SETTLE_TIMEOUT_S = 180.0
"""How long a stack whose processes all run may take to answer and report again before `start`
restarts it: on a loaded machine an API can be slower than a health check's 3 s and a worker's
heartbeat late, and restarting a region under the tests that use it breaks them."""
HARD_PROBLEMS = (": not running", "configuration: ")


def settled(wrong: dict[str, list[str]]) -> dict[str, list[str]]:
    """``wrong`` again after waiting (bounded) for problems that only mean slow: a process that
    runs but did not answer in time, a worker or agent not reported up. A process that is gone
    or runs another configuration is returned at once."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while wrong and time.monotonic() < deadline:
        found = [line for lines in wrong.values() for line in lines]
        if any(mark in line for line in found for mark in HARD_PROBLEMS):
            return wrong
        log(f"waiting for a slow stack before restarting it: {'; '.join(found)}")
        time.sleep(10 * POLL_INTERVAL_S)
        wrong = problems()
    return wrong


def start(*, fresh: bool) -> None:
    started_at = time.monotonic()

    def elapsed() -> str:
        return f"{time.monotonic() - started_at:.1f} s"

    with locked():
        wrong = {} if fresh else settled(problems())
        if not fresh and not wrong:
            clouds_yaml_path().write_text(clouds_yaml(["cloudctl-openstack"]), encoding="utf-8")
            log(f"reusing the stack that is up ({elapsed()})")
            return
        every = regions()
        # A region that is up and healthy keeps running: its clients never notice the others' restart.
        chosen = every if fresh else [region for region in every if region.name in wrong]
        for region in chosen:
            if region.name in wrong:
                log(f"{region.name}: {'; '.join(wrong[region.name])}")
        restarted = [service for service in services() if service.region in {r.name for r in chosen}]
        for service in reversed(restarted):
            terminate(service)
        install_packages()
        check_prerequisites()
        if fresh:
            log("dropping the services' databases")
            drop_databases(chosen)
        render_configs()
        by_name = {service.name: service for service in restarted}
        check_ports_free(restarted)
        ensure_databases()
        keystone_keys()
        first = every[0]
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            # Nova's schemas take longest: start them first. Keystone comes up as soon as its
            # schema is there; every other service starts once its own schema and its user are.
            vhosts = [pool.submit(reset_rabbit_vhost, region) for region in chosen]
            steps = [
                ((name, region.name), (region, *step))
                for region in every
                for name, step in sync_steps(region).items()
            ]
            steps.sort(key=lambda item: item[0][0] != "nova")
            synced = {key: pool.submit(sync_schema, key[0], *args) for key, args in steps}
            synced[("keystone", first.name)].result()
            identity_marker = identity_fingerprint()
            identity_current = marker_matches("identity", identity_marker)
            if not identity_current:
                keystone_bootstrap()
            if "keystone" in by_name:
                launch(by_name["keystone"])
            wait_until(
                "keystone",
                lambda: http_answers(5000, "/v3"),
                timeout_s=START_TIMEOUT_S,
                service=services()[0],
            )
            if not identity_current:
                with contextlib.closing(connect()) as bootstrap_conn:
                    register_services(bootstrap_conn)
                write_marker("identity", identity_marker)
            regions_marker = regions_fingerprint()
            if not marker_matches("regions", regions_marker):
                with contextlib.closing(connect()) as bootstrap_conn:
                    for region in every[1:]:
                        register_endpoints(bootstrap_conn, region)
                write_marker("regions", regions_marker)
            log(f"keystone up, services registered ({elapsed()})")
            for future in vhosts:
                future.result()
            for name, service in by_name.items():
                if name != "keystone":
                    synced[schema_of(service)].result()
                    launch(service)
            for future in synced.values():
                future.result()
        log(f"schemas ready, every service started ({elapsed()})")
        for service in by_name.values():
            if service.port is not None:
                port = service.port
                wait_until(
                    f"{service.name} on 127.0.0.1:{port}",
                    functools.partial(http_answers, port, service.health_path),
                    timeout_s=START_TIMEOUT_S,
                    service=service,
                )
        log(f"every API answers ({elapsed()})")
        for region in chosen:
            with contextlib.closing(connect(region.name)) as conn:
                wait_for_agents(conn, region, timeout_s=START_TIMEOUT_S)
                ensure_resources(conn)
            config_marker(region).write_text(config_fingerprint(region) + "\n", encoding="utf-8")
            log(f"{region.name}: every worker reports up ({elapsed()})")
        clouds_yaml_path().write_text(clouds_yaml(["cloudctl-openstack"]), encoding="utf-8")
        still = problems()
        if still:
            raise StackError(
                "the stack is not healthy after start: "
                + "; ".join(f"{name}: {', '.join(found)}" for name, found in still.items())
            )
    log(f"stack up in {elapsed()} ({len(every)} regions); clouds.yaml: {clouds_yaml_path()}")


def stop(region_names: list[str] | None = None) -> None:
    """Stop every process this script started, or only the named further regions' (the first
    region holds the shared services: it stops with the whole stack only)."""
    chosen = regions() if not region_names else [region_named(name) for name in region_names]
    if region_names and any(region.first for region in chosen):
        raise StackError(f"{REGION} holds the shared services: stop the whole stack instead")
    names = {region.name for region in chosen}
    with locked():
        for region in chosen:
            config_marker(region).unlink(missing_ok=True)
        for service in reversed(services()):
            if service.region in names:
                terminate(service)
    log(f"stopped: {', '.join(sorted(names))}")


def status() -> int:
    found = problems()
    for region, lines in found.items():
        for line in lines:
            print(f"{region}: {line}")
    if not found:
        names = ", ".join(region.name for region in regions())
        print(f"up ({names}): {', '.join(service.name for service in services())}")
    return 1 if found else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/openstack/stack", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    start_parser = commands.add_parser("start", help="bring the stack up, or reuse it when it is healthy")
    start_parser.add_argument("--fresh", action="store_true", help="drop the services' databases first")
    stop_parser = commands.add_parser("stop", help="stop every process this script started")
    stop_parser.add_argument(
        "--region",
        action="append",
        dest="regions",
        help="stop only this further region (repeatable); `start` brings it back",
    )
    commands.add_parser("status", help="exit 0 when every service answers, else list what is wrong")
    clouds = commands.add_parser("clouds-yaml", help="print (or write) clouds.yaml entries for the stack")
    clouds.add_argument("names", nargs="*", default=["cloudctl-openstack"], help="cloud names (centers)")
    clouds.add_argument("--output", type=Path, help="write here instead of printing")
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            start(fresh=args.fresh)
        elif args.command == "stop":
            stop(args.regions)
        elif args.command == "status":
            return status()
        else:
            text = clouds_yaml(args.names)
            if args.output is None:
                sys.stdout.write(text)
            else:
                args.output.write_text(text, encoding="utf-8")
                args.output.chmod(0o600)
    except StackError as error:
        log(f"FAILED: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
