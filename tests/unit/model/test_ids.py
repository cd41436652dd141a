"""``model.ids``: random id parts from the operating system's bytes, a page at a time."""

from __future__ import annotations

import os
import random
import re
import threading
import warnings

from cloudctl.model import ids


def test_ids_have_the_asked_length_in_hex_and_never_repeat() -> None:
    drawn = [ids.random_hex(32) for _ in range(5000)] + [ids.random_hex(8) for _ in range(5000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}|[0-9a-f]{8}", value) for value in drawn)
    assert len(set(drawn[:5000])) == 5000  # 128 bits: a repeat would be a bug, not luck


def test_seeding_the_shared_generator_does_not_make_ids_equal() -> None:
    random.seed(7)
    first = ids.random_hex(32)
    random.seed(7)
    assert ids.random_hex(32) != first


def test_threads_drawing_at_once_get_distinct_ids() -> None:
    drawn: list[str] = []
    lock = threading.Lock()

    def draw() -> None:
        mine = [ids.random_hex(32) for _ in range(2000)]
        with lock:
            drawn.extend(mine)

    threads = [threading.Thread(target=draw) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(drawn)) == len(drawn) == 16000


def test_a_forked_child_draws_other_ids_than_its_parent() -> None:
    ids.random_hex(32)  # the parent holds a page of bytes the child must not reuse
    reader, writer = os.pipe()
    with warnings.catch_warnings():  # other tests' threads may run: the child touches none of them
        warnings.simplefilter("ignore", DeprecationWarning)
        child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.close(reader)
        os.write(writer, "".join(ids.random_hex(32) for _ in range(4)).encode())
        os._exit(0)
    os.close(writer)
    with os.fdopen(reader) as pipe:
        from_child = pipe.read()
    os.waitpid(child, 0)
    from_parent = "".join(ids.random_hex(32) for _ in range(4))
    assert len(from_child) == 128 and from_child != from_parent
