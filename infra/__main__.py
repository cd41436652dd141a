"""The Pulumi program: one stack per center, declaring that center's foundation.

Stack config (``cloudctl infra preview|up|refresh --center C`` sets the first two):

- ``cloudctl:center``: the center (default: the stack name);
- ``cloudctl:topology``: the topology file (default: ``topology.yaml`` beside this program);
- ``cloudctl:openstackCloud``, ``cloudctl:kubeContext``: the ``clouds.yaml`` entry and kubeconfig
  context of the center (default: the center name).

Thin on purpose: the resources live in ``foundation_components``, the rules in
``cloudctl.model.foundation``.
"""

from pathlib import Path

import foundation_components
import pulumi

config = pulumi.Config("cloudctl")
center = config.get("center") or pulumi.get_stack()
topology_file = config.get("topology") or str(Path(__file__).resolve().with_name("topology.yaml"))

declared = foundation_components.declare_center(
    foundation_components.load_topology(topology_file),
    center=center,
    openstack_cloud=config.get("openstackCloud"),
    kube_context=config.get("kubeContext"),
)

pulumi.export("center", center)
pulumi.export("projects", sorted(declared.projects))
pulumi.export("namespaces", sorted(declared.namespaces))
