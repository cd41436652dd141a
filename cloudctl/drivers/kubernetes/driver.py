"""``KubernetesContainers``: the ``base.Containers`` Protocol over one center's Kubernetes API.

One instance talks to the cluster of one center, through the kubeconfig context named after
the center unless told otherwise. A cloudctl namespace is the five objects of ``manifests``
(namespace, quota, default limits, default-deny network policy, the department's admin
binding).

Tested against recorded exchanges of the real Kubernetes API replayed by a loopback HTTP
server (``tests/unit/drivers/test_kubernetes_driver.py``), not against a live cluster: no API
server can run where the tests run.

Invariants:

- Only namespaces labelled ``cloudctl.io/managed=true`` exist for this driver: ``get`` of
  another namespace is ``errors.NotFound``, ``list`` filters on the label, and ``delete``
  refuses (``errors.Conflict``) to remove a namespace cloudctl did not make.
- A namespace being deleted (``Terminating``) is gone: ``get`` raises ``errors.NotFound``,
  ``list`` leaves it out, ``delete`` is done already.
- ``create_namespace`` of an existing name raises ``errors.Conflict`` — except when the
  namespace carries this call's own creation token, i.e. an earlier attempt of this very
  call reached the server before its answer was lost. It makes all five objects or, when a
  later one fails, deletes the namespace again (best effort) and raises the failure.
- ``set_namespace_quota`` replaces the ``ResourceQuota`` with the ``resourceVersion`` it
  read; when someone changed it meanwhile (409) it reads again and retries once, then raises
  ``errors.Conflict``. A missing quota is created.
- A managed namespace whose quota is gone has no size cloudctl can report: ``get`` raises
  ``errors.OperationFailed`` (``set_namespace_quota`` restores it) and ``list`` leaves it out.
- Every call goes through the shared ``drivers.calls.Caller`` (``_call``: timeout, retries,
  error mapping by the rules of ``calls``); the client's objects never leave this module.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar, cast

import kubernetes.client
import kubernetes.config

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.drivers import base
from cloudctl.drivers.kubernetes import calls, manifests

T = TypeVar("T")


class KubernetesContainers:
    """Department namespaces with quotas in the Kubernetes cluster of one center."""

    def __init__(
        self,
        *,
        center: str,
        kubeconfig: Path | None = None,
        context: str | None = None,
        clock: clocks.Clock | None = None,
        retry: calls.RetryPolicy | None = None,
    ) -> None:
        self.center = center
        self.context = context if context is not None else center
        configuration = load_configuration(kubeconfig=kubeconfig, context=self.context)
        self.server_url = str(configuration.host)
        self._api_client = kubernetes.client.ApiClient(configuration)
        self._core = kubernetes.client.CoreV1Api(self._api_client)
        self._networking = kubernetes.client.NetworkingV1Api(self._api_client)
        self._rbac = kubernetes.client.RbacAuthorizationV1Api(self._api_client)
        self._caller = calls.caller(
            center=center,
            server_url=self.server_url,
            clock=clock if clock is not None else clocks.SystemClock(),
            retry=retry if retry is not None else calls.RetryPolicy(),
        )

    def __repr__(self) -> str:
        return f"KubernetesContainers(center={self.center!r}, context={self.context!r})"

    @property
    def retry(self) -> calls.RetryPolicy:
        """How this driver's calls are retried and timed out."""
        return self._caller.retry

    def _call(self, operation: Callable[[tuple[float, float]], T], *, what: str) -> T:
        """``operation(request_timeout)`` through the caller: timed out, retried and mapped."""
        timeout = self._caller.retry.request_timeout
        return self._caller.call(lambda: operation(timeout), what=what)

    def close(self) -> None:
        """Release the client's connections."""
        cast(Callable[[], None], self._api_client.close)()

    # --- the Protocol ------------------------------------------------------------------

    def create_namespace(
        self, name: str, *, vcpu: int, ram_gb: int, department: str | None = None
    ) -> base.Namespace:
        """Make the namespace and its four companions; ``department`` defaults to ``name``."""
        base.check_sizes(vcpu=vcpu, ram_gb=ram_gb)
        department = department if department is not None else name
        token = uuid.uuid4().hex
        body = manifests.namespace(name, department=department, token=token)
        try:
            created = self._call(
                lambda timeout: self._core.create_namespace(body, _request_timeout=timeout),
                what=f"namespace {name}",
            )
        except calls.AlreadyExists:
            created = self._read_namespace(name)
            if manifests.creation_token(created) != token:
                raise
        try:
            self._create_companions(name, vcpu=vcpu, ram_gb=ram_gb, department=department)
        except errors.CloudctlError:
            self._delete_quietly(name)
            raise
        return self._namespace(created, vcpu=vcpu, ram_gb=ram_gb)

    def get_namespace(self, name: str) -> base.Namespace:
        namespace = self._read_managed_namespace(name)
        try:
            sizes = manifests.quota_sizes(self._read_quota(name))
        except errors.NotFound:
            # Not NotFound: the namespace exists, and a caller that creates what is missing would clash.
            sizes = None
        if sizes is None:
            raise errors.OperationFailed(
                f"namespace {name} in center {self.center} lacks its ResourceQuota {manifests.QUOTA_NAME} "
                "(or its requests.cpu / requests.memory); set_namespace_quota restores it",
                field="namespace",
            )
        vcpu, ram_gb = sizes
        return self._namespace(namespace, vcpu=vcpu, ram_gb=ram_gb)

    def list_namespaces(self) -> list[base.Namespace]:
        """The managed, active namespaces that have their quota, sorted by name."""
        namespaces = self._call(
            lambda timeout: self._core.list_namespace(
                label_selector=manifests.MANAGED_SELECTOR, _request_timeout=timeout
            ),
            what="namespaces",
        )
        quotas = self._call(
            lambda timeout: self._core.list_resource_quota_for_all_namespaces(
                label_selector=manifests.MANAGED_SELECTOR, _request_timeout=timeout
            ),
            what="resourcequotas",
        )
        sizes_by_namespace: dict[str, tuple[int, int]] = {}
        for quota in quotas.items:
            metadata = quota.metadata
            sizes = manifests.quota_sizes(quota)
            if metadata is not None and metadata.name == manifests.QUOTA_NAME and sizes is not None:
                sizes_by_namespace[str(metadata.namespace)] = sizes
        result = []
        for namespace in namespaces.items:
            name = namespace.metadata.name if namespace.metadata is not None else None
            if name is None or name not in sizes_by_namespace:
                continue
            if not manifests.is_managed(namespace.metadata) or manifests.is_terminating(namespace):
                continue
            vcpu, ram_gb = sizes_by_namespace[name]
            result.append(self._namespace(namespace, vcpu=vcpu, ram_gb=ram_gb))
        return sorted(result, key=lambda item: item.name)

    def delete_namespace(self, name: str, *, ignore_missing: bool = True) -> None:
        """Delete the namespace (Kubernetes then removes everything in it, asynchronously)."""
        try:
            namespace = self._read_namespace(name)
        except errors.NotFound:
            if ignore_missing:
                return
            raise
        if not manifests.is_managed(namespace.metadata):
            raise errors.Conflict(
                f"namespace {name} in center {self.center} is not managed by cloudctl "
                f"(no label {manifests.MANAGED_SELECTOR}); refusing to delete it",
                field="namespace",
            )
        gone = manifests.is_terminating(namespace)
        if not gone:
            try:
                self._call(
                    lambda timeout: self._core.delete_namespace(name, _request_timeout=timeout),
                    what=f"namespace {name}",
                )
            except (errors.NotFound, calls.StaleResourceVersion):
                # Deleted meanwhile, or already terminating: the API answers 409 to a second delete.
                gone = True
        if gone and not ignore_missing:
            raise errors.NotFound(f"no namespace {name} in center {self.center}", field="namespace")

    def set_namespace_quota(self, name: str, *, vcpu: int, ram_gb: int) -> base.Namespace:
        base.check_sizes(vcpu=vcpu, ram_gb=ram_gb)
        namespace = self._read_managed_namespace(name)
        try:
            quota = self._replace_quota(name, vcpu=vcpu, ram_gb=ram_gb)
        except (calls.StaleResourceVersion, calls.AlreadyExists):
            # Someone changed the quota between our read and our write: read again, once.
            quota = self._replace_quota(name, vcpu=vcpu, ram_gb=ram_gb)
        sizes = manifests.quota_sizes(quota) or (vcpu, ram_gb)
        return self._namespace(namespace, vcpu=sizes[0], ram_gb=sizes[1])

    # --- helpers ---------------------------------------------------------------------

    def _create_companions(self, name: str, *, vcpu: int, ram_gb: int, department: str) -> None:
        """The quota, limits, network policy and role binding of a namespace this call created.

        An ``AlreadyExists`` here can only be an earlier attempt of this same call, whose
        answer was lost: the namespace is brand new and ours.
        """
        quota = manifests.resource_quota(name, vcpu=vcpu, ram_gb=ram_gb)
        limits = manifests.limit_range(name)
        policy = manifests.default_deny_network_policy(name)
        binding = manifests.department_role_binding(name, department=department)
        steps = [
            (
                f"resourcequota {manifests.QUOTA_NAME}",
                lambda timeout: self._core.create_namespaced_resource_quota(
                    name, quota, _request_timeout=timeout
                ),
            ),
            (
                f"limitrange {manifests.LIMIT_RANGE_NAME}",
                lambda timeout: self._core.create_namespaced_limit_range(
                    name, limits, _request_timeout=timeout
                ),
            ),
            (
                f"networkpolicy {manifests.NETWORK_POLICY_NAME}",
                lambda timeout: self._networking.create_namespaced_network_policy(
                    name, policy, _request_timeout=timeout
                ),
            ),
            (
                f"rolebinding {manifests.ROLE_BINDING_NAME}",
                lambda timeout: self._rbac.create_namespaced_role_binding(
                    name, binding, _request_timeout=timeout
                ),
            ),
        ]
        for what, create in steps:
            try:
                self._call(create, what=f"{what} in namespace {name}")
            except calls.AlreadyExists:
                continue

    def _replace_quota(self, name: str, *, vcpu: int, ram_gb: int) -> kubernetes.client.V1ResourceQuota:
        try:
            current = self._read_quota(name)
        except errors.NotFound:
            quota = manifests.resource_quota(name, vcpu=vcpu, ram_gb=ram_gb)
            return self._call(
                lambda timeout: self._core.create_namespaced_resource_quota(
                    name, quota, _request_timeout=timeout
                ),
                what=f"resourcequota {manifests.QUOTA_NAME} in namespace {name}",
            )
        version = current.metadata.resource_version if current.metadata is not None else None
        replacement = manifests.resource_quota(name, vcpu=vcpu, ram_gb=ram_gb, resource_version=version)
        return self._call(
            lambda timeout: self._core.replace_namespaced_resource_quota(
                manifests.QUOTA_NAME, name, replacement, _request_timeout=timeout
            ),
            what=f"resourcequota {manifests.QUOTA_NAME} in namespace {name}",
        )

    def _read_namespace(self, name: str) -> kubernetes.client.V1Namespace:
        return self._call(
            lambda timeout: self._core.read_namespace(name, _request_timeout=timeout),
            what=f"namespace {name}",
        )

    def _read_managed_namespace(self, name: str) -> kubernetes.client.V1Namespace:
        namespace = self._read_namespace(name)
        if not manifests.is_managed(namespace.metadata) or manifests.is_terminating(namespace):
            raise errors.NotFound(f"no namespace {name} in center {self.center}", field="namespace")
        return namespace

    def _read_quota(self, name: str) -> kubernetes.client.V1ResourceQuota:
        return self._call(
            lambda timeout: self._core.read_namespaced_resource_quota(
                manifests.QUOTA_NAME, name, _request_timeout=timeout
            ),
            what=f"resourcequota {manifests.QUOTA_NAME} in namespace {name}",
        )

    def _delete_quietly(self, name: str) -> None:
        """Undo a half-made namespace; the failure that made us undo it is what the caller sees."""
        with contextlib.suppress(errors.CloudctlError):
            self._call(
                lambda timeout: self._core.delete_namespace(name, _request_timeout=timeout),
                what=f"namespace {name}",
            )

    def _namespace(
        self, namespace: kubernetes.client.V1Namespace, *, vcpu: int, ram_gb: int
    ) -> base.Namespace:
        metadata = namespace.metadata
        created = metadata.creation_timestamp if metadata is not None else None
        return base.Namespace(
            name=str(metadata.name if metadata is not None else ""),
            center=self.center,
            vcpu=vcpu,
            ram_gb=ram_gb,
            created_at=created.timestamp() if created is not None else 0.0,
        )


# The client's configuration loader and ``ApiClient.close`` carry no annotations: typed here.
_load_kube_config = cast(Callable[..., None], kubernetes.config.load_kube_config)


def load_configuration(*, kubeconfig: Path | None, context: str) -> kubernetes.client.Configuration:
    """The client configuration of ``context`` in ``kubeconfig`` (default: ``$KUBECONFIG``).

    The client's own retries are switched off: the shared ``Caller`` retries, on the injected clock.
    """
    configuration = kubernetes.client.Configuration()
    try:
        _load_kube_config(
            config_file=str(kubeconfig) if kubeconfig is not None else None,
            context=context,
            client_configuration=configuration,
            persist_config=False,
        )
    except (kubernetes.config.ConfigException, OSError) as error:
        where = str(kubeconfig) if kubeconfig is not None else "the default kubeconfig"
        raise errors.InvalidInput(
            f"cannot use context {context!r} of {where}: {error}", field="kubeconfig"
        ) from error
    configuration.retries = False
    configuration.client_go_retries = False
    return configuration
