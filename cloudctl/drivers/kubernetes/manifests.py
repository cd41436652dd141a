"""The Kubernetes objects that make a department's namespace, and reading cloudctl's sizes back from them.

A cloudctl namespace is five objects, all labelled ``cloudctl.io/managed=true``:

- the ``Namespace``, also labelled with its department and annotated with the creation
  token of the call that made it (how a retried create recognises its own earlier attempt);
- ``ResourceQuota`` ``cloudctl-quota``: ``requests.cpu`` = ``limits.cpu`` = vcpu and
  ``requests.memory`` = ``limits.memory`` = ``{ram_gb}Gi``;
- ``LimitRange`` ``cloudctl-defaults``: default container requests and limits, because a
  quota on requests and limits makes the API refuse any pod that states none;
- ``NetworkPolicy`` ``default-deny``: every pod selected, ingress and egress declared and no
  rule given, so nothing flows until the department adds policies that allow it;
- ``RoleBinding`` ``cloudctl-department-admin``: the built-in ``admin`` ClusterRole, inside
  this namespace only, for the group ``cloudctl:dept:<department>``.

Invariants: builders are pure (no I/O); sizes read back are whole units, rounded down (a
quota of ``1500m`` CPU guarantees 1 vCPU); a quota missing one of cloudctl's keys reads as
``None`` rather than as a number it does not hold.
"""

from __future__ import annotations

import decimal
import math
from collections.abc import Callable
from typing import cast

import kubernetes.client
import kubernetes.utils

MANAGED_LABEL = "cloudctl.io/managed"
DEPARTMENT_LABEL = "cloudctl.io/department"
CREATION_TOKEN_ANNOTATION = "cloudctl.io/creation-token"
MANAGED_SELECTOR = f"{MANAGED_LABEL}=true"

QUOTA_NAME = "cloudctl-quota"
LIMIT_RANGE_NAME = "cloudctl-defaults"
NETWORK_POLICY_NAME = "default-deny"
ROLE_BINDING_NAME = "cloudctl-department-admin"
DEPARTMENT_ROLE = "admin"
RBAC_API_GROUP = "rbac.authorization.k8s.io"
TERMINATING = "Terminating"

DEFAULT_CONTAINER_REQUEST = {"cpu": "100m", "memory": "128Mi"}
DEFAULT_CONTAINER_LIMIT = {"cpu": "500m", "memory": "512Mi"}
BYTES_PER_GIB = 1024**3

# The client's quantity parser carries no annotations: typed here, checked on use.
_parse_quantity = cast(Callable[[str], object], kubernetes.utils.parse_quantity)


def department_group(department: str) -> str:
    """The RBAC group whose members administer the department's namespace."""
    return f"cloudctl:dept:{department}"


def managed_labels(*, department: str | None = None) -> dict[str, str]:
    labels = {MANAGED_LABEL: "true"}
    if department is not None:
        labels[DEPARTMENT_LABEL] = department
    return labels


def is_managed(metadata: kubernetes.client.V1ObjectMeta | None) -> bool:
    return metadata is not None and (metadata.labels or {}).get(MANAGED_LABEL) == "true"


def is_terminating(namespace: kubernetes.client.V1Namespace) -> bool:
    """Deleted and waiting for its content to go: to cloudctl, already gone."""
    phase = namespace.status.phase if namespace.status is not None else None
    deleted = namespace.metadata is not None and namespace.metadata.deletion_timestamp is not None
    return deleted or phase == TERMINATING


def creation_token(namespace: kubernetes.client.V1Namespace) -> str | None:
    metadata = namespace.metadata
    return (metadata.annotations or {}).get(CREATION_TOKEN_ANNOTATION) if metadata is not None else None


def namespace(name: str, *, department: str, token: str) -> kubernetes.client.V1Namespace:
    return kubernetes.client.V1Namespace(
        api_version="v1",
        kind="Namespace",
        metadata=kubernetes.client.V1ObjectMeta(
            name=name,
            labels=managed_labels(department=department),
            annotations={CREATION_TOKEN_ANNOTATION: token},
        ),
    )


