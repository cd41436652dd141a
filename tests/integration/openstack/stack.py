"""The loopback OpenStack of ``scripts/openstack/stack``, made to answer for the tests.

``ensure_up()`` runs ``stack.py start`` once per test process, ``start_or_reuse()`` each time
it is called (a stack that is already up and healthy is reused in a second or two, one that is
only slow is waited for, a service that died is started again) and fails the tests loudly, with the script's
output, when it cannot be brought up: the OpenStack tests never skip. ``write_clouds_yaml``
writes ``clouds.yaml`` entries named after centers, the n-th center in the stack's n-th region
(a cloud of its own: its own Nova, Cinder and Neutron), with cloudctl's settings as the stack
writes them (or as the caller overrides them).
"""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

import openstack.config
import openstack.connection
import pytest
import yaml

from cloudctl import clock as clocks
from cloudctl.drivers import openstack as openstack_driver
from tests.support import processes

ROOT = Path(__file__).resolve().parents[3]
STACK_SCRIPT = ROOT / "scripts" / "openstack" / "stack.py"
START_TIMEOUT_S = 840.0
"""Covers installing Debian's packages on a new machine (a few minutes) and a cold start of the
three regions (a few minutes on a loaded machine: Nova's schemas take longest), inside the
suite's 900 s for one test."""


@functools.cache
def ensure_up() -> None:
    """``start_or_reuse`` once per process."""
    start_or_reuse()


def start_or_reuse() -> None:
    """``stack.py start``: reuses a healthy stack (waiting a while for a slow one), restarts
    what is down; fails the calling test with the script's output when it cannot. The output
    is printed: a test that fails after a restart shows it with its captured output."""
    try:
        done = processes.run_bounded([sys.executable, str(STACK_SCRIPT), "start"], timeout_s=START_TIMEOUT_S)
    except processes.Timeout as timeout:
        pytest.fail(f"{timeout}:\n{timeout.output}", pytrace=False)
    if done.returncode != 0:
        pytest.fail(
            f"the loopback OpenStack did not come up ({STACK_SCRIPT} start, exit code {done.returncode}):\n"
            f"{done.stdout}{done.stderr}",
            pytrace=False,
        )
    print(f"{done.stdout}{done.stderr}", end="")


def write_clouds_yaml(path: Path, *, centers: list[str], **settings: object) -> Path:
    """``clouds.yaml`` for ``centers``; ``settings`` override keys of each entry's ``cloudctl:``."""
    ensure_up()
    subprocess.run(
        [sys.executable, str(STACK_SCRIPT), "clouds-yaml", *centers, "--output", str(path)],
        check=True,
        timeout=60,
    )
    if settings:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        for entry in document["clouds"].values():
            entry["cloudctl"] = {**entry.get("cloudctl", {}), **settings}
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def open_cloud(*, center: str, clouds_yaml: Path) -> openstack_driver.Cloud:
    """The driver's ``Cloud`` for ``center`` on real time: polling a real cloud needs a real clock."""
    return openstack_driver.Cloud.from_clouds_yaml(
        center=center, clouds_yaml=clouds_yaml, clock=clocks.SystemClock()
    )


def sdk_connection(*, cloud: str, clouds_yaml: Path) -> openstack.connection.Connection:
    """openstacksdk's own connection to one cloud of ``clouds_yaml``: a client cloudctl did not
    write, for checking what cloudctl did (the caller closes it)."""
    config = openstack.config.OpenStackConfig(config_files=[str(clouds_yaml)], load_envvars=False)
    return openstack.connection.Connection(config=config.get_one(cloud=cloud))
