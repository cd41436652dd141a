"""Quota resources and amounts.

Invariants kept here: an amount is a whole number from 0 to ``MAX_AMOUNT`` of the
resource's unit (vCPUs, GB, instances); ``ALL_CENTERS`` is the center key of a
limit that spans every center.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping

from cloudctl import errors

ALL_CENTERS = "*"
"""Center key of a limit that applies to the sum over all centers."""
MAX_AMOUNT = 2**53 - 1
"""The largest amount a limit or a reservation may give: far beyond any center (9 × 10¹⁵ GB), the
largest whole number JSON readers keep exactly, and small enough that a city's sums of them
stay within the store's 64-bit integers."""


def check_amount(value: int, *, field: str) -> None:
    """``InvalidInput`` naming ``field`` unless ``value`` is 0 to ``MAX_AMOUNT``."""
    if value < 0:
        raise errors.InvalidInput("must not be negative", field=field)
    if value > MAX_AMOUNT:
        raise errors.InvalidInput(f"must be at most {MAX_AMOUNT}", field=field)


class Resource(enum.StrEnum):
    """A quota-governed resource; the value is the name used in files, flags and JSON."""

    VCPU = "vcpu"
    RAM_GB = "ram_gb"
    VOLUME_GB = "volume_gb"
    OBJECT_GB = "object_gb"
    INSTANCES = "instances"

    @property
    def unit(self) -> str:
        return {
            Resource.VCPU: "vCPU",
            Resource.RAM_GB: "GB",
            Resource.VOLUME_GB: "GB",
            Resource.OBJECT_GB: "GB",
            Resource.INSTANCES: "",
        }[self]


RESOURCES: tuple[Resource, ...] = tuple(Resource)

Amounts = dict[Resource, int]
"""Quantities per resource; resources not present count as zero."""


def parse_resource(name: str, *, field: str = "resource") -> Resource:
    try:
        return Resource(name)
    except ValueError:
        known = ", ".join(r.value for r in RESOURCES)
        raise errors.InvalidInput(f"unknown resource {name!r} (known: {known})", field=field) from None


def amounts_from(values: Mapping[str, int | None], *, field: str = "amounts") -> Amounts:
    """Validate a mapping of resource names to quantities into ``Amounts``."""
    result: Amounts = {}
    for name, value in values.items():
        resource = parse_resource(name, field=field)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise errors.InvalidInput("must be a whole number", field=f"{field}.{name}")
        if value < 0:
            raise errors.InvalidInput("must not be negative", field=f"{field}.{name}")
        result[resource] = value
    return result


def add(*parts: Mapping[Resource, int]) -> Amounts:
    total: Amounts = {}
    for part in parts:
        for resource, value in part.items():
            total[resource] = total.get(resource, 0) + value
    return total


def scale(amounts: Mapping[Resource, int], factor: int) -> Amounts:
    return {resource: value * factor for resource, value in amounts.items()}


def nonzero(amounts: Mapping[Resource, int]) -> Amounts:
    return {resource: value for resource, value in amounts.items() if value}


def as_names(amounts: Mapping[Resource, int], *, keys: Iterable[Resource] = RESOURCES) -> dict[str, int]:
    """Amounts keyed by resource name, in the canonical resource order."""
    return {resource.value: amounts[resource] for resource in keys if resource in amounts}