def quota_hard(*, vcpu: int, ram_gb: int) -> dict[str, str]:
    memory = f"{ram_gb}Gi"
    return {
        "requests.cpu": str(vcpu),
        "limits.cpu": str(vcpu),
        "requests.memory": memory,
        "limits.memory": memory,
    }


def resource_quota(
    namespace_name: str, *, vcpu: int, ram_gb: int, resource_version: str | None = None
) -> kubernetes.client.V1ResourceQuota:
    return kubernetes.client.V1ResourceQuota(
        api_version="v1",
        kind="ResourceQuota",
        metadata=kubernetes.client.V1ObjectMeta(
            name=QUOTA_NAME,
            namespace=namespace_name,
            labels=managed_labels(),
            resource_version=resource_version,
        ),
        spec=kubernetes.client.V1ResourceQuotaSpec(hard=quota_hard(vcpu=vcpu, ram_gb=ram_gb)),
    )


def limit_range(namespace_name: str) -> kubernetes.client.V1LimitRange:
    return kubernetes.client.V1LimitRange(
        api_version="v1",
        kind="LimitRange",
        metadata=kubernetes.client.V1ObjectMeta(
            name=LIMIT_RANGE_NAME, namespace=namespace_name, labels=managed_labels()
        ),
        spec=kubernetes.client.V1LimitRangeSpec(
            limits=[
                kubernetes.client.V1LimitRangeItem(
                    type="Container",
                    default_request=dict(DEFAULT_CONTAINER_REQUEST),
                    default=dict(DEFAULT_CONTAINER_LIMIT),
                )
            ]
        ),
    )


def default_deny_network_policy(namespace_name: str) -> kubernetes.client.V1NetworkPolicy:
    return kubernetes.client.V1NetworkPolicy(
        api_version="networking.k8s.io/v1",
        kind="NetworkPolicy",
        metadata=kubernetes.client.V1ObjectMeta(
            name=NETWORK_POLICY_NAME, namespace=namespace_name, labels=managed_labels()
        ),
        spec=kubernetes.client.V1NetworkPolicySpec(
            pod_selector=kubernetes.client.V1LabelSelector(),
            policy_types=["Ingress", "Egress"],
        ),
    )


def department_role_binding(namespace_name: str, *, department: str) -> kubernetes.client.V1RoleBinding:
    return kubernetes.client.V1RoleBinding(
        api_version=f"{RBAC_API_GROUP}/v1",
        kind="RoleBinding",
        metadata=kubernetes.client.V1ObjectMeta(
            name=ROLE_BINDING_NAME, namespace=namespace_name, labels=managed_labels(department=department)
        ),
        role_ref=kubernetes.client.V1RoleRef(
            api_group=RBAC_API_GROUP, kind="ClusterRole", name=DEPARTMENT_ROLE
        ),
        subjects=[
            kubernetes.client.RbacV1Subject(
                api_group=RBAC_API_GROUP, kind="Group", name=department_group(department)
            )
        ],
    )


def quota_sizes(quota: kubernetes.client.V1ResourceQuota) -> tuple[int, int] | None:
    """(vcpu, ram_gb) from the quota's ``requests.cpu`` and ``requests.memory``; ``None`` if absent."""
    hard = (quota.spec.hard if quota.spec is not None else None) or {}
    cpu = hard.get("requests.cpu")
    memory = hard.get("requests.memory")
    if cpu is None or memory is None:
        return None
    return (
        math.floor(_quantity(cpu)),
        math.floor(_quantity(memory) / BYTES_PER_GIB),
    )


def _quantity(text: str) -> decimal.Decimal:
    parsed = _parse_quantity(text)
    if not isinstance(parsed, decimal.Decimal):
        raise ValueError(f"not a Kubernetes quantity: {text!r}")
    return parsed
