"""The parsed topology is cached under the home by the hash of its text, and in the process;
a bad entry is ignored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudctl.model import topology as topo
from cloudctl.services import context as ctx_module

TOPOLOGY = Path(__file__).resolve().parents[3] / "infra" / "topology.yaml"


@pytest.fixture(autouse=True)
def new_process() -> Iterator[None]:
    """Each test starts as a new process would, with nothing parsed yet."""
    saved = dict(ctx_module._PARSED)
    ctx_module._PARSED.clear()
    yield
    ctx_module._PARSED.clear()
    ctx_module._PARSED.update(saved)


def test_a_cached_topology_equals_the_parsed_one_and_is_read_back(tmp_path: Path) -> None:
    text = TOPOLOGY.read_text(encoding="utf-8")
    first = ctx_module.parse_topology_cached(text, cache_dir=tmp_path)
    entries = list(tmp_path.glob("topology-*.pickle"))
    second = ctx_module.parse_topology_cached(text, cache_dir=tmp_path)

    assert first == topo.parse(text)
    assert second == first
    assert len(entries) == 1


def test_another_text_gets_its_own_entry(tmp_path: Path) -> None:
    text = TOPOLOGY.read_text(encoding="utf-8")
    renamed = text.replace("display_name: 青岛市电子政务云", "display_name: 青岛市电子政务云（测试）", 1)

    assert ctx_module.parse_topology_cached(renamed, cache_dir=tmp_path).display_name.endswith("（测试）")
    assert ctx_module.parse_topology_cached(text, cache_dir=tmp_path).display_name == "青岛市电子政务云"
    assert len(list(tmp_path.glob("topology-*.pickle"))) == 2


def test_a_damaged_entry_is_parsed_again_and_replaced(tmp_path: Path) -> None:
    text = TOPOLOGY.read_text(encoding="utf-8")
    ctx_module.parse_topology_cached(text, cache_dir=tmp_path)
    (entry,) = tmp_path.glob("topology-*.pickle")
    entry.write_bytes(b"not a pickle")
    ctx_module._PARSED.clear()  # the next command, in a process of its own

    assert ctx_module.parse_topology_cached(text, cache_dir=tmp_path) == topo.parse(text)
    assert entry.read_bytes() != b"not a pickle"


def test_an_unwritable_cache_only_costs_the_parse(tmp_path: Path) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the directory would be")
    text = TOPOLOGY.read_text(encoding="utf-8")

    assert ctx_module.parse_topology_cached(text, cache_dir=blocker) == topo.parse(text)


def test_a_process_parses_a_text_once_and_every_context_shares_it(tmp_path: Path) -> None:
    text = TOPOLOGY.read_text(encoding="utf-8")
    first = ctx_module.parse_topology_cached(text, cache_dir=tmp_path / "home-a")
    elsewhere = ctx_module.parse_topology_cached(text, cache_dir=tmp_path / "home-b")

    assert elsewhere is first
    assert len(list((tmp_path / "home-b").glob("topology-*.pickle"))) == 1  # the next command reads it


def test_the_process_keeps_a_few_topologies_at_most(tmp_path: Path) -> None:
    text = TOPOLOGY.read_text(encoding="utf-8")
    for n in range(ctx_module._PARSED_LIMIT + 3):
        renamed = text.replace("display_name: 青岛市电子政务云", f"display_name: 青岛市电子政务云{n}", 1)
        assert ctx_module.parse_topology_cached(renamed, cache_dir=tmp_path).display_name.endswith(str(n))

    assert len(ctx_module._PARSED) <= ctx_module._PARSED_LIMIT


def test_a_stored_topology_with_a_key_given_twice_is_read_as_it_was_accepted(tmp_path: Path) -> None:
    """Files handed in now refuse a key given twice; a store initialised from one before still
    opens, its stored copy read as then (the last key kept)."""
    import yaml

    from cloudctl import errors

    text = TOPOLOGY.read_text(encoding="utf-8")
    twice = text.replace("\nlinks:", "\nlinks: []\nlinks:", 1)
    with pytest.raises(errors.TopologyError, match="duplicate key 'links'"):
        topo.parse(twice)

    stored = ctx_module.parse_topology_cached(twice, cache_dir=tmp_path)

    assert stored == topo.from_data(yaml.safe_load(twice)) == topo.parse(text)
