"""The topology: centers, links, protection tiers, DR levels, catalog and org tree.

``parse(text)`` turns the YAML of ``infra/topology.yaml`` into a ``Topology``
or raises ``errors.TopologyError`` whose field is the path inside the file
(``centers[2].capacity.vcpu``). Invariants checked here, before anything is
stored:

- names of centers, sites, tiers, offerings and org nodes are unique;
- exactly one management center, at least one local cloud center; links and
  tiers name only declared centers;
- each tier's RPO/RTO targets fall inside the GB/T 20988 level it declares, and its
  ``point_retention`` windows grow (each ``until_s`` longer than the one before);
- org ids are ASCII slugs; a quota names a declared center or ``all``;
- a child's limit never exceeds an ancestor's limit for the same resource on
  the same center, nor an ancestor's all-centers limit;
- the price list names only declared tiers and centers, has one rate for every
  resource without tier or center (the default), and no (resource, tier, center)
  twice; capacity thresholds are percentages of a center's total;
- networks (``networks``) name declared centers, and one center's subnets do not overlap;
  a network map (``network_maps``) joins two declared networks of two different centers,
  a stretched one joins equal subnets (addresses kept), a re-mapped one subnets of one size
  (the host part is kept unless ``addresses`` pins it), every pinned address lies in its
  subnet, and no two maps of one pair of centers overlap on either end;
- the data classes (``data_classes``) are the one list of them: at least one, unique lower-case
  ids, ordered least to most strict (the order a grant's consumer class must keep: at least as
  strict as the item's), defaulting to ``DEFAULT_DATA_CLASSES``;
- ``catalog_limits.max_count`` is the one bound on the units of one request (default
  ``DEFAULT_MAX_COUNT``); an offering's own ``max_count`` may only lower it.
"""

from __future__ import annotations

import dataclasses
import decimal
import enum
import ipaddress
import re
import unicodedata
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import pydantic
import pydantic_core
import yaml
from pydantic import BaseModel, ConfigDict, Field

from cloudctl import errors
from cloudctl.model import quotas

SLUG = r"^[a-z][a-z0-9-]{0,39}$"
_SLUG_RE = re.compile(SLUG)
DNS_ZONE = r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$"

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_YAML_DEPTH = 100
"""How deep a YAML file the user hands cloudctl may nest (its top mapping is level 1)."""
MAX_YAML_ALIASED_NODES = 100_000
"""How many nodes a YAML file's aliases may add to what it writes out."""

