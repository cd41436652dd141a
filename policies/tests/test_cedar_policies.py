"""The shipped Cedar policies, read as a specification: who may do what, what may be asked, where.

Every policy id has at least one case it lets through (or does not stop) and one it decides
against; a denial asserts exactly which policy ids decided it, and a default deny asserts that
no policy is named and the reason is "no policy permits". The policies validate against the
schema, and the engine parses the files once however many decisions it makes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cedarpy
import pytest

from cloudctl import errors
from cloudctl.model import topology
from cloudctl.policy import cedar, engine

POLICIES = Path(__file__).resolve().parent.parent
TOPOLOGY = POLICIES.parent / "infra" / "topology.yaml"

INSURANCE_PATH = ("qingdao", "hrss", "hrss-insurance")
EMPLOYMENT_PATH = ("qingdao", "hrss", "hrss-employment")

DEPT_USER = engine.Principal(
    id="alice", role="dept-user", department="hrss-insurance", department_path=INSURANCE_PATH
)
DEPT_ADMIN = engine.Principal(
    id="bob", role="dept-admin", department="hrss-insurance", department_path=INSURANCE_PATH
)
BUREAU_ADMIN = engine.Principal(
    id="carol", role="dept-admin", department="hrss", department_path=INSURANCE_PATH[:2]
)
SYSADMIN = engine.Principal(id="sam", role="sysadmin")
SECADMIN = engine.Principal(id="sue", role="secadmin")
AUDITOR = engine.Principal(id="aud", role="auditor")
ROLE_PRINCIPALS = {p.role: p for p in (DEPT_USER, DEPT_ADMIN, SYSADMIN, SECADMIN, AUDITOR)}


def own(resource_type: str) -> engine.Resource:
    """A resource of alice's and bob's department (hrss-insurance)."""
    return engine.Resource(
        type=resource_type, id=f"{resource_type.lower()}-1", owner="hrss-insurance", owner_path=INSURANCE_PATH
    )


def sibling(resource_type: str) -> engine.Resource:
    """A resource of the sibling department hrss-employment."""
    return engine.Resource(
        type=resource_type,
        id=f"{resource_type.lower()}-2",
        owner="hrss-employment",
        owner_path=EMPLOYMENT_PATH,
    )


def bureau(resource_type: str) -> engine.Resource:
    """A resource of the bureau above both departments."""
    return engine.Resource(
        type=resource_type, id=f"{resource_type.lower()}-3", owner="hrss", owner_path=INSURANCE_PATH[:2]
    )


def _centers() -> dict[str, engine.Resource]:
    parsed = topology.parse(TOPOLOGY.read_text(encoding="utf-8"))
    return {center.name: engine.center_resource(center) for center in parsed.centers}


CENTERS = _centers()
AUDIT_LOG = engine.Resource(type="AuditLog", id="audit")
CATALOG = engine.Resource(type="Catalog", id="catalog")


def size(**overrides: Any) -> dict[str, Any]:
    """A small request: 2 × vm.large, internal data."""
    values: dict[str, Any] = {
        "vcpu_total": 16,
        "ram_gb_total": 32,
        "volume_gb_total": 320,
        "object_gb_total": 0,
        "instances": 2,
        "data_class": "internal",
    }
    return values | overrides


def create(**overrides: Any) -> dict[str, Any]:
    return {"offering_in_catalog": True} | size(**overrides)


def place(data_class: str, tier: str = "platinum") -> dict[str, Any]:
    return {"data_class": data_class, "tier": tier}


@dataclass(frozen=True)
class Case:
    """One request; ``policy`` is the id under test, ``deciding`` the ids expected to decide."""

    policy: str
    principal: engine.Principal
    action: str
    resource: engine.Resource
    allowed: bool
    deciding: tuple[str, ...]
    context: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        verdict = "allows" if self.allowed else "denies"
        return f"{self.policy}: {verdict} {self.principal.role} {self.action} {self.resource.type}"


CASES = [
    # --- department isolation (isolation.cedar) ---------------------------------------------
    Case("dept-isolation", BUREAU_ADMIN, "request.read", own("Request"), True, ("dept-read",)),
    Case("dept-isolation", BUREAU_ADMIN, "workload.delete", own("Workload"), True, ("dept-admin-manage",)),
    Case("dept-isolation", DEPT_USER, "request.read", sibling("Request"), False, ("dept-isolation",)),
    Case("dept-isolation", DEPT_USER, "quota.read", bureau("Quota"), False, ("dept-isolation",)),
    Case("dept-isolation", DEPT_ADMIN, "workload.delete", sibling("Workload"), False, ("dept-isolation",)),
    Case("dept-isolation", DEPT_ADMIN, "request.cancel", sibling("Request"), False, ("dept-isolation",)),
    Case(
        "dept-isolation",
        DEPT_USER,
        "request.create",
        sibling("Request"),
        False,
        ("dept-isolation",),
        create(),
    ),
    Case("dept-read", DEPT_USER, "request.read", own("Request"), True, ("dept-read",)),
    Case("dept-read", DEPT_USER, "workload.read", own("Workload"), True, ("dept-read",)),
    Case("dept-read", DEPT_ADMIN, "quota.read", own("Quota"), True, ("dept-read",)),
    Case("dept-read", DEPT_USER, "org.read", own("OrgNode"), False, ()),
    Case("dept-read", SECADMIN, "workload.read", own("Workload"), False, ()),
    Case(
        "dept-request-create",
        DEPT_USER,
        "request.create",
        own("Request"),
        True,
        ("dept-request-create",),
        create(),
    ),
    Case(
        "dept-request-create",
        DEPT_ADMIN,
        "request.create",
        own("Request"),
        True,
        ("dept-request-create",),
        create(),
    ),
    Case("dept-request-create", SYSADMIN, "request.create", own("Request"), False, (), create()),
    Case("dept-admin-manage", DEPT_ADMIN, "request.cancel", own("Request"), True, ("dept-admin-manage",)),
    Case("dept-admin-manage", DEPT_ADMIN, "workload.delete", own("Workload"), True, ("dept-admin-manage",)),
    Case("dept-admin-manage", DEPT_USER, "request.cancel", own("Request"), False, ()),
    Case("dept-admin-manage", DEPT_USER, "workload.delete", own("Workload"), False, ()),
    Case("catalog-read", DEPT_USER, "catalog.read", CATALOG, True, ("catalog-read",)),
    Case("catalog-read", SYSADMIN, "catalog.read", CATALOG, True, ("catalog-read",)),
    Case("catalog-read", AUDITOR, "catalog.read", CATALOG, False, ()),
    # --- separation of powers (separation.cedar) ---------------------------------------------
    Case("sysadmin-read", SYSADMIN, "request.read", sibling("Request"), True, ("sysadmin-read",)),
    Case("sysadmin-read", SYSADMIN, "quota.read", bureau("Quota"), True, ("sysadmin-read",)),
    Case("sysadmin-read", SYSADMIN, "center.read", CENTERS["dz-dr"], True, ("sysadmin-read",)),
    Case("sysadmin-read", SECADMIN, "center.read", CENTERS["qd-a"], False, ()),
    Case("sysadmin-read", AUDITOR, "request.read", own("Request"), False, ()),
    Case("sysadmin-operate", SYSADMIN, "request.approve", own("Request"), True, ("sysadmin-operate",)),
    Case("sysadmin-operate", SYSADMIN, "quota.set", bureau("Quota"), True, ("sysadmin-operate",)),
    Case("sysadmin-operate", SYSADMIN, "failover.run", CENTERS["qd-a"], True, ("sysadmin-operate",)),
    Case("sysadmin-operate", SYSADMIN, "workload.delete", own("Workload"), False, ()),
    Case("sysadmin-operate", SYSADMIN, "request.cancel", own("Request"), False, ()),
    Case("secadmin-tokens", SECADMIN, "token.create", own("Token"), True, ("secadmin-tokens",)),
    Case("secadmin-tokens", SECADMIN, "token.revoke", sibling("Token"), True, ("secadmin-tokens",)),
    Case("secadmin-tokens", SECADMIN, "workload.read", own("Workload"), False, ()),
    Case("auditor-audit", AUDITOR, "audit.read", AUDIT_LOG, True, ("auditor-audit",)),
    Case("auditor-audit", AUDITOR, "audit.verify", AUDIT_LOG, True, ("auditor-audit",)),
    Case("auditor-audit", AUDITOR, "quota.read", own("Quota"), False, ()),
    Case("operations-sysadmin-only", SYSADMIN, "org.manage", own("OrgNode"), True, ("sysadmin-operate",)),
    Case(
        "operations-sysadmin-only",
        DEPT_ADMIN,
        "request.approve",
        own("Request"),
        False,
        ("operations-sysadmin-only",),
    ),
    Case(
        "operations-sysadmin-only", SECADMIN, "quota.set", own("Quota"), False, ("operations-sysadmin-only",)
    ),
    Case(
        "operations-sysadmin-only",
        DEPT_ADMIN,
        "request.approve",
        sibling("Request"),
        False,
        ("dept-isolation", "operations-sysadmin-only"),
    ),
    Case("tokens-secadmin-only", SECADMIN, "token.list", own("Token"), True, ("secadmin-tokens",)),
    Case("tokens-secadmin-only", SYSADMIN, "token.create", own("Token"), False, ("tokens-secadmin-only",)),
    Case("tokens-secadmin-only", DEPT_ADMIN, "token.list", own("Token"), False, ("tokens-secadmin-only",)),
    Case("audit-auditor-only", AUDITOR, "audit.read", AUDIT_LOG, True, ("auditor-audit",)),
    Case("audit-auditor-only", SYSADMIN, "audit.read", AUDIT_LOG, False, ("audit-auditor-only",)),
    Case("audit-auditor-only", SECADMIN, "audit.verify", AUDIT_LOG, False, ("audit-auditor-only",)),
    Case("audit-immutable", AUDITOR, "audit.verify", AUDIT_LOG, True, ("auditor-audit",)),
    Case("audit-immutable", SYSADMIN, "audit.delete", AUDIT_LOG, False, ("audit-immutable",)),
    Case("audit-immutable", SECADMIN, "audit.alter", AUDIT_LOG, False, ("audit-immutable",)),
    Case(
        "audit-immutable",
        AUDITOR,
        "audit.alter",
        AUDIT_LOG,
        False,
        ("audit-immutable", "auditor-changes-nothing"),
    ),
    Case("auditor-changes-nothing", AUDITOR, "audit.read", AUDIT_LOG, True, ("auditor-audit",)),
    Case(
        "auditor-changes-nothing",
        AUDITOR,
        "workload.delete",
        own("Workload"),
        False,
        ("auditor-changes-nothing",),
    ),
    Case(
        "auditor-changes-nothing",
        AUDITOR,
        "request.create",
        own("Request"),
        False,
        ("auditor-changes-nothing",),
        create(),
    ),
    Case(
        "auditor-changes-nothing",
        AUDITOR,
        "failover.run",
        CENTERS["qd-a"],
        False,
        ("operations-sysadmin-only", "auditor-changes-nothing"),
    ),
    # --- placement by data class (placement.cedar) -------------------------------------------
    Case(
        "placement-cloud-centers",
        DEPT_USER,
        "placement.place",
        CENTERS["qd-a"],
        True,
        ("placement-cloud-centers",),
        place("internal"),
    ),
    Case(
        "placement-cloud-centers",
        SYSADMIN,
        "placement.place",
        CENTERS["dz-dr"],
        True,
        ("placement-cloud-centers",),
        place("public"),
    ),
    Case(
        "placement-cloud-centers", AUDITOR, "placement.place", CENTERS["qd-a"], False, (), place("internal")
    ),
    Case("placement-cloud-centers", SECADMIN, "placement.place", CENTERS["qd-b"], False, (), place("public")),
    Case(
        "placement-no-management",
        DEPT_USER,
        "placement.place",
        CENTERS["qd-b"],
        True,
        ("placement-cloud-centers",),
        place("public"),
    ),
    Case(
        "placement-no-management",
        DEPT_USER,
        "placement.place",
        CENTERS["mgmt"],
        False,
        ("placement-no-management",),
        place("public"),
    ),
    Case(
        "placement-no-management",
        SYSADMIN,
        "placement.place",
        CENTERS["mgmt"],
        False,
        ("placement-no-management",),
        place("secret", "bronze"),
    ),
    Case(
        "placement-secret-home-city",
        DEPT_USER,
        "placement.place",
        CENTERS["qd-a"],
        True,
        ("placement-cloud-centers",),
        place("secret"),
    ),
    Case(
        "placement-secret-home-city",
        DEPT_USER,
        "placement.place",
        CENTERS["dz-dr"],
        True,
        ("placement-cloud-centers",),
        place("sensitive"),
    ),
    Case(
        "placement-secret-home-city",
        DEPT_USER,
        "placement.place",
        CENTERS["dz-dr"],
        False,
        ("placement-secret-home-city",),
        place("secret", "silver"),
    ),
    Case(
        "data-class-known",
        DEPT_USER,
        "placement.place",
        CENTERS["qd-a"],
        True,
        ("placement-cloud-centers",),
        place("public"),
    ),
    Case(
        "data-class-known",
        DEPT_USER,
        "placement.place",
        CENTERS["qd-a"],
        False,
        ("data-class-known",),
        place("top-secret"),
    ),
    Case(
        "data-class-known",
        DEPT_USER,
        "request.create",
        own("Request"),
        False,
        ("data-class-known",),
        create(data_class=""),
    ),
    Case(
        "data-class-known",
        DEPT_USER,
        "request.auto_approve",
        own("Request"),
        False,
        ("data-class-known",),
        size(data_class="Secret"),
    ),
    # --- what may be requested, and what needs approval (approval.cedar) ---------------------
    Case(
        "catalog-only", DEPT_USER, "request.create", own("Request"), True, ("dept-request-create",), create()
    ),
    Case(
        "catalog-only",
        DEPT_USER,
        "request.create",
        own("Request"),
        False,
        ("catalog-only",),
        create(offering_in_catalog=False),
    ),
    Case(
        "request-hard-limit",
        DEPT_USER,
        "request.create",
        own("Request"),
        True,
        ("dept-request-create",),
        create(instances=20, vcpu_total=256),
    ),
    Case(
        "request-hard-limit",
        DEPT_USER,
        "request.create",
        own("Request"),
        False,
        ("request-hard-limit",),
        create(instances=21),
    ),
    Case(
        "request-hard-limit",
        DEPT_ADMIN,
        "request.create",
        own("Request"),
        False,
        ("request-hard-limit",),
        create(vcpu_total=257),
    ),
    Case(
        "request-hard-limit",
        DEPT_USER,
        "request.create",
        own("Request"),
        False,
        ("catalog-only", "request-hard-limit"),
        create(offering_in_catalog=False, instances=100),
    ),
    Case(
        "approval-auto-small",
        DEPT_USER,
        "request.auto_approve",
        own("Request"),
        True,
        ("approval-auto-small",),
        size(),
    ),
    Case("approval-auto-small", SYSADMIN, "request.auto_approve", own("Request"), False, (), size()),
    Case(
        "approval-size-threshold",
        DEPT_USER,
        "request.auto_approve",
        own("Request"),
        True,
        ("approval-auto-small",),
        size(vcpu_total=32, ram_gb_total=128, volume_gb_total=2048, object_gb_total=2048, instances=4),
    ),
    *[
        Case(
            "approval-size-threshold",
            DEPT_USER,
            "request.auto_approve",
            own("Request"),
            False,
            ("approval-size-threshold",),
            size(**{resource: limit + 1}),
        )
        for resource, limit in {
            "vcpu_total": 32,
            "ram_gb_total": 128,
            "volume_gb_total": 2048,
            "object_gb_total": 2048,
            "instances": 4,
        }.items()
    ],
    Case(
        "approval-secret-data",
        DEPT_USER,
        "request.auto_approve",
        own("Request"),
        True,
        ("approval-auto-small",),
        size(data_class="sensitive"),
    ),
    Case(
        "approval-secret-data",
        DEPT_USER,
        "request.auto_approve",
        own("Request"),
        False,
        ("approval-secret-data",),
        size(data_class="secret"),
    ),
    Case(
        "approval-secret-data",
        DEPT_ADMIN,
        "request.auto_approve",
        own("Request"),
        False,
        ("approval-size-threshold", "approval-secret-data"),
        size(data_class="secret", instances=10),
    ),
]


# --- data sharing (sharing.cedar) -------------------------------------------------------------

SAMR_PATH = ("qingdao", "samr")
BIGDATA_ADMIN = engine.Principal(
    id="dora", role="dept-admin", department="bigdata", department_path=("qingdao", "bigdata")
)


def item(owner_path: tuple[str, ...], data_class: str = "internal") -> engine.Resource:
    """A published data item of ``owner_path[-1]``."""
    return engine.Resource(
        type="DataItem",
        id=f"item-{owner_path[-1]}-{data_class}",
        owner=owner_path[-1],
        owner_path=owner_path,
        attributes={"data_class": data_class},
    )


def grant(
    provider_path: tuple[str, ...], consumer_path: tuple[str, ...], data_class: str = "internal"
) -> engine.Resource:
    """A grant on an item of ``provider_path[-1]`` for ``consumer_path[-1]``."""
    return engine.Resource(
        type="DataGrant",
        id=f"grant-{provider_path[-1]}-{consumer_path[-1]}",
        owner=provider_path[-1],
        owner_path=provider_path,
        attributes={
            "consumer": consumer_path[-1],
            "consumer_path": consumer_path,
            "data_class": data_class,
        },
    )


def asking(
    data_class: str = "internal", purpose: str = "statistics", consumer: str = "internal"
) -> dict[str, Any]:
    return {"data_class": data_class, "purpose": purpose, "consumer_data_class": consumer}


SHARING_CASES = [
    Case(
        "data-catalog-read", DEPT_USER, "data.item.read", item(EMPLOYMENT_PATH), True, ("data-catalog-read",)
    ),
    Case("data-catalog-read", DEPT_USER, "data.item.read", item(EMPLOYMENT_PATH, "secret"), False, ()),
    Case(
        "data-provider-read",
        DEPT_USER,
        "data.item.read",
        item(INSURANCE_PATH, "secret"),
        True,
        ("data-provider-read",),
    ),
    Case(
        "data-provider-read",
        DEPT_USER,
        "data.grant.read",
        grant(INSURANCE_PATH, SAMR_PATH),
        True,
        ("data-provider-read",),
    ),
    Case("data-provider-read", DEPT_USER, "data.grant.read", grant(EMPLOYMENT_PATH, SAMR_PATH), False, ()),
    Case(
        "data-consumer-read",
        DEPT_USER,
        "data.grant.read",
        grant(EMPLOYMENT_PATH, INSURANCE_PATH),
        True,
        ("data-consumer-read",),
    ),
    Case("data-consumer-read", DEPT_ADMIN, "data.grant.read", grant(SAMR_PATH, EMPLOYMENT_PATH), False, ()),
    Case(
        "data-bureau-read",
        BIGDATA_ADMIN,
        "data.grant.read",
        grant(EMPLOYMENT_PATH, SAMR_PATH),
        True,
        ("data-bureau-read",),
    ),
    Case(
        "data-bureau-read",
        BIGDATA_ADMIN,
        "data.item.read",
        item(EMPLOYMENT_PATH, "secret"),
        True,
        ("data-bureau-read",),
    ),
    Case("data-bureau-read", DEPT_ADMIN, "data.item.read", item(EMPLOYMENT_PATH, "secret"), False, ()),
    Case(
        "data-sysadmin-read",
        SYSADMIN,
        "data.item.read",
        item(EMPLOYMENT_PATH, "secret"),
        True,
        ("data-sysadmin-read",),
    ),
    Case("data-sysadmin-read", SECADMIN, "data.grant.read", grant(EMPLOYMENT_PATH, SAMR_PATH), False, ()),
    Case(
        "data-publish-owner",
        DEPT_ADMIN,
        "data.item.publish",
        item(INSURANCE_PATH),
        True,
        ("data-publish-owner",),
    ),
    Case(
        "data-publish-owner",
        BUREAU_ADMIN,
        "data.item.publish",
        item(INSURANCE_PATH),
        True,
        ("data-publish-owner",),
    ),
    Case("data-publish-owner", DEPT_ADMIN, "data.item.publish", item(EMPLOYMENT_PATH), False, ()),
    Case("data-publish-owner", DEPT_USER, "data.item.publish", item(INSURANCE_PATH), False, ()),
    Case(
        "data-grant-request",
        DEPT_USER,
        "data.grant.request",
        grant(EMPLOYMENT_PATH, INSURANCE_PATH),
        True,
        ("data-grant-request",),
        asking(),
    ),
    Case(
        "data-grant-request",
        DEPT_USER,
        "data.grant.request",
        grant(EMPLOYMENT_PATH, SAMR_PATH),
        False,
        (),
        asking(),
    ),
    Case(
        "data-grant-not-own",
        DEPT_USER,
        "data.grant.request",
        grant(SAMR_PATH, INSURANCE_PATH),
        True,
        ("data-grant-request",),
        asking(),
    ),
    Case(
        "data-grant-not-own",
        DEPT_ADMIN,
        "data.grant.request",
        grant(INSURANCE_PATH, INSURANCE_PATH),
        False,
        ("data-grant-not-own",),
        asking(),
    ),
    Case(
        "data-grant-not-own",
        BUREAU_ADMIN,
        "data.grant.request",
        grant(INSURANCE_PATH, INSURANCE_PATH[:2]),
        False,
        ("data-grant-not-own",),
        asking(),
    ),
    Case(
        "data-secret-not-shared",
        DEPT_USER,
        "data.grant.request",
        grant(SAMR_PATH, INSURANCE_PATH, "sensitive"),
        True,
        ("data-grant-request",),
        asking("sensitive", "social-assistance", "sensitive"),
    ),
    Case(
        "data-secret-not-shared",
        DEPT_USER,
        "data.grant.request",
        grant(SAMR_PATH, INSURANCE_PATH, "secret"),
        False,
        ("data-secret-not-shared",),
        asking("secret", "law-enforcement", "secret"),
    ),
    Case(
        "data-purpose-declared",
        DEPT_USER,
        "data.grant.request",
        grant(SAMR_PATH, INSURANCE_PATH),
        True,
        ("data-grant-request",),
        asking(purpose="license-verification"),
    ),
    Case(
        "data-purpose-declared",
        DEPT_USER,
        "data.grant.request",
        grant(SAMR_PATH, INSURANCE_PATH),
        False,
        ("data-purpose-declared",),
        asking(purpose="marketing"),
    ),
    Case(
        "data-sensitive-purposes",
        DEPT_USER,
        "data.grant.request",
        grant(SAMR_PATH, INSURANCE_PATH, "sensitive"),
        True,
        ("data-grant-request",),
        asking("sensitive", "emergency-response", "secret"),
    ),
    Case(
        "data-sensitive-purposes",
        DEPT_USER,
        "data.grant.request",
        grant(SAMR_PATH, INSURANCE_PATH, "sensitive"),
        False,
        ("data-sensitive-purposes",),
        asking("sensitive", "statistics", "sensitive"),
    ),
    Case(
        "data-consumer-class",
        DEPT_USER,
        "data.grant.request",
        grant(SAMR_PATH, INSURANCE_PATH),
        True,
        ("data-grant-request",),
        asking("internal", "public-service", "sensitive"),
    ),
    Case(
        "data-consumer-class",
        DEPT_USER,
        "data.grant.request",
        grant(SAMR_PATH, INSURANCE_PATH, "sensitive"),
        False,
        ("data-consumer-class",),
        asking("sensitive", "social-assistance", "internal"),
    ),
    Case(
        "data-consumer-class",
        DEPT_USER,
        "data.grant.request",
        grant(SAMR_PATH, INSURANCE_PATH),
        False,
        ("data-consumer-class",),
        asking("internal", "statistics", "public"),
    ),
    Case(
        "data-grant-provider-approves",
        DEPT_ADMIN,
        "data.grant.approve",
        grant(INSURANCE_PATH, SAMR_PATH),
        True,
        ("data-grant-provider-approves",),
    ),
    Case(
        "data-grant-provider-approves",
        DEPT_USER,
        "data.grant.approve",
        grant(INSURANCE_PATH, SAMR_PATH),
        False,
        (),
    ),
    Case(
        "data-grant-provider-approves",
        DEPT_ADMIN,
        "data.grant.approve",
        grant(EMPLOYMENT_PATH, INSURANCE_PATH),
        False,
        (),
    ),
    Case(
        "data-grant-bureau-approves",
        BIGDATA_ADMIN,
        "data.grant.bureau_approve",
        grant(INSURANCE_PATH, SAMR_PATH, "sensitive"),
        True,
        ("data-grant-bureau-approves",),
    ),
    Case(
        "data-grant-bureau-approves",
        DEPT_ADMIN,
        "data.grant.bureau_approve",
        grant(INSURANCE_PATH, SAMR_PATH, "sensitive"),
        False,
        (),
    ),
    Case(
        "data-grant-provider-suffices",
        DEPT_ADMIN,
        "data.grant.skip_bureau",
        grant(INSURANCE_PATH, SAMR_PATH, "public"),
        True,
        ("data-grant-provider-suffices",),
    ),
    Case(
        "data-grant-provider-suffices",
        SYSADMIN,
        "data.grant.skip_bureau",
        grant(INSURANCE_PATH, SAMR_PATH),
        False,
        (),
    ),
    Case(
        "data-grant-bureau-for-sensitive",
        DEPT_ADMIN,
        "data.grant.skip_bureau",
        grant(INSURANCE_PATH, SAMR_PATH),
        True,
        ("data-grant-provider-suffices",),
    ),
    Case(
        "data-grant-bureau-for-sensitive",
        DEPT_ADMIN,
        "data.grant.skip_bureau",
        grant(INSURANCE_PATH, SAMR_PATH, "sensitive"),
        False,
        ("data-grant-bureau-for-sensitive",),
    ),
    Case(
        "data-grant-revoke",
        DEPT_ADMIN,
        "data.grant.revoke",
        grant(EMPLOYMENT_PATH, INSURANCE_PATH),
        True,
        ("data-grant-revoke",),
    ),
    Case(
        "data-grant-revoke",
        SYSADMIN,
        "data.grant.revoke",
        grant(EMPLOYMENT_PATH, SAMR_PATH),
        True,
        ("data-grant-revoke",),
    ),
    Case(
        "data-grant-revoke",
        BIGDATA_ADMIN,
        "data.grant.revoke",
        grant(EMPLOYMENT_PATH, SAMR_PATH),
        True,
        ("data-grant-revoke",),
    ),
    Case(
        "data-grant-revoke", DEPT_USER, "data.grant.revoke", grant(EMPLOYMENT_PATH, INSURANCE_PATH), False, ()
    ),
    Case("data-grant-revoke", DEPT_ADMIN, "data.grant.revoke", grant(EMPLOYMENT_PATH, SAMR_PATH), False, ()),
    Case(
        "data-grant-use",
        DEPT_USER,
        "data.grant.use",
        grant(EMPLOYMENT_PATH, INSURANCE_PATH),
        True,
        ("data-grant-use",),
    ),
    Case("data-grant-use", DEPT_USER, "data.grant.use", grant(INSURANCE_PATH, SAMR_PATH), False, ()),
]
CASES += SHARING_CASES


@pytest.fixture(scope="module")
def policy_engine() -> engine.PolicyEngine:
    return engine.PolicyEngine.load(POLICIES)


def decide(policy_engine: engine.PolicyEngine, case: Case) -> engine.Decision:
    return policy_engine.decide(
        principal=case.principal, action=case.action, resource=case.resource, context=case.context
    )


@pytest.mark.parametrize("case", CASES, ids=str)
def test_policy_case(policy_engine: engine.PolicyEngine, case: Case) -> None:
    decision = decide(policy_engine, case)

    assert decision.allowed is case.allowed
    assert decision.policy_ids == case.deciding
    if case.deciding:
        expected_reasons = tuple(policy_engine.policies[pid].reason for pid in case.deciding)
        assert decision.reasons == expected_reasons
    else:
        assert decision.reasons == (engine.NO_POLICY_PERMITS,)


def test_every_policy_has_an_allowed_and_a_denied_case(policy_engine: engine.PolicyEngine) -> None:
    with_allowed = {case.policy for case in CASES if case.allowed}
    with_denied = {case.policy for case in CASES if not case.allowed}

    assert with_allowed == set(policy_engine.policies)
    assert with_denied == set(policy_engine.policies)


def test_every_forbid_decides_at_least_one_denial(policy_engine: engine.PolicyEngine) -> None:
    forbids = {pid for pid, policy in policy_engine.policies.items() if policy.effect == "forbid"}
    named_in_denials = {pid for case in CASES if not case.allowed for pid in case.deciding}

    assert forbids <= named_in_denials


# --- who may do what: the whole matrix on the caller's own department -----------------------

WHO_MAY = {
    "catalog.read": {"dept-admin", "dept-user", "sysadmin"},
    "request.create": {"dept-admin", "dept-user"},
    "request.read": {"dept-admin", "dept-user", "sysadmin"},
    "request.cancel": {"dept-admin"},
    "request.approve": {"sysadmin"},
    "request.reject": {"sysadmin"},
    "request.auto_approve": {"dept-admin", "dept-user"},
    "workload.read": {"dept-admin", "dept-user", "sysadmin"},
    "workload.delete": {"dept-admin"},
    "quota.read": {"dept-admin", "dept-user", "sysadmin"},
    "quota.set": {"sysadmin"},
    "org.read": {"sysadmin"},
    "org.manage": {"sysadmin"},
    "token.create": {"secadmin"},
    "token.revoke": {"secadmin"},
    "token.list": {"secadmin"},
    "audit.read": {"auditor"},
    "audit.verify": {"auditor"},
    "audit.alter": set(),
    "audit.delete": set(),
    "center.read": {"sysadmin"},
    "failover.run": {"sysadmin"},
    "drill.run": {"sysadmin"},
    "placement.place": {"dept-admin", "dept-user", "sysadmin"},
    "data.item.read": {"dept-admin", "dept-user", "sysadmin"},
    "data.item.publish": {"dept-admin"},
    "data.grant.request": {"dept-admin", "dept-user"},
    "data.grant.read": {"dept-admin", "dept-user", "sysadmin"},
    "data.grant.approve": set(),
    "data.grant.bureau_approve": set(),
    "data.grant.skip_bureau": {"dept-admin"},
    "data.grant.revoke": {"dept-admin", "sysadmin"},
    "data.grant.use": {"dept-admin", "dept-user"},
}

RESOURCE_OF = {
    "catalog": CATALOG,
    "request": own("Request"),
    "workload": own("Workload"),
    "quota": own("Quota"),
    "org": own("OrgNode"),
    "token": own("Token"),
    "audit": AUDIT_LOG,
    "center": CENTERS["qd-a"],
    "failover": CENTERS["qd-a"],
    "drill": CENTERS["qd-a"],
    "placement": CENTERS["qd-a"],
    # The caller's department consumes a grant on its sibling's item.
    "data.item": item(INSURANCE_PATH),
    "data.grant": grant(EMPLOYMENT_PATH, INSURANCE_PATH),
}


def resource_of(action: str) -> engine.Resource:
    """The resource of ``action``'s kind (``data.grant.use`` → ``data.grant``, ``quota.set`` → ``quota``)."""
    kind = action.rsplit(".", 1)[0]
    return RESOURCE_OF[kind] if kind in RESOURCE_OF else RESOURCE_OF[action.partition(".")[0]]


