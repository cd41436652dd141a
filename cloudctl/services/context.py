"""The context every use case runs in: settings, store, topology, clock, drivers.

Invariants:
- Nothing is opened until it is used: ``cloudctl --help`` pays for none of it.
- After ``init`` the topology in force is the copy stored at init (so every
  process agrees on it, whatever file is beside it); before, it is the file. The
  parsed copy is cached under the home, keyed by the hash of its text.
- The store is reached with retries (tenacity, clock-driven backoff); after the
  last attempt a ``BackendUnavailable`` (exit code 3) reaches the caller.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import os
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import tenacity

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl import settings as settings_module
from cloudctl.model import topology as topo

if TYPE_CHECKING:
    from cloudctl.store import db

TOPOLOGY_KEY = "topology_yaml"
INITIALISED_KEY = "initialised_at"

T = TypeVar("T")


@dataclasses.dataclass
class Context:
    settings: settings_module.Settings
    clock: clocks.Clock = dataclasses.field(default_factory=clocks.SystemClock)
    _store: db.Store | None = None
    cache: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Objects built once per context (drivers, policy engines), by the services that own them."""

    @property
    def store(self) -> db.Store:
        if self._store is None:
            from cloudctl.store import db

            if self.settings.uses_default_sqlite:
                try:
                    self.settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)
                except OSError as error:
                    raise errors.InvalidInput(
                        f"cannot make the state directory {self.settings.home}: {error.strerror}",
                        field="home",
                    ) from None
            pool = db.PoolSettings(
                size=self.settings.db_pool_size,
                max_overflow=self.settings.db_pool_max_overflow,
                timeout_s=self.settings.db_pool_timeout_s,
            )
            self._store = db.Store(self.settings.resolved_database_url(), pool=pool)
        return self._store

    def close(self) -> None:
        self.cache.clear()
        if self._store is not None:
            self._store.dispose()
            self._store = None

    def move_to(self, database_url: str) -> None:
        """Go on against another database (the management standby, promoted): whoever holds this
        context follows, the API serving from it included. Drivers and caches are built again."""
        self.close()
        self.settings = self.settings.model_copy(update={"database_url": database_url})

    # --- retries ---------------------------------------------------------------------------

    def retrying(self, operation: Callable[[], T]) -> T:
        """Run ``operation`` again after an unreachable store, with exponential backoff."""
        retry = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(errors.BackendUnavailable),
            stop=tenacity.stop_after_attempt(max(self.settings.store_attempts, 1)),
            wait=tenacity.wait_exponential(multiplier=0.2, max=2.0),
            sleep=self.clock.sleep,
            reraise=True,
        )
        return retry(operation)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[db.Transaction]:
        """A write transaction on a store that has been initialised."""
        self.require_initialised()
        with self.store.transaction() as tx:
            yield tx

    @contextlib.contextmanager
    def read(self) -> Iterator[db.Transaction]:
        self.require_initialised()
        with self.store.read() as tx:
            yield tx

    # --- initialisation and topology ----------------------------------------------------------

    @property
    def _holds_no_state_file(self) -> bool:
        """The default SQLite store's file does not exist: nothing to open, nor to create."""
        if self._store is not None or not self.settings.uses_default_sqlite:
            return False
        return not (self.settings.home / "state.db").exists()

    def is_initialised(self) -> bool:
        from cloudctl.store import centers

        if self._holds_no_state_file:
            return False  # opening would create the file, and the home, for a command refused anyway

        def probe() -> bool:
            if not self.store.is_migrated():
                return False
            with self.store.read() as tx:
                return centers.get_setting(tx, INITIALISED_KEY) is not None

        return self.retrying(probe)

    def require_initialised(self) -> None:
        if not self._initialised:
            raise errors.InvalidInput(self._not_initialised(), field="home")

    def require_known_schema(self) -> str | None:
        """The store's schema revision (``None``: none yet); refused when a newer cloudctl wrote it
        (a revision this one does not know)."""
        from cloudctl.store import migrations

        revision = self.retrying(self.store.schema_revision)
        if revision is not None and revision not in migrations.script_revisions():
            raise errors.InvalidInput(self._not_initialised(revision), field="home")
        return revision

    def _not_initialised(self, revision: str | None = None) -> str:
        """Why the store cannot be used as it is: no state, or state of another schema revision."""
        from cloudctl.store import migrations

        if revision is None and not self._holds_no_state_file:
            revision = self.retrying(self.store.schema_revision)
        wrong = migrations.behind_or_ahead(revision)
        if wrong is not None:
            return f"the cloudctl state at {self.describe_store()} {wrong}"
        return f"no cloudctl state at {self.describe_store()}; run `cloudctl init` first"

    @functools.cached_property
    def _initialised(self) -> bool:
        return self.is_initialised()

    def forget_initialised(self) -> None:
        self.__dict__.pop("_initialised", None)
        self.__dict__.pop("topology", None)

    def describe_store(self) -> str:
        if self.settings.uses_default_sqlite:
            return str(self.settings.home / "state.db")
        url = self.settings.resolved_database_url()
        return url.split("@", 1)[-1] if "@" in url else url

    def read_topology_file(self, path: Path | None = None) -> topo.Topology:
        path = path or self.settings.topology
        return topo.parse(errors.read_input_file(path, field="topology"))

    @functools.cached_property
    def topology(self) -> topo.Topology:
        """The topology in force: the stored copy once initialised, else the file."""
        from cloudctl.store import centers

        if self._initialised:
            with self.store.read() as tx:
                text = centers.get_setting(tx, TOPOLOGY_KEY)
            if text is not None:
                return parse_topology_cached(text, cache_dir=self.settings.home / TOPOLOGY_CACHE_DIR)
        return self.read_topology_file()


