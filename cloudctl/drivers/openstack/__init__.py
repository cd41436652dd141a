"""The compute and block-storage drivers over an OpenStack cloud (openstacksdk, ``clouds.yaml``).

A small facade; the modules hold the detail and their invariants:

- ``cloud``: ``Cloud``, the connection to one center's cloud from its ``clouds.yaml``
  entry (cloud name = center name by convention), its department projects
  (``ensure_project``) and cloudctl's settings for it (image, network, timeouts);
- ``compute``: ``OpenStackCompute``, the ``base.Compute`` Protocol over Nova, with project
  quotas over Nova, Cinder and Neutron;
- ``network``: ``OpenStackNetwork``, what servers attach to (each department's tenant network)
  and the Neutron quota derived from the quota tree;
- ``block_storage``: ``OpenStackBlockStorage``, the ``base.BlockStorage`` Protocol over Cinder;
- ``calls``: retries through tenacity on the injected clock, and the mapping of SDK errors
  to ``cloudctl.errors``.

Only this package imports openstacksdk (and keystoneauth under it).
"""

from cloudctl.drivers.openstack.block_storage import OpenStackBlockStorage
from cloudctl.drivers.openstack.calls import RetryPolicy
from cloudctl.drivers.openstack.cloud import Cloud, Settings
from cloudctl.drivers.openstack.compute import OpenStackCompute

__all__ = ["Cloud", "OpenStackBlockStorage", "OpenStackCompute", "RetryPolicy", "Settings"]