CONTEXT_OF = {
    "request.create": create(),
    "request.auto_approve": size(),
    "placement.place": place("internal"),
    "data.grant.request": asking(),
}


def matrix() -> Iterator[tuple[str, str]]:
    for action in sorted(WHO_MAY):
        for role in sorted(ROLE_PRINCIPALS):
            yield action, role


def test_the_matrix_names_every_action() -> None:
    assert set(WHO_MAY) == engine.ACTIONS


@pytest.mark.parametrize(("action", "role"), list(matrix()))
def test_who_may_do_what(policy_engine: engine.PolicyEngine, action: str, role: str) -> None:
    decision = policy_engine.decide(
        principal=ROLE_PRINCIPALS[role],
        action=action,
        resource=resource_of(action),
        context=CONTEXT_OF.get(action),
    )

    assert decision.allowed is (role in WHO_MAY[action])


@pytest.mark.parametrize(
    "action", sorted(a for a in engine.ACTIONS if a.partition(".")[2] not in {"read", "verify", "list"})
)
def test_the_auditor_changes_nothing(policy_engine: engine.PolicyEngine, action: str) -> None:
    decision = policy_engine.decide(
        principal=AUDITOR,
        action=action,
        resource=resource_of(action),
        context=CONTEXT_OF.get(action),
    )

    assert not decision.allowed


