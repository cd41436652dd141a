"""On SQLite the simulator's lookups probe an index, whatever the number of documents of a kind:
each test runs a lookup, takes the statement it sent and reads SQLite's plan for it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from cloudctl.model import names
from cloudctl.store import db, simulator_state


@pytest.fixture
def state(tmp_path: Path) -> Iterator[simulator_state.StoreBackedState]:
    store = db.Store(db.sqlite_url(tmp_path))
    store.migrate()
    yield simulator_state.StoreBackedState(store)
    store.dispose()


def plan_of(state: simulator_state.StoreBackedState, lookup: Callable[[], object]) -> list[str]:
    """SQLite's plan for the one statement on ``sim_objects`` that ``lookup`` sends."""
    seen: list[tuple[str, object]] = []

    def remember(_conn: object, _cursor: object, statement: str, parameters: object, *_: object) -> None:
        if "FROM sim_objects" in statement:
            seen.append((statement, parameters))

    engine = state.store.engine
    sa.event.listen(engine, "before_cursor_execute", remember)
    try:
        lookup()
    finally:
        sa.event.remove(engine, "before_cursor_execute", remember)
    [(statement, parameters)] = seen
    with state.store.read() as connection:
        plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()  # type: ignore[arg-type]
    return [str(row[-1]) for row in plan]


@pytest.mark.parametrize(
    ("kind", "field", "index"),
    [
        ("server", "name", "ix_sim_objects_name"),
        ("volume", "attached_to", "ix_sim_objects_attached_to"),
        ("snapshot", "volume_id", "ix_sim_objects_volume_id"),
    ],
)
def test_a_lookup_by_a_column_field_probes_its_index(
    state: simulator_state.StoreBackedState, kind: str, field: str, index: str
) -> None:
    state.put("east", kind, "k1", {"name": "web", field: "x"})

    def lookup() -> None:
        assert state.find_all_by("east", kind, where={field: "x"}) == [{"name": "web", field: "x"}]

    assert plan_of(state, lookup) == [
        f"SEARCH sim_objects USING INDEX {index} (center=? AND kind=? AND {field}=?)"
    ]


@pytest.mark.parametrize("verb", ["list", "keys"])
def test_a_listing_under_a_key_prefix_probes_the_primary_key(
    state: simulator_state.StoreBackedState, verb: str
) -> None:
    for key in ("b1/x", "b1/y", "b10/x", "b2/x"):
        state.put("east", "object", key, {"key": key})

    def lookup() -> None:
        found = getattr(state, verb)("east", "object", key_prefix="b1/")
        assert [item if verb == "keys" else item["key"] for item in found] == ["b1/x", "b1/y"]

    [step] = plan_of(state, lookup)
    assert step.startswith("SEARCH sim_objects USING")
    assert "INDEX sqlite_autoindex_sim_objects_1 (center=? AND kind=? AND key>? AND key<?)" in step


def test_a_search_by_the_start_of_a_name_probes_the_name_index(
    state: simulator_state.StoreBackedState,
) -> None:
    for index, name in enumerate(("wl-1-0", "replica-wl-1-0", "wl-10-0", "rp-wl-1-0-3", "web")):
        state.put("east", "volume", f"v{index}", {"name": name, "project": "p"})

    def lookup() -> None:
        found = state.find_all_by(
            "east", "volume", where={"project": "p"}, name_prefixes=names.owned_prefixes("wl-1")
        )
        assert [doc["name"] for doc in found] == ["wl-1-0", "replica-wl-1-0", "rp-wl-1-0-3"]

    steps = [step for step in plan_of(state, lookup) if "sim_objects" in step]
    probe = "SEARCH sim_objects USING INDEX ix_sim_objects_name (center=? AND kind=? AND name>? AND name<?)"
    assert steps == [probe] * 4  # one for each of the four ways a workload names what it owns
