"""The catalog departments order from, and the protection tiers they choose between.

Invariant: the catalog is the topology's, as stored at init; nothing outside it
can be requested (policy ``catalog-only``).
"""

from __future__ import annotations

from pydantic import BaseModel

from cloudctl.services import context as ctx_module
from cloudctl.services import identity


class OfferingPublic(BaseModel):
    name: str
    kind: str
    display_name: str
    consumes: dict[str, int]
    """Quota one unit consumes in each center it is placed in."""


class TierPublic(BaseModel):
    name: str
    display_name: str
    description: str
    local: str
    dr_copy: str
    rpo_target_s: int
    rto_target_s: int
    gbt20988_level: int


class CatalogPublic(BaseModel):
    offerings: list[OfferingPublic]
    tiers: list[TierPublic]
    data_classes: list[str]


def catalog(ctx: ctx_module.Context, *, principal: identity.Principal) -> CatalogPublic:
    from cloudctl.model import quotas as q
    from cloudctl.services import requests

    identity.authorize(
        ctx, principal=principal, action="catalog.read", resource_type="Catalog", resource_id="catalog"
    )
    topology = ctx.topology
    return CatalogPublic(
        offerings=[
            OfferingPublic(
                name=o.name, kind=o.kind.value, display_name=o.display_name, consumes=q.as_names(o.amounts())
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
        data_classes=list(requests.DATA_CLASSES),
    )
