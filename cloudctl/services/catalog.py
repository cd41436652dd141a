"""The catalog departments order from, and the protection tiers they choose between.

Invariant: the catalog is the topology's, as stored at init; nothing outside it
can be requested (policy ``catalog-only``). Its data classes and the most units of an offering
one request may order are the topology's too (``data_classes``, ``catalog_limits``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from cloudctl.model import topology as topo
from cloudctl.services import context as ctx_module
from cloudctl.services import identity

OFFERING_EXAMPLE: dict[str, Any] = {
    "name": "vm.medium",
    "kind": "vm",
    "display_name": "云主机 4核8G",
    "consumes": {"vcpu": 4, "ram_gb": 8, "volume_gb": 80, "instances": 1},
    "max_count": topo.DEFAULT_MAX_COUNT,
}
TIER_EXAMPLE: dict[str, Any] = {
    "name": "gold",
    "display_name": "同城热备+异地容灾",
    "description": "Primary in one local center, synchronous standby in the other, asynchronous copy to DR.",
    "local": "sync-standby",
    "dr_copy": "async",
    "rpo_target_s": 0,
    "rto_target_s": 900,
    "gbt20988_level": 6,
}
CATALOG_EXAMPLE: dict[str, Any] = {
    "offerings": [
        OFFERING_EXAMPLE,
        {
            "name": "bucket.100g",
            "kind": "bucket",
            "display_name": "对象存储 100G",
            "consumes": {"object_gb": 100},
            "max_count": topo.DEFAULT_MAX_COUNT,
        },
    ],
    "tiers": [
        {
            "name": "platinum",
            "display_name": "双活+异地容灾",
            "description": (
                "Active-active in both local centers (synchronous), asynchronous copy to the DR center."
            ),
            "local": "active-active",
            "dr_copy": "async",
            "rpo_target_s": 0,
            "rto_target_s": 120,
            "gbt20988_level": 6,
        },
        TIER_EXAMPLE,
        {
            "name": "bronze",
            "display_name": "定期备份",
            "description": "One local center, a daily backup kept in the DR center.",
            "local": "single",
            "dr_copy": "backup",
            "rpo_target_s": 86400,
            "rto_target_s": 172800,
            "gbt20988_level": 4,
        },
    ],
    "data_classes": list(topo.DEFAULT_DATA_CLASSES),
}


class OfferingPublic(BaseModel):
    """One thing a department can order from the catalog, and the quota one unit of it takes."""

    model_config = ConfigDict(
        use_attribute_docstrings=True, json_schema_extra={"examples": [OFFERING_EXAMPLE]}
    )

    name: str
    """The offering's name, as ``offering`` of a request names it (e.g. ``vm.medium``)."""
    kind: str
    """What it creates: ``vm`` (a server), ``volume``, ``bucket`` (object storage) or ``namespace``."""
    display_name: str
    """The name shown to departments, from the topology (e.g. ``云主机 4核8G``)."""
    consumes: dict[str, int]
    """Quota one unit consumes in each center it is placed in."""
    max_count: int
    """The most units one request may order: the offering's own ``max_count``, else the topology's
    ``catalog_limits.max_count`` (100 as shipped)."""


class TierPublic(BaseModel):
    """A protection tier: how a workload is kept in the local centers and copied to the DR center."""

    model_config = ConfigDict(use_attribute_docstrings=True, json_schema_extra={"examples": [TIER_EXAMPLE]})

    name: str
    """The tier's name, as a request's ``tier`` names it: ``platinum``, ``gold``, ``silver`` or ``bronze``."""
    display_name: str
    """The name shown to departments, from the topology (e.g. ``同城热备+异地容灾``)."""
    description: str
    """What the tier does, in one sentence; empty when the topology gives none."""
    local: str
    """How it keeps the workload in the local centers: ``active-active``, ``sync-standby`` or ``single``."""
    dr_copy: str
    """How it copies data to the DR center: ``async`` (replication), ``backup`` (periodic) or ``none``."""
    rpo_target_s: int
    """Recovery point objective in seconds: the most data loss the tier is meant to allow (0: none)."""
    rto_target_s: int
    """Recovery time objective in seconds: how long a recovery is meant to take at most."""
    gbt20988_level: int
    """The disaster-recovery level of GB/T 20988 the tier claims, 1 to 6."""


class CatalogPublic(BaseModel):
    """Everything a department can order: the offerings, the protection tiers and the data classes."""

    model_config = ConfigDict(
        use_attribute_docstrings=True, json_schema_extra={"examples": [CATALOG_EXAMPLE]}
    )

    offerings: list[OfferingPublic]
    """The offerings, in the topology's order."""
    tiers: list[TierPublic]
    """The protection tiers, in the topology's order (most protected first)."""
    data_classes: list[str]
    """The data classes a request may declare, least strict first (the topology's ``data_classes``)."""


def catalog(ctx: ctx_module.Context, *, principal: identity.Principal) -> CatalogPublic:
    from cloudctl.model import quotas as q

    identity.authorize(
        ctx, principal=principal, action="catalog.read", resource_type="Catalog", resource_id="catalog"
    )
    topology = ctx.topology
    return CatalogPublic(
        offerings=[
            OfferingPublic(
                name=o.name,
                kind=o.kind.value,
                display_name=o.display_name,
                consumes=q.as_names(o.amounts()),
                max_count=topology.max_count(o),
            )
            for o in topology.catalog
        ],
        tiers=[
            TierPublic(
                name=t.name,
                display_name=t.display_name,
                description=t.description,
                local=t.local.value,
                dr_copy=t.dr_copy.value,
                rpo_target_s=t.rpo_target_s,
                rto_target_s=t.rto_target_s,
                gbt20988_level=t.gbt20988_level,
            )
            for t in topology.tiers
        ],
        data_classes=list(topology.data_classes),
    )
