"""The test rig's own guarantees: a bounded command leaves no child behind, and the loopback
OpenStack's ``start`` waits for a slow stack instead of restarting it under the tests."""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.support import processes


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child of a finished parent may linger as a zombie until init reaps it.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_a_command_that_outlives_its_bound_is_killed_with_its_children(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    script = "\n".join(
        [
            "import subprocess, sys",
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])",
            f"open({str(pid_file)!r}, 'w').write(str(child.pid))",
            "print('started', flush=True)",
            "child.wait()",
        ]
    )

    with pytest.raises(processes.Timeout) as raised:
        processes.run_bounded([sys.executable, "-c", script], timeout_s=20)

    child = int(pid_file.read_text())
    deadline = 200
    while alive(child) and deadline:
        os.sched_yield()
        deadline -= 1
    assert not alive(child)
    assert "started" in raised.value.output
    assert "did not finish within 20 s" in str(raised.value)


def test_a_command_that_finishes_returns_its_output_and_code() -> None:
    done = processes.run_bounded(
        [sys.executable, "-c", "import sys; print('out'); sys.exit(3)"], timeout_s=60
    )

    assert (done.returncode, done.stdout) == (3, "out\n")


@pytest.fixture
def stack_script(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("stack_script", ROOT / "scripts" / "openstack" / "stack.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    clock = iter(range(0, 100_000, 10))  # each look at the clock: 10 s later, no real waiting
    monkeypatch.setattr(
        module, "time", types.SimpleNamespace(monotonic=lambda: float(next(clock)), sleep=lambda _s: None)
    )
    monkeypatch.setattr(module, "log", lambda _message: None)
    return module


def test_a_slow_stack_is_waited_for_until_it_answers(
    stack_script: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = iter([{"RegionOne": ["nova-compute: not reported up"]}, {}])
    monkeypatch.setattr(stack_script, "problems", lambda: next(answers))

    assert stack_script.settled({"RegionOne": ["nova-api: no answer on 127.0.0.1:8774"]}) == {}


@pytest.mark.parametrize(
    "problem",
    [
        "nova-compute: not running",
        "configuration: the stack runs other templates or agents than scripts/openstack has now",
    ],
)
def test_a_stopped_or_changed_stack_is_not_waited_for(
    stack_script: types.ModuleType, monkeypatch: pytest.MonkeyPatch, problem: str
) -> None:
    monkeypatch.setattr(stack_script, "problems", lambda: pytest.fail("asked again"))
    wrong = {"RegionTwo": ["cinder-volume: not reported up", problem]}

    assert stack_script.settled(wrong) == wrong


def test_a_stack_that_stays_slow_is_restarted_after_the_bound(
    stack_script: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = []
    slow = {"RegionOne": ["neutron: no live Open vSwitch agent on cloudctl-openstack"]}
    monkeypatch.setattr(stack_script, "problems", lambda: asked.append(1) or slow)

    assert stack_script.settled(slow) == slow
    assert 0 < len(asked) <= stack_script.SETTLE_TIMEOUT_S / 10


def test_a_service_configuration_is_replaced_whole_and_left_alone_when_unchanged(
    stack_script: types.ModuleType, tmp_path: Path
) -> None:
    """A service starting while ``services()`` is asked again must never read its file empty."""
    ini = tmp_path / "etc" / "keystone-uwsgi.ini"
    stack_script.write_config(ini, "[uwsgi]\nprocesses = 1\n", mode=0o644)
    first = ini.stat()
    assert ini.read_text() == "[uwsgi]\nprocesses = 1\n" and first.st_mode & 0o777 == 0o644

    stack_script.write_config(ini, "[uwsgi]\nprocesses = 1\n", mode=0o644)
    assert ini.stat().st_ino == first.st_ino and ini.stat().st_mtime_ns == first.st_mtime_ns

    stack_script.write_config(ini, "[uwsgi]\nprocesses = 2\n")
    second = ini.stat()
    assert second.st_ino != first.st_ino, "rewritten in place, not replaced by a rename"
    assert ini.read_text() == "[uwsgi]\nprocesses = 2\n" and second.st_mode & 0o777 == 0o600
    assert sorted(path.name for path in ini.parent.iterdir()) == ["keystone-uwsgi.ini"]
