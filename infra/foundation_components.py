"""Pulumi component resources for the foundation of one center, built from the cloudctl model.

``declare_center(topology, center=...)`` computes the declared foundation with
``cloudctl.model.foundation.declare`` (the same function ``cloudctl infra diff`` uses) and turns
that center's part of it into resources:

- ``TenantProject``: a Keystone project named after the tenant, its Nova quota (cores, ram MiB,
  instances), its Cinder quota (gigabytes), and a tenant network with one subnet;
- ``TenantNamespace``: a namespace named after the tenant and its ResourceQuota
  (``requests.cpu``, ``requests.memory``);
- ``CenterFoundation``: one center's providers and tenants; a stack holds exactly one.

Invariants:
- The topology and quota tree are validated completely before the first resource is declared,
  so a wrong file declares nothing.
- Every physical name is set explicitly from the tenant id (no auto-naming suffix), and every
  logical name is ``<center>-<tenant>[-<part>]``: re-running renames and replaces nothing.
- Only ``cloudctl.model`` is imported from cloudctl: never the store or drivers.
- Providers are explicit per center: the OpenStack cloud and the kubeconfig context are both
  named after the center (``clouds.yaml`` entry ``qd-a``, context ``qd-a``), overridable through
  stack config ``cloudctl:openstackCloud`` and ``cloudctl:kubeContext``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pulumi
import pulumi_kubernetes as kubernetes

from cloudctl.model import foundation
from cloudctl.model import topology as topo

with warnings.catch_warnings():
    # pulumi_openstack's __init__ imports its deprecated aliases, each warning at import time;
    # none of them is used here.
    warnings.simplefilter("ignore", DeprecationWarning)
    import pulumi_openstack as openstack

UNLIMITED = -1
"""OpenStack's quota value for "no limit"."""

TENANT_LABEL = "cloudctl.io/tenant"
DISPLAY_NAME_ANNOTATION = "cloudctl.io/display-name"
ORG_PATH_ANNOTATION = "cloudctl.io/org-path"
RESOURCE_QUOTA_NAME = "tenant-quota"


def load_topology(path: str | Path) -> topo.Topology:
    """Parse and validate the topology file (``errors.TopologyError`` names the field on failure)."""
    return topo.parse(Path(path).read_text(encoding="utf-8"))


def _openstack_quota(value: int | None) -> int:
    return UNLIMITED if value is None else value


class TenantProject(pulumi.ComponentResource):
    """One tenant's OpenStack project in one center: quotas and tenant network."""

    def __init__(
        self,
        name: str,
        *,
        project: foundation.Project,
        provider: pulumi.ProviderResource,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("cloudctl:infra:TenantProject", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, provider=provider)
        self.project = openstack.identity.Project(
            name,
            name=project.name,
            description=project.display_name,
            tags=[f"cloudctl-org-path={'/'.join(project.org_path)}"],
            opts=child,
        )
        quota = project.quota
        self.compute_quota = openstack.compute.QuotaSetV2(
            f"{name}-compute-quota",
            project_id=self.project.id,
            cores=_openstack_quota(quota.cores),
            ram=_openstack_quota(quota.ram_mib),
            instances=_openstack_quota(quota.instances),
            opts=child,
        )
        self.volume_quota = openstack.blockstorage.QuoteSetV3(
            f"{name}-volume-quota",
            project_id=self.project.id,
            gigabytes=_openstack_quota(quota.gigabytes),
            opts=child,
        )
        self.network = openstack.networking.Network(
            f"{name}{foundation.NETWORK_SUFFIX}",
            name=project.network_name,
            tenant_id=self.project.id,
            admin_state_up=True,
            opts=child,
        )
        self.subnet = openstack.networking.Subnet(
            f"{name}{foundation.SUBNET_SUFFIX}",
            name=project.subnet_name,
            network_id=self.network.id,
            tenant_id=self.project.id,
            cidr=project.subnet_cidr,
            ip_version=4,
            allocation_pools=None
            if project.allocation_pool is None
            else [
                openstack.networking.SubnetAllocationPoolArgs(
                    start=project.allocation_pool[0], end=project.allocation_pool[1]
                )
            ],
            opts=child,
        )
        self.register_outputs({"project_id": self.project.id, "network_id": self.network.id})


class TenantNamespace(pulumi.ComponentResource):
    """One tenant's Kubernetes namespace in one center, with its ResourceQuota."""

    def __init__(
        self,
        name: str,
        *,
        namespace: foundation.Namespace,
        provider: pulumi.ProviderResource,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("cloudctl:infra:TenantNamespace", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, provider=provider)
        self.namespace = kubernetes.core.v1.Namespace(
            name,
            metadata=kubernetes.meta.v1.ObjectMetaArgs(
                name=namespace.name,
                labels={TENANT_LABEL: namespace.name},
                annotations={
                    DISPLAY_NAME_ANNOTATION: namespace.display_name,
                    ORG_PATH_ANNOTATION: "/".join(namespace.org_path),
                },
            ),
            opts=child,
        )
        self.resource_quota = kubernetes.core.v1.ResourceQuota(
            f"{name}-quota",
            metadata=kubernetes.meta.v1.ObjectMetaArgs(
                name=RESOURCE_QUOTA_NAME, namespace=self.namespace.metadata.name
            ),
            spec=kubernetes.core.v1.ResourceQuotaSpecArgs(hard=namespace.hard()),
            opts=child,
        )
        self.register_outputs({"namespace": self.namespace.metadata.name})


class CenterFoundation(pulumi.ComponentResource):
    """The foundation of one center: its providers, and a project and namespace per tenant."""

    def __init__(
        self,
        name: str,
        *,
        center: foundation.CenterFoundation,
        openstack_cloud: str | None = None,
        kube_context: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("cloudctl:infra:CenterFoundation", name, None, opts)
        prefix = center.center
        self.projects: dict[str, TenantProject] = {}
        self.namespaces: dict[str, TenantNamespace] = {}
        if center.projects:
            cloud = openstack.Provider(
                f"{prefix}-openstack",
                cloud=openstack_cloud or center.center,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for project in center.projects:
                self.projects[project.name] = TenantProject(
                    f"{prefix}-{project.name}",
                    project=project,
                    provider=cloud,
                    opts=pulumi.ResourceOptions(parent=self),
                )
        if center.namespaces:
            cluster = kubernetes.Provider(
                f"{prefix}-kubernetes",
                context=kube_context or center.center,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for namespace in center.namespaces:
                self.namespaces[namespace.name] = TenantNamespace(
                    f"{prefix}-{namespace.name}",
                    namespace=namespace,
                    provider=cluster,
                    opts=pulumi.ResourceOptions(parent=self),
                )
        self.register_outputs({"projects": sorted(self.projects), "namespaces": sorted(self.namespaces)})


def declare_center(
    topology: topo.Topology,
    *,
    center: str,
    org: topo.OrgNode | None = None,
    openstack_cloud: str | None = None,
    kube_context: str | None = None,
) -> CenterFoundation:
    """Validate, compute the foundation, then declare ``center``'s part of it (nothing on failure)."""
    declared = foundation.declare(topology, org=org).center(center)
    return CenterFoundation(
        center,
        center=declared,
        openstack_cloud=openstack_cloud,
        kube_context=kube_context,
    )
