"""Simulated containers of one center: ``base.Containers`` over the center's ``CenterCore``.

Invariants:

- A namespace consumes its quota's ``vcpu`` and ``ram_gb`` of the center's capacity
  from its creation; changing the quota consumes or frees the difference, deleting it
  frees it all. Project quotas do not bound namespaces.
- Namespace names are unique per center.
"""

from __future__ import annotations

from cloudctl import errors
from cloudctl.drivers import base
from cloudctl.drivers.simulator import core as sim_core
from cloudctl.drivers.simulator import state
from cloudctl.drivers.simulator.core import KIND_NAMESPACE


class SimulatedContainers:
    """The simulator's ``base.Containers`` for one center."""

    def __init__(self, core: sim_core.CenterCore) -> None:
        self._core = core
        self.name = core.name

    def create_namespace(self, name: str, *, vcpu: int, ram_gb: int) -> base.Namespace:
        base.check_sizes(vcpu=vcpu, ram_gb=ram_gb)
        self._core.operate("create_namespace")
        doc = {"name": name, "vcpu": vcpu, "ram_gb": ram_gb, "created_at": self._core.clock.now()}
        with self._core.writing() as transaction:
            if transaction.get(self.name, KIND_NAMESPACE, name) is not None:
                raise errors.Conflict(f"namespace {name!r} exists in center {self.name}", field="namespace")
            self._core.consume(transaction, vcpu=vcpu, ram_gb=ram_gb)
            transaction.put(self.name, KIND_NAMESPACE, name, doc)
        return self._namespace(doc)

    def get_namespace(self, name: str) -> base.Namespace:
        return self._namespace(self._core.fetch("get_namespace", KIND_NAMESPACE, name, what="namespace"))

    def list_namespaces(self) -> list[base.Namespace]:
        return [self._namespace(doc) for doc in self._core.listed("list_namespaces", KIND_NAMESPACE)]

    def delete_namespace(self, name: str, *, ignore_missing: bool = True) -> None:
        self._core.delete(
            "delete_namespace",
            KIND_NAMESPACE,
            name,
            what="namespace",
            ignore_missing=ignore_missing,
            release=lambda transaction, doc: self._core.consume(
                transaction, vcpu=-doc["vcpu"], ram_gb=-doc["ram_gb"]
            ),
        )

    def set_namespace_quota(self, name: str, *, vcpu: int, ram_gb: int) -> base.Namespace:
        base.check_sizes(vcpu=vcpu, ram_gb=ram_gb)
        self._core.operate("set_namespace_quota")
        with self._core.writing() as transaction:
            doc = self._core.required(transaction, KIND_NAMESPACE, name, what="namespace")
            self._core.consume(transaction, vcpu=vcpu - doc["vcpu"], ram_gb=ram_gb - doc["ram_gb"])
            doc.update(vcpu=vcpu, ram_gb=ram_gb)
            transaction.put(self.name, KIND_NAMESPACE, name, doc)
        return self._namespace(doc)

    def _namespace(self, doc: state.Doc) -> base.Namespace:
        return base.Namespace(
            name=doc["name"],
            center=self.name,
            vcpu=doc["vcpu"],
            ram_gb=doc["ram_gb"],
            created_at=doc["created_at"],
        )