@pytest.mark.parametrize("role", sorted(ROLE_PRINCIPALS))
@pytest.mark.parametrize("action", ["audit.alter", "audit.delete"])
def test_nobody_alters_or_deletes_audit_records(
    policy_engine: engine.PolicyEngine, role: str, action: str
) -> None:
    decision = policy_engine.decide(principal=ROLE_PRINCIPALS[role], action=action, resource=AUDIT_LOG)

    assert not decision.allowed
    assert "audit-immutable" in decision.policy_ids


# --- placement of tiers ------------------------------------------------------------------------


def tier_centers(tier_name: str) -> list[engine.Resource]:
    """The centers a tier of the shipped topology needs: both local centers, and DR if it copies."""
    parsed = topology.parse(TOPOLOGY.read_text(encoding="utf-8"))
    tier = parsed.tier(tier_name)
    roles = {topology.CenterRole.LOCAL} | ({topology.CenterRole.DR} if tier.reserves_dr_headroom else set())
    return [CENTERS[center.name] for center in parsed.centers if center.role in roles]


@pytest.mark.parametrize("tier", ["platinum", "gold", "silver", "bronze"])
def test_secret_data_is_refused_for_tiers_that_copy_to_dr(
    policy_engine: engine.PolicyEngine, tier: str
) -> None:
    needed = tier_centers(tier)
    allowed = policy_engine.allowed_centers(
        principal=DEPT_USER, data_class="secret", tier=tier, centers=needed
    )

    assert [c.id for c in allowed] == ["qd-a", "qd-b"]
    assert len(allowed) < len(needed)