TOPOLOGY_CACHE_DIR = "cache"
"""Under the home: parsed topologies, one file per topology text (and model version)."""


_PARSED: dict[str, topo.Topology] = {}
"""Topologies this process has parsed, by the same key as the entries on disk (a few at most)."""
_PARSED_LIMIT = 8


def parse_topology_cached(text: str, *, cache_dir: Path) -> topo.Topology:
    """``topo.parse(text, stored=True)``, remembered by the hash of the text and of the model's code: in
    this process, and on disk for the next command.

    Parsing and validating the YAML costs several times what reading back the parsed object
    does, and every command (and every context a process opens) pays it. The key changes with
    the text and with the model's source, so a stale entry is never read; a cache that cannot
    be read or written is skipped (the text is parsed as before). A topology is frozen, so one
    parsed object serves every context that asks.
    """
    model_source = Path(topo.__file__)
    stamp = model_source.stat()
    key = hashlib.sha256(
        f"{stamp.st_mtime_ns}:{stamp.st_size}:{model_source}\0".encode() + text.encode()
    ).hexdigest()
    path = cache_dir / f"topology-{key[:32]}.pickle"
    topology = _PARSED.get(key)
    if topology is not None:
        if not path.exists():
            _write_entry(path, topology)
        return topology
    topology = _read_entry(path)
    if topology is None:
        topology = topo.parse(text, stored=True)
        _write_entry(path, topology)
    if len(_PARSED) >= _PARSED_LIMIT:
        _PARSED.clear()
    _PARSED[key] = topology
    return topology


def _read_entry(path: Path) -> topo.Topology | None:
    with contextlib.suppress(OSError, pickle.UnpicklingError, EOFError, AttributeError, TypeError):
        cached = pickle.loads(path.read_bytes())
        if isinstance(cached, topo.Topology):
            return cached
    return None


def _write_entry(path: Path, topology: topo.Topology) -> None:
    with contextlib.suppress(OSError, pickle.PicklingError):
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.partial")
        partial.write_bytes(pickle.dumps(topology, protocol=pickle.HIGHEST_PROTOCOL))
        partial.replace(path)


def open_context(settings: settings_module.Settings, *, clock: clocks.Clock | None = None) -> Context:
    return Context(settings=settings, clock=clock or clocks.SystemClock())
