"""The containers driver over Kubernetes (the official ``kubernetes`` client, kubeconfig per center).

A small facade; the modules hold the detail and their invariants:

- ``driver``: ``KubernetesContainers``, the ``base.Containers`` Protocol for one center's
  cluster (kubeconfig context = center name by convention);
- ``manifests``: the five objects of a department's namespace (namespace, ResourceQuota,
  LimitRange, default-deny NetworkPolicy, admin RoleBinding) and reading sizes back;
- ``calls``: timeouts, retries through tenacity on the injected clock (honouring
  ``Retry-After``), and the mapping of API ``Status`` errors to ``cloudctl.errors``.

Tested against recorded exchanges of the real Kubernetes API, replayed over loopback HTTP,
not against a live cluster. Only this package imports the ``kubernetes`` client.
"""

from cloudctl.drivers.kubernetes.calls import RetryPolicy
from cloudctl.drivers.kubernetes.driver import KubernetesContainers

__all__ = ["KubernetesContainers", "RetryPolicy"]