def test_sensitive_data_may_use_every_cloud_center_but_never_management(
    policy_engine: engine.PolicyEngine,
) -> None:
    allowed = policy_engine.allowed_centers(
        principal=DEPT_USER, data_class="sensitive", tier="platinum", centers=CENTERS.values()
    )

    assert [c.id for c in allowed] == ["qd-a", "qd-b", "dz-dr"]


# --- the schema, the README and the engine's single parse -------------------------------------


def policy_texts() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in sorted(POLICIES.glob("*.cedar")))


def test_policies_validate_against_the_schema() -> None:
    schema = cedarpy.Schema.from_str((POLICIES / "schema.cedarschema").read_text(encoding="utf-8"))

    result = cedarpy.validate_policies(policy_texts(), schema)

    assert result.validation_passed, [str(error) for error in result.errors]


def test_readme_describes_every_policy_id(policy_engine: engine.PolicyEngine) -> None:
    readme = (POLICIES / "README.md").read_text(encoding="utf-8")

    missing = [pid for pid in policy_engine.policies if f"`{pid}`" not in readme]

    assert missing == []


def test_the_engine_reads_and_parses_the_files_once(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[Path] = []
    parses: list[str] = []
    original_read = errors.read_input_file
    original_parse = cedar.parse_policies
    original_schema = cedar.parse_schema

    def counting_read(path: Path, *args: Any, **kwargs: Any) -> str:
        reads.append(path)
        return original_read(path, *args, **kwargs)

    def counting_parse(text: str) -> cedar.PolicySet:
        parses.append(text)
        return original_parse(text)

    def counting_schema(text: str) -> cedar.Schema:
        parses.append(text)
        return original_schema(text)

    monkeypatch.setattr(errors, "read_input_file", counting_read)  # how the engine reads a file
    monkeypatch.setattr(cedar, "parse_policies", counting_parse)
    monkeypatch.setattr(cedar, "parse_schema", counting_schema)

    loaded = engine.PolicyEngine.load(POLICIES)
    reads_at_load, parses_at_load = len(reads), len(parses)
    for index in range(1_000):
        case = CASES[index % len(CASES)]
        assert decide(loaded, case).allowed is case.allowed

    assert sorted(reads) == sorted(loaded.files)
    assert reads_at_load == len(loaded.files) == 1 + len(list(POLICIES.glob("*.cedar")))
    assert parses_at_load == len(loaded.files)
    assert (len(reads), len(parses)) == (reads_at_load, parses_at_load)