Slug = Annotated[str, Field(pattern=SLUG, description="lower-case ASCII id used in commands and URLs")]
NonNegative = Annotated[int, Field(ge=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CenterRole(enum.StrEnum):
    MANAGEMENT = "management"
    LOCAL = "local"
    DR = "dr"


class Capability(enum.StrEnum):
    COMPUTE = "compute"
    BLOCK_STORAGE = "block_storage"
    OBJECT_STORAGE = "object_storage"
    CONTAINERS = "containers"
    TRAFFIC = "traffic"


class Site(_Strict):
    name: Slug
    display_name: str
    city: str


class Capacity(_Strict):
    vcpu: NonNegative = 0
    ram_gb: NonNegative = 0
    volume_gb: NonNegative = 0
    object_gb: NonNegative = 0
    instances: NonNegative = 0

    def amounts(self) -> quotas.Amounts:
        return {resource: getattr(self, resource.value) for resource in quotas.RESOURCES}


class SimulatorSettings(_Strict):
    """How the simulator driver behaves for one center."""

    latency_ms: Annotated[float, Field(ge=0)] = 0.0
    error_rate: Annotated[float, Field(ge=0, le=1)] = 0.0


class CallSettings(_Strict):
    """How the calls of one real backend are retried and timed out (``calls:``).

    A field left unset keeps the driver's default (its ``RetryPolicy``).
    """

    attempts: Annotated[int, Field(ge=1)] | None = None
    """Tries of one call, the first included."""
    timeout_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    """How long one call may take: the read timeout of S3, Route 53, Kubernetes; OpenStack's API timeout."""
    max_wait_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    """The longest backoff between two attempts."""
    max_retry_after_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    """The longest ``Retry-After`` waited out; a refusal that asks for more ends the call at once."""


class ClientCallSettings(CallSettings):
    """Call settings of the S3, Route 53 and Kubernetes clients, which time the connection apart."""

    connect_timeout_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    """How long opening a connection may take."""


class OpenStackCallSettings(CallSettings):
    """Call settings of an OpenStack cloud: one timeout per call, so no ``connect_timeout_s``."""

    connect_timeout_s: None = None
    """Refused when set: openstacksdk has a single API timeout (``timeout_s``)."""

    @pydantic.field_validator("connect_timeout_s", mode="before")
    @classmethod
    def _refuse_connect_timeout(cls, value: object) -> None:
        if value is not None:
            raise pydantic_core.PydanticCustomError(
                "openstack_connect_timeout",
                "not for OpenStack, whose calls have a single timeout: set timeout_s",
            )


class S3Backend(_Strict):
    """An S3-compatible endpoint; the credentials are read from the named environment variables."""

    endpoint_url: Annotated[str, Field(pattern=r"^https?://")]
    region: str = "us-east-1"
    access_key_env: str = "AWS_ACCESS_KEY_ID"
    secret_key_env: str = "AWS_SECRET_ACCESS_KEY"
    iam_account_id: Annotated[str, Field(pattern=r"^[0-9]{12}$")] = "123456789012"
    """The account whose IAM users (``user/<department>``) stand for departments in the bucket
    policies of data grants: twelve digits, as the storage's IAM names it."""
    calls: ClientCallSettings = ClientCallSettings()


class KubernetesBackend(_Strict):
    kubeconfig: str | None = None
    """Path of the kubeconfig; ``None``: ``$KUBECONFIG`` or ``~/.kube/config``."""
    context: str | None = None
    """Context in the kubeconfig; ``None``: the center's name."""
    calls: ClientCallSettings = ClientCallSettings()


class OpenStackBackend(_Strict):
    cloud: str | None = None
    """Entry in ``clouds.yaml``; ``None``: the center's name."""
    calls: OpenStackCallSettings = OpenStackCallSettings()


class Backends(_Strict):
    """Where a center's real backends are, for the capabilities whose driver is not the simulator."""

    s3: S3Backend | None = None
    dns: S3Backend | None = None
    """A Route 53-compatible endpoint (same fields as S3)."""
    kubernetes: KubernetesBackend | None = None
    openstack: OpenStackBackend | None = None


Percent = Annotated[int, Field(ge=1, le=100)]


class Center(_Strict):
    name: Slug
    display_name: str
    site: Slug
    role: CenterRole
    capacity: Capacity = Capacity()
    threshold_percent: dict[quotas.Resource, Percent] = Field(default_factory=dict)
    """Per-resource overrides of ``capacity_planning.threshold_percent`` for this center."""
    drivers: dict[Capability, str] = Field(
        default_factory=lambda: {capability: "simulator" for capability in Capability}
    )
    simulator: SimulatorSettings = SimulatorSettings()
    backends: Backends = Backends()
    description: str = ""


class LinkMode(enum.StrEnum):
    SYNC = "sync"
    ASYNC = "async"
    CONTROL = "control"


class Link(_Strict):
    between: tuple[Slug, Slug]
    mode: LinkMode
    rtt_ms: Annotated[float, Field(ge=0)]
    bandwidth_mbps: Annotated[int, Field(gt=0)]

    @property
    def name(self) -> str:
        return f"{self.between[0]}~{self.between[1]}"

    def joins(self, a: str, b: str) -> bool:
        return {a, b} == set(self.between)

    def transfer_s(self, size_bytes: int, *, slowdown: float = 1.0) -> float:
        """How long ``size_bytes`` take over this link: a round trip and the bytes at its
        bandwidth, both ``slowdown`` times longer on a degraded link."""
        return slowdown * (self.rtt_ms / 1000 + size_bytes * 8 / (self.bandwidth_mbps * 1_000_000))


class DrLevel(_Strict):
    """One GB/T 20988 disaster-recovery level; ``None`` bounds are unbounded."""

    level: Annotated[int, Field(ge=1, le=6)]
    name: str
    rto: str
    rpo: str
    rto_max_s: NonNegative | None
    rpo_max_s: NonNegative | None

    def contains(self, *, rto_s: float, rpo_s: float) -> bool:
        rto_ok = self.rto_max_s is None or rto_s <= self.rto_max_s
        rpo_ok = self.rpo_max_s is None or rpo_s <= self.rpo_max_s
        return rto_ok and rpo_ok


class LocalPlacement(enum.StrEnum):
    """How a tier keeps its workload in the local cloud centers."""

    ACTIVE_ACTIVE = "active-active"
    """Instances in every local center, data written synchronously to both."""
    SYNC_STANDBY = "sync-standby"
    """Instances in one local center, a synchronous standby copy in another."""
    SINGLE = "single"
    """One local center only."""


class DrCopy(enum.StrEnum):
    """How a tier copies its data to the disaster-recovery center."""

    ASYNC = "async"
    BACKUP = "backup"
    NONE = "none"


class RetentionWindow(_Strict):
    """One window of a tier's replication-point retention: the points younger than ``until_s``
    (and older than the window before) keep one per ``every_s`` (0: every point)."""

    every_s: NonNegative = 0
    """Keep the newest point of each ``every_s``-long slice of time (UTC-aligned); 0: every point."""
    until_s: Annotated[int, Field(gt=0)]
    """The age (seconds since the point was consistent) up to which this window applies."""


class Tier(_Strict):
    name: Slug
    display_name: str
    description: str = ""
    local: LocalPlacement
    dr_copy: DrCopy
    dr_interval_s: Annotated[int, Field(gt=0)] | None = None
    rpo_target_s: NonNegative
    rto_target_s: NonNegative
    gbt20988_level: Annotated[int, Field(ge=1, le=6)]
    priority: Annotated[int, Field(ge=0)] = 100
    """Failover order: lower goes first."""
    deleted_retention_days: Annotated[int, Field(ge=1)] = 30
    """How long the copies of this tier keep deleted and overwritten object versions (so a
    mass delete is recoverable), and a deleted workload's buckets stay before they go."""
    point_retention: list[RetentionWindow] = Field(default_factory=list)
    """Which replication points the DR copy keeps, by age: windows of growing ``until_s`` (e.g.
    every point for 24 h, then one an hour for 7 days); a point older than the last window goes,
    the newest is always kept. Empty: the newest ``replication_points_kept`` points."""

    @property
    def reserves_dr_headroom(self) -> bool:
        return self.dr_copy is not DrCopy.NONE


class OfferingKind(enum.StrEnum):
    VM = "vm"
    VOLUME = "volume"
    BUCKET = "bucket"
    NAMESPACE = "namespace"


DEFAULT_DATA_CLASSES: tuple[str, ...] = ("public", "internal", "sensitive", "secret")
"""The data classes of a topology that declares none, least strict first."""

DEFAULT_MAX_COUNT = 100
"""The most units of an offering one request may order, where the topology sets no limit."""

Count = Annotated[int, Field(ge=1)]


class CatalogLimits(_Strict):
    """Bounds on what one request may order from the catalog (``catalog_limits``)."""

    max_count: Count = DEFAULT_MAX_COUNT
    """The most units of an offering one request may order (an offering's own may be lower)."""


class Offering(_Strict):
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9.-]{0,39}$")]
    kind: OfferingKind
    display_name: str
    vcpu: NonNegative = 0
    ram_gb: NonNegative = 0
    volume_gb: NonNegative = 0
    object_gb: NonNegative = 0
    max_count: Count | None = None
    """The most units of this offering one request may order; ``None``: ``catalog_limits.max_count``."""

    def amounts(self) -> quotas.Amounts:
        """Quota consumed by one unit of this offering in one center."""
        consumed: quotas.Amounts = {
            quotas.Resource.VCPU: self.vcpu,
            quotas.Resource.RAM_GB: self.ram_gb,
            quotas.Resource.VOLUME_GB: self.volume_gb,
            quotas.Resource.OBJECT_GB: self.object_gb,
            quotas.Resource.INSTANCES: 1 if self.kind is OfferingKind.VM else 0,
        }
        return quotas.nonzero(consumed)


class QuotaSpec(_Strict):
    """Limits of one org node on one center (or ``all``); absent resources are unlimited here."""

    center: str
    vcpu: NonNegative | None = None
    ram_gb: NonNegative | None = None
    volume_gb: NonNegative | None = None
    object_gb: NonNegative | None = None
    instances: NonNegative | None = None

    @property
    def center_key(self) -> str:
        return quotas.ALL_CENTERS if self.center == "all" else self.center

    def limits(self) -> quotas.Amounts:
        values = {resource: getattr(self, resource.value) for resource in quotas.RESOURCES}
        return {resource: value for resource, value in values.items() if value is not None}


Price = Annotated[
    decimal.Decimal,
    Field(ge=0, max_digits=12, decimal_places=4, description="CNY per unit and hour"),
]


class Rate(_Strict):
    """The price of one unit of a resource for one hour (CNY), where the workload's tier and
    the center match; an unset ``tier`` or ``center`` matches any."""

    resource: quotas.Resource
    tier: Slug | None = None
    center: Slug | None = None
    price: Price


class Pricing(_Strict):
    """The price list of showback: what an hour of each resource costs, by tier and center.

    The rate applied is the most specific that matches: tier and center, then center, then
    tier, then the resource's default (neither). Quota held without a workload (a reservation
    made by an operator) has no tier and is priced by center or default.
    """

    currency: Literal["CNY"] = "CNY"
    description: str = ""
    rates: tuple[Rate, ...]


def _default_thresholds() -> dict[quotas.Resource, int]:
    return {resource: 80 for resource in quotas.RESOURCES}


class CapacityPlanning(_Strict):
    """How the capacity forecast reads the sampled history of the centers."""

    threshold_percent: dict[quotas.Resource, Percent] = Field(default_factory=_default_thresholds)
    """Share of a center's total that may be allocated before it is called full (per resource)."""
    window_days: Annotated[int, Field(ge=1, le=366)] = 30
    """How many days of hourly samples the trend is fitted to."""
    min_samples: Annotated[int, Field(ge=3)] = 24
    """Fewer samples than this in the window: no trend is claimed."""


class Network(_Strict):
    """A network of one center that workloads' servers attach to, with its IPv4 subnet.

    The first network declared for a center is the one a workload's servers get their port
    on there; a center with none declared leaves the port to its compute driver's default."""

    center: Slug
    name: Slug
    subnet: ipaddress.IPv4Network
    description: str = ""


class NetworkEnd(_Strict):
    """One end of a network map: a declared network of a center."""

    center: Slug
    network: Slug


class NetworkMap(_Strict):
    """How the addresses of one center's network carry over to another center's, both ways.

    ``stretched``: the same L2 segment in both centers (equal subnets), addresses are kept.
    Otherwise the address is re-mapped: the one pinned in ``addresses`` (keys in the first
    end's subnet, values in the second's), else the same host part in the other subnet."""

    between: tuple[NetworkEnd, NetworkEnd]
    stretched: bool = False
    addresses: dict[ipaddress.IPv4Address, ipaddress.IPv4Address] = Field(default_factory=dict)
    description: str = ""


@dataclasses.dataclass(frozen=True)
class AddressMove:
    """Where one address of a network in one center goes in another center."""

    network: str
    to_network: str
    old: str
    new: str
    stretched: bool

    @property
    def kept(self) -> bool:
        return self.old == self.new


class OrgKind(enum.StrEnum):
    CITY = "city"
    DISTRICT = "district"
    BUREAU = "bureau"
    DEPARTMENT = "department"


class OrgNode(_Strict):
    id: Slug
    display_name: str
    kind: OrgKind
    quotas: tuple[QuotaSpec, ...] = ()
    children: tuple[OrgNode, ...] = ()

    def walk(self, parent: str | None = None) -> Iterator[tuple[OrgNode, str | None]]:
        """Every node of the subtree with its parent's id, parents before children."""
        yield self, parent
        for child in self.children:
            yield from child.walk(self.id)


class Topology(_Strict):
    version: Literal[1]
    name: Slug
    display_name: str
    sites: tuple[Site, ...]
    centers: tuple[Center, ...]
    links: tuple[Link, ...]
    gbt20988_levels: tuple[DrLevel, ...]
    tiers: tuple[Tier, ...]
    catalog: tuple[Offering, ...]
    org: OrgNode
    catalog_limits: CatalogLimits = CatalogLimits()
    """Bounds on one request from the catalog."""
    data_classes: tuple[Slug, ...] = DEFAULT_DATA_CLASSES
    """The data classes requests, data items and grants declare, least strict first."""
    pricing: Pricing | None = None
    capacity_planning: CapacityPlanning = CapacityPlanning()
    traffic_zone: Annotated[str, Field(pattern=DNS_ZONE, max_length=200)] | None = None
    """DNS zone of the traffic records (``<workload>.<department>.<zone>``); ``None``:
    ``<name>.internal``."""
    networks: tuple[Network, ...] = ()
    """Networks of the centers that workloads' servers attach to; none: each driver's default."""
    network_maps: tuple[NetworkMap, ...] = ()
    """How addresses carry over between centers' networks on failover (kept or re-mapped)."""

    @property
    def zone(self) -> str:
        """The DNS zone traffic records live in."""
        return self.traffic_zone or f"{self.name}.internal"

    def center(self, name: str) -> Center:
        for center in self.centers:
            if center.name == name:
                return center
        known = ", ".join(c.name for c in self.centers)
        raise errors.NotFound(f"no center {name!r} (known: {known})", field="center")

    def centers_with_role(self, role: CenterRole) -> list[Center]:
        return [center for center in self.centers if center.role is role]

    def tier(self, name: str) -> Tier:
        for tier in self.tiers:
            if tier.name == name:
                return tier
        known = ", ".join(t.name for t in self.tiers)
        raise errors.NotFound(f"no tier {name!r} (known: {known})", field="tier")

    def offering(self, name: str) -> Offering:
        for offering in self.catalog:
            if offering.name == name:
                return offering
        known = ", ".join(o.name for o in self.catalog)
        raise errors.NotFound(f"no offering {name!r} (known: {known})", field="offering")

    def max_count(self, offering: Offering) -> int:
        """The most units of ``offering`` one request may order."""
        if offering.max_count is not None:
            return offering.max_count
        return self.catalog_limits.max_count

    def check_data_class(self, data_class: str, *, field: str = "data_class") -> None:
        """Refuse a data class the topology does not declare (``InvalidInput`` naming ``field``)."""
        if data_class not in self.data_classes:
            known = ", ".join(self.data_classes)
            raise errors.InvalidInput(f"unknown data class {data_class!r} (known: {known})", field=field)

    def links_of(self, center: str) -> list[Link]:
        return [link for link in self.links if center in link.between]

    def link(self, a: str, b: str) -> Link | None:
        return next((link for link in self.links if link.joins(a, b)), None)

    def threshold_percent(self, center: str, resource: quotas.Resource) -> int:
        """The allocated share of ``center``'s total of ``resource`` at which it counts as full."""
        override = self.center(center).threshold_percent.get(resource)
        return (
            override if override is not None else self.capacity_planning.threshold_percent.get(resource, 80)
        )

    def workload_network(self, center: str) -> Network | None:
        """The network workloads' servers attach to in ``center`` (its first declared), if any."""
        return next((network for network in self.networks if network.center == center), None)

    def network(self, center: str, name: str) -> Network | None:
        return next((n for n in self.networks if n.center == center and n.name == name), None)

    def allocation_pool(self, center: str, network: str) -> tuple[str, str] | None:
        """The addresses a center's backend hands out itself on ``network`` (first and last,
        both included); ``None`` when no network map joins the network to another center's, or
        the subnets are too small to share.

        The networks that maps join (stretched, or re-mapped by host part) each take their own
        slice of the host range, in the order of their ``center/network`` names: an address
        one center hands out is then never one another center of a stretched segment hands out,
        nor one a failover re-maps a server onto. The host range leaves out the subnet's first
        two addresses (network, gateway) and its last (broadcast); with subnets of different
        sizes the smallest decides, so a host part is in one slice in every subnet. Pinned
        addresses of a map (``addresses``) are the operators' to keep outside other slices."""
        members = sorted(self._joined_by_maps(center, network))
        if len(members) < 2:
            return None
        subnets = [found.subnet for c, n in members if (found := self.network(c, n)) is not None]
        if len(subnets) != len(members):
            return None
        first_host, last_host = 2, min(subnet.num_addresses for subnet in subnets) - 2
        share = (last_host - first_host + 1) // len(members)
        if share < 1:
            return None
        index = members.index((center, network))
        start = first_host + index * share
        end = last_host if index == len(members) - 1 else start + share - 1
        base = int(subnets[index].network_address)
        return str(ipaddress.IPv4Address(base + start)), str(ipaddress.IPv4Address(base + end))

    def _joined_by_maps(self, center: str, network: str) -> set[tuple[str, str]]:
        """``(center, network)`` and every network a chain of network maps joins it to."""
        joined = {(center, network)}
        grew = True
        while grew:
            grew = False
            for net_map in self.network_maps:
                ends = {(end.center, end.network) for end in net_map.between}
                if ends & joined and not ends <= joined:
                    joined |= ends
                    grew = True
        return joined

    def segment(self, center: str, network: str) -> str:
        """The L2 segment of ``network`` in ``center``: the same for every center a stretched map
        joins it to (``qd-a/gov-apps+qd-b/gov-apps``), else its own (``dz-dr/gov-apps-dr``)."""
        joined = {f"{center}/{network}"}
        grew = True
        while grew:
            grew = False
            for net_map in self.network_maps:
                ends = {f"{end.center}/{end.network}" for end in net_map.between}
                if net_map.stretched and ends & joined and not ends <= joined:
                    joined |= ends
                    grew = True
        return "+".join(sorted(joined))

    def move_address(self, *, center: str, network: str, address: str, to_center: str) -> AddressMove | None:
        """Where ``address`` of ``network`` in ``center`` goes in ``to_center``; ``None`` when no
        map joins that network to a network of ``to_center`` or the address is outside its subnet."""
        for net_map in self.network_maps:
            ends = net_map.between
            for here, there in ((ends[0], ends[1]), (ends[1], ends[0])):
                if (here.center, here.network, there.center) != (center, network, to_center):
                    continue
                source, target = self.network(center, network), self.network(to_center, there.network)
                if source is None or target is None:
                    return None
                old = ipaddress.IPv4Address(address)
                if old not in source.subnet:
                    return None
                pinned = (
                    net_map.addresses if here is ends[0] else {v: k for k, v in net_map.addresses.items()}
                )
                if net_map.stretched:
                    new = old
                elif old in pinned:
                    new = pinned[old]
                else:
                    offset = int(old) - int(source.subnet.network_address)
                    new = ipaddress.IPv4Address(int(target.subnet.network_address) + offset)
                return AddressMove(
                    network=network,
                    to_network=there.network,
                    old=str(old),
                    new=str(new),
                    stretched=net_map.stretched,
                )
        return None

    def level_achieved(self, *, rto_s: float, rpo_s: float) -> int | None:
        """The highest GB/T 20988 level whose bounds contain the measured values."""
        fitting = [lvl.level for lvl in self.gbt20988_levels if lvl.contains(rto_s=rto_s, rpo_s=rpo_s)]
        return max(fitting, default=None)


# --- parsing and cross-checks -------------------------------------------------------------


def load_yaml(text: str, *, duplicate_keys: bool = False) -> Any:
    """The data of a YAML file the user names, read by a safe loader (in C where libyaml is there).

    Its events are walked first, and a file nested deeper than ``MAX_YAML_DEPTH``, whose aliases
    add more than ``MAX_YAML_ALIASED_NODES`` nodes, or (unless ``duplicate_keys``) with a key
    twice in one mapping is refused as a syntax error is (a ``yaml.MarkedYAMLError``): libyaml's
    composer recurses on the C stack and crashes the process tens of thousands of levels down
    (Python's, a thousand), a few kilobytes of aliases of aliases make billions of nodes for
    validation to walk, and of two equal keys the loader keeps the last without a word.
    """
    try:
        return _load_bounded(text, duplicate_keys=duplicate_keys)
    except yaml.reader.ReaderError as refused:  # a character YAML refuses: one line naming its line
        line = text.count("\n", 0, refused.position)
        mark = yaml.Mark("<text>", refused.position, line, 0, None, 0)
        problem = f"character {chr(refused.character)!r}: {refused.reason}"
        raise yaml.MarkedYAMLError(problem=problem, problem_mark=mark) from None


def _load_bounded(text: str, *, duplicate_keys: bool) -> Any:
    sizes: dict[str, int] = {}  # an anchor's node: how many nodes it holds, aliases expanded
    open_nodes: list[_OpenNode] = []
    added = 0
    for event in yaml.parse(text, Loader=_LOADER):
        size = 0
        anchor: str | None = None
        if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            if len(open_nodes) >= MAX_YAML_DEPTH:
                raise _yaml_refusal(f"nested deeper than {MAX_YAML_DEPTH} levels", event)
            keys: set[str] | None = set() if isinstance(event, yaml.MappingStartEvent) else None
            open_nodes.append(_OpenNode(anchor=event.anchor, keys=keys))
            continue
        if isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            closed = open_nodes.pop()
            anchor, size = closed.anchor, closed.size
        elif isinstance(event, yaml.ScalarEvent):
            anchor, size = event.anchor, 1
        elif isinstance(event, yaml.AliasEvent):
            size = sizes.get(event.anchor or "", 1)
            added += size
            if added > MAX_YAML_ALIASED_NODES:
                raise _yaml_refusal(f"aliases expand to more than {MAX_YAML_ALIASED_NODES} nodes", event)
        else:
            continue
        if anchor is not None:
            sizes[anchor] = size
        if open_nodes:
            parent = open_nodes[-1]
            parent.size += size
            is_key = parent.keys is not None and parent.children % 2 == 0
            if is_key and not duplicate_keys and isinstance(event, yaml.ScalarEvent):
                assert parent.keys is not None
                if event.value in parent.keys:
                    raise _yaml_refusal(f"duplicate key {event.value!r}", event)
                parent.keys.add(event.value)
            parent.children += 1
    return yaml.load(text, Loader=_LOADER)


@dataclasses.dataclass
class _OpenNode:
    """A collection ``load_yaml`` is inside: its anchor, the nodes it holds so far (aliases
    expanded), and for a mapping the keys seen (its even children are keys)."""

    anchor: str | None
    keys: set[str] | None
    size: int = 1
    children: int = 0


def _yaml_refusal(problem: str, event: yaml.Event) -> yaml.MarkedYAMLError:
    at = event.start_mark
    mark = None if at is None else yaml.Mark("<text>", at.index, at.line, at.column, None, 0)
    return yaml.MarkedYAMLError(problem=problem, problem_mark=mark)


def parse(text: str, *, stored: bool = False) -> Topology:
    """Parse and validate topology YAML; raise ``TopologyError`` naming the path and reason.

    ``stored``: the copy a store was initialised with, read as it was accepted then (a key given
    twice in it keeps the last, as before such files were refused), so no upgrade locks a city
    out of its own store; a file handed in now is read strictly."""
    try:
        raw = load_yaml(text, duplicate_keys=stored)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "file"
        raise errors.TopologyError(f"not valid YAML ({getattr(exc, 'problem', exc)})", field=where) from None
    return from_data(raw)


def from_data(raw: Any) -> Topology:
    if not isinstance(raw, dict):
        raise errors.TopologyError("the topology must be a mapping", field="(top)")
    try:
        topology = Topology.model_validate(raw)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        raise errors.TopologyError(_describe(first), field=format_location(first["loc"])) from None
    check(topology)
    return topology


def format_location(loc: tuple[int | str, ...]) -> str:
    """``('centers', 2, 'capacity', 'vcpu')`` → ``centers[2].capacity.vcpu``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "(top)"


def _describe(error: Any) -> str:
    message = str(error["msg"])
    if error["type"] == "extra_forbidden":
        return "unknown field"
    if error["type"] == "string_pattern_mismatch":
        return "must be a lower-case ASCII id (letters, digits, '-'), starting with a letter"
    return message[0].lower() + message[1:] if message else "invalid"


def check(topology: Topology) -> None:
    """Cross-field checks that the field types alone cannot express."""
    _check_unique("sites", [s.name for s in topology.sites])
    _check_unique("centers", [c.name for c in topology.centers])
    _check_unique("tiers", [t.name for t in topology.tiers])
    _check_unique("catalog", [o.name for o in topology.catalog])
    _check_unique("gbt20988_levels", [lvl.level for lvl in topology.gbt20988_levels])
    _check_catalog_limits(topology)
    sites = {s.name for s in topology.sites}
    centers = {c.name for c in topology.centers}
    for index, center in enumerate(topology.centers):
        if center.site not in sites:
            raise errors.TopologyError(f"unknown site {center.site!r}", field=f"centers[{index}].site")
    for index, center in enumerate(topology.centers):
        _check_drivers(center, field=f"centers[{index}]")
    roles = [c.role for c in topology.centers]
    if roles.count(CenterRole.MANAGEMENT) != 1:
        raise errors.TopologyError("exactly one center must have role 'management'", field="centers")
    if CenterRole.LOCAL not in roles:
        raise errors.TopologyError("at least one center must have role 'local'", field="centers")
    for index, link in enumerate(topology.links):
        for end, name in enumerate(link.between):
            if name not in centers:
                raise errors.TopologyError(f"unknown center {name!r}", field=f"links[{index}].between[{end}]")
        if link.between[0] == link.between[1]:
            raise errors.TopologyError("a link joins two different centers", field=f"links[{index}].between")
    _check_tiers(topology)
    _check_org(topology, centers)
    _check_pricing(topology, centers)
    _check_networks(topology, centers)


DRIVERS: dict[Capability, tuple[str, ...]] = {
    Capability.COMPUTE: ("simulator", "openstack"),
    Capability.BLOCK_STORAGE: ("simulator", "openstack"),
    Capability.OBJECT_STORAGE: ("simulator", "s3"),
    Capability.CONTAINERS: ("simulator", "kubernetes"),
    Capability.TRAFFIC: ("simulator", "dns"),
}
"""The drivers that can serve each capability."""


def _check_drivers(center: Center, *, field: str) -> None:
    for capability, name in center.drivers.items():
        if name not in DRIVERS[capability]:
            known = ", ".join(DRIVERS[capability])
            raise errors.TopologyError(
                f"no driver {name!r} for {capability.value} (known: {known})",
                field=f"{field}.drivers.{capability.value}",
            )
        if name in ("s3", "dns") and getattr(center.backends, name) is None:
            raise errors.TopologyError(
                f"driver {name!r} needs backends.{name}.endpoint_url", field=f"{field}.backends.{name}"
            )


def _check_catalog_limits(topology: Topology) -> None:
    if not topology.data_classes:
        raise errors.TopologyError("declare at least one data class", field="data_classes")
    _check_unique("data_classes", list(topology.data_classes))
    limit = topology.catalog_limits.max_count
    for index, offering in enumerate(topology.catalog):
        if offering.max_count is not None and offering.max_count > limit:
            raise errors.TopologyError(
                f"{offering.max_count} exceeds catalog_limits.max_count {limit}",
                field=f"catalog[{index}].max_count",
            )


def _check_unique(field: str, names: list[Any]) -> None:
    seen: set[Any] = set()
    for index, name in enumerate(names):
        if name in seen:
            raise errors.TopologyError(f"duplicate name {name!r}", field=f"{field}[{index}]")
        seen.add(name)


def _check_tiers(topology: Topology) -> None:
    levels = {lvl.level: lvl for lvl in topology.gbt20988_levels}
    local_centers = topology.centers_with_role(CenterRole.LOCAL)
    has_dr = bool(topology.centers_with_role(CenterRole.DR))
    for index, tier in enumerate(topology.tiers):
        field = f"tiers[{index}]"
        if tier.local is not LocalPlacement.SINGLE and len(local_centers) < 2:
            raise errors.TopologyError(f"{tier.local.value} needs two local centers", field=f"{field}.local")
        if tier.dr_copy is not DrCopy.NONE:
            if not has_dr:
                raise errors.TopologyError(
                    "a DR copy needs a center with role 'dr'", field=f"{field}.dr_copy"
                )
            if tier.dr_interval_s is None:
                raise errors.TopologyError(
                    "required when dr_copy is not 'none'", field=f"{field}.dr_interval_s"
                )
        level = levels.get(tier.gbt20988_level)
        if level is None:
            raise errors.TopologyError(
                f"level {tier.gbt20988_level} is not in gbt20988_levels",
                field=f"{field}.gbt20988_level",
            )
        if not level.contains(rto_s=tier.rto_target_s, rpo_s=tier.rpo_target_s):
            raise errors.TopologyError(
                f"targets RPO {tier.rpo_target_s} s / RTO {tier.rto_target_s} s fall outside "
                f"level {level.level} (RPO {level.rpo}, RTO {level.rto})",
                field=f"{field}.gbt20988_level",
            )
        previous = 0
        for number, window in enumerate(tier.point_retention):
            if window.until_s <= previous:
                raise errors.TopologyError(
                    f"must be longer than the window before ({previous} s)",
                    field=f"{field}.point_retention[{number}].until_s",
                )
            previous = window.until_s


def _check_networks(topology: Topology, centers: set[str]) -> None:
    declared: dict[tuple[str, str], Network] = {}
    for index, network in enumerate(topology.networks):
        field = f"networks[{index}]"
        if network.center not in centers:
            raise errors.TopologyError(f"unknown center {network.center!r}", field=f"{field}.center")
        if (network.center, network.name) in declared:
            raise errors.TopologyError(
                f"network {network.name!r} of {network.center} is already declared", field=f"{field}.name"
            )
        for other_index, other in enumerate(topology.networks[:index]):
            if other.center == network.center and other.subnet.overlaps(network.subnet):
                raise errors.TopologyError(
                    f"{network.subnet} overlaps {other.subnet} of network {other.name!r} "
                    f"(networks[{other_index}]) in {network.center}",
                    field=f"{field}.subnet",
                )
        declared[(network.center, network.name)] = network
    seen: list[tuple[int, tuple[Network, Network]]] = []
    for index, net_map in enumerate(topology.network_maps):
        field = f"network_maps[{index}]"
        ends: list[Network] = []
        for end_index, end in enumerate(net_map.between):
            end_field = f"{field}.between[{end_index}]"
            if end.center not in centers:
                raise errors.TopologyError(f"unknown center {end.center!r}", field=f"{end_field}.center")
            found = declared.get((end.center, end.network))
            if found is None:
                raise errors.TopologyError(
                    f"unknown network {end.network!r} of {end.center} (declare it under networks)",
                    field=f"{end_field}.network",
                )
            ends.append(found)
        first, second = ends
        if first.center == second.center:
            raise errors.TopologyError("a network map joins two different centers", field=f"{field}.between")
        if net_map.stretched and first.subnet != second.subnet:
            raise errors.TopologyError(
                f"a stretched network keeps its addresses: {first.subnet} and {second.subnet} differ",
                field=f"{field}.stretched",
            )
        if first.subnet.prefixlen != second.subnet.prefixlen:
            raise errors.TopologyError(
                f"a re-mapped subnet keeps its size: {first.subnet} and {second.subnet} differ",
                field=f"{field}.between",
            )
        if net_map.stretched and net_map.addresses:
            raise errors.TopologyError(
                "a stretched network keeps every address: pin none", field=f"{field}.addresses"
            )
        for old, new in net_map.addresses.items():
            if old not in first.subnet:
                raise errors.TopologyError(
                    f"{old} is outside {first.subnet} of {first.center}/{first.name}",
                    field=f"{field}.addresses.{old}",
                )
            if new not in second.subnet:
                raise errors.TopologyError(
                    f"{new} is outside {second.subnet} of {second.center}/{second.name}",
                    field=f"{field}.addresses.{old}",
                )
        targets = list(net_map.addresses.values())
        if len(set(targets)) != len(targets):
            raise errors.TopologyError(
                "two addresses are pinned to one: each must have its own", field=f"{field}.addresses"
            )
        # Two maps of one pair of centers overlap when their subnets on one side overlap: an
        # address there would have two counterparts on the other side.
        for other_index, other_ends in seen:
            for mine, partner in ((first, second), (second, first)):
                for theirs, their_partner in (other_ends, other_ends[::-1]):
                    if (mine.center, partner.center) == (
                        theirs.center,
                        their_partner.center,
                    ) and mine.subnet.overlaps(theirs.subnet):
                        raise errors.TopologyError(
                            f"overlaps network_maps[{other_index}]: {mine.subnet} of {mine.center} "
                            f"is mapped to {partner.center} twice",
                            field=f"{field}.between",
                        )
        seen.append((index, (first, second)))


def _check_pricing(topology: Topology, centers: set[str]) -> None:
    if topology.pricing is None:
        return
    tiers = {tier.name for tier in topology.tiers}
    seen: set[tuple[quotas.Resource, str | None, str | None]] = set()
    for index, rate in enumerate(topology.pricing.rates):
        field = f"pricing.rates[{index}]"
        if rate.tier is not None and rate.tier not in tiers:
            raise errors.TopologyError(f"unknown tier {rate.tier!r}", field=f"{field}.tier")
        if rate.center is not None and rate.center not in centers:
            raise errors.TopologyError(f"unknown center {rate.center!r}", field=f"{field}.center")
        key = (rate.resource, rate.tier, rate.center)
        if key in seen:
            raise errors.TopologyError(
                "a rate for this resource, tier and center is already listed", field=field
            )
        seen.add(key)
    for resource in quotas.RESOURCES:
        if (resource, None, None) not in seen:
            raise errors.TopologyError(
                f"no default rate for {resource.value} (a rate without tier and center)",
                field="pricing.rates",
            )


def check_org_tree(org: OrgNode) -> None:
    """Refuse a quota tree that no foundation can be declared from: a department at the root, an
    id twice, a department with children (a department is a tenant: its project and namespace
    would be dropped for its children's), or a limit above an ancestor's. The topology parser
    runs it, and so does ``model.foundation`` for trees built elsewhere (from the store)."""
    if org.kind is OrgKind.DEPARTMENT:
        raise errors.TopologyError(
            f"department {org.id!r} has no parent; a department belongs to one", field="org"
        )
    seen: set[str] = set()
    for node, path in _walk_with_paths(org, "org"):
        if node.id in seen:
            raise errors.TopologyError(f"duplicate org id {node.id!r}", field=f"{path}.id")
        seen.add(node.id)
        if node.kind is OrgKind.DEPARTMENT and node.children:
            raise errors.TopologyError(
                f"department {node.id!r} cannot have children ({node.children[0].id!r}); "
                "put them under a bureau or district",
                field=f"{path}.children",
            )
    _check_limits_nest(org, "org", ancestors=[])


def _check_org(topology: Topology, centers: set[str]) -> None:
    check_org_tree(topology.org)
    for node, path in _walk_with_paths(topology.org, "org"):
        specs_seen: set[str] = set()
        for index, spec in enumerate(node.quotas):
            if spec.center != "all" and spec.center not in centers:
                raise errors.TopologyError(
                    f"unknown center {spec.center!r} (use a center name or 'all')",
                    field=f"{path}.quotas[{index}].center",
                )
            if spec.center in specs_seen:
                raise errors.TopologyError("center appears twice", field=f"{path}.quotas[{index}].center")
            specs_seen.add(spec.center)


def _walk_with_paths(node: OrgNode, path: str) -> Iterator[tuple[OrgNode, str]]:
    yield node, path
    for index, child in enumerate(node.children):
        yield from _walk_with_paths(child, f"{path}.children[{index}]")


def _check_limits_nest(
    node: OrgNode, path: str, *, ancestors: list[tuple[str, dict[tuple[str, quotas.Resource], int]]]
) -> None:
    for index, spec in enumerate(node.quotas):
        for resource, value in spec.limits().items():
            for ancestor_id, limits in ancestors:
                bound = bounding_limit(limits, spec.center_key, resource)
                if bound is not None and value > bound[1]:
                    scope = "all centers" if bound[0] == quotas.ALL_CENTERS else bound[0]
                    raise errors.TopologyError(
                        f"{value} exceeds the limit {bound[1]} of ancestor {ancestor_id!r} on {scope}",
                        field=f"{path}.quotas[{index}].{resource.value}",
                    )
    chain = [*ancestors, (node.id, ancestor_limits(node))]
    for index, child in enumerate(node.children):
        _check_limits_nest(child, f"{path}.children[{index}]", ancestors=chain)


def ancestor_limits(node: OrgNode) -> dict[tuple[str, quotas.Resource], int]:
    return {
        (spec.center_key, resource): value
        for spec in node.quotas
        for resource, value in spec.limits().items()
    }


def bounding_limit(
    limits: dict[tuple[str, quotas.Resource], int], center: str, resource: quotas.Resource
) -> tuple[str, int] | None:
    """The tightest of an ancestor's limits that bounds a child's limit on ``center``.

    A per-center child limit is bounded by the ancestor's limit on that center and
    by its all-centers limit; an all-centers child limit only by the all-centers one.
    """
    keys = [quotas.ALL_CENTERS] if center == quotas.ALL_CENTERS else [center, quotas.ALL_CENTERS]
    candidates = [(key, limits[(key, resource)]) for key in keys if (key, resource) in limits]
    return min(candidates, key=lambda candidate: candidate[1], default=None)


def is_slug(value: str) -> bool:
    return bool(_SLUG_RE.match(value))


_LINE_BREAKING = frozenset({"Cc", "Zl", "Zp"})
"""Control characters, and the line and paragraph separators (U+2028, U+2029) that readers of
Unicode text break lines at as they do at a line feed."""
_BIDI_CONTROLS = frozenset(chr(code) for code in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))
"""The bidirectional embeddings, overrides and isolates: they reorder how the rest of a line reads."""


def check_one_line(value: str, *, field: str) -> None:
    """A name or a reason a person reads in a table, a log line or a page: no line breaks, tabs
    or other control characters (Unicode category Cc), no line or paragraph separators, and no
    bidirectional controls, which would break, forge or reorder those lines."""
    if any(
        unicodedata.category(character) in _LINE_BREAKING or character in _BIDI_CONTROLS
        for character in value
    ):
        raise errors.InvalidInput(
            "must be one line without control characters, line separators or bidirectional controls",
            field=field,
        )
