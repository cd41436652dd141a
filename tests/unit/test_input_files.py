"""A file the user names is read only when it is one: a device is refused unread, and a file or
pipe over the bound is refused, each as one line naming the option."""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

import pytest

from cloudctl import errors
from cloudctl.services import context as ctx_module
from cloudctl.services import drills


def test_a_device_is_refused_unread() -> None:
    with pytest.raises(errors.InvalidInput) as refused:
        errors.read_input_file(Path("/dev/zero"), field="topology")
    assert refused.value.field == "topology"
    assert "is a device" in refused.value.reason


def test_a_file_over_the_bound_is_refused_and_one_within_it_read(tmp_path: Path) -> None:
    big, small = tmp_path / "big.yaml", tmp_path / "small.yaml"
    big.write_text("a" * 11, encoding="utf-8")
    small.write_text("名: 1\n", encoding="utf-8")
    with pytest.raises(errors.InvalidInput, match="over 10 bytes"):
        errors.read_input_file(big, field="plan", max_bytes=10)
    assert errors.read_input_file(small, field="plan", max_bytes=10) == "名: 1\n"


def test_a_pipe_is_read_up_to_the_bound(tmp_path: Path) -> None:
    fifo = tmp_path / "plan.fifo"
    os.mkfifo(fifo)

    def write(data: bytes) -> None:
        with contextlib.suppress(BrokenPipeError), fifo.open("wb") as handle:
            handle.write(data)

    writer = threading.Thread(target=write, args=(b"b" * 100,))
    writer.start()
    with pytest.raises(errors.InvalidInput, match="over 10 bytes"):
        errors.read_input_file(fifo, field="plan", max_bytes=10)
    writer.join(timeout=60)
    writer = threading.Thread(target=write, args=(b"ok",))
    writer.start()
    assert errors.read_input_file(fifo, field="plan", max_bytes=10) == "ok"
    writer.join(timeout=60)


def test_a_drill_plan_name_no_file_can_have_is_not_found(ctx: ctx_module.Context, tmp_path: Path) -> None:
    with pytest.raises(errors.NotFound) as refused:
        drills.resolve_plan(ctx, "x" * 300, tmp_path)
    assert refused.value.field == "plan"
