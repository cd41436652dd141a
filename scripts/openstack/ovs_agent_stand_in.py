"""A stand-in for Neutron's Open vSwitch agent on the loopback stack: it reports its state, nothing more.

ML2 binds a server's port only to a host where an L2 agent of its mechanism driver is alive
and can reach the network's segment (``AgentMechanismDriverBase.bind_port``). A real Open
vSwitch agent needs Open vSwitch, a kernel datapath and root on a real host; this test rig has
none of them, just as it has no hypervisor (Nova runs its fake compute driver). This process
plays the agent's part towards the Neutron server and no other: every ``--interval-s`` seconds
it sends the agent's state report over Neutron's own RPC client
(``neutron.agent.rpc.PluginReportStateAPI``, oslo.messaging on the stack's RabbitMQ vhost),
for the Nova compute host, with the bridge mappings and tunnel types it is given. ML2's
``openvswitch`` mechanism driver then binds ports on that host (``binding:vif_type`` ``ovs``)
exactly as it would for a real agent.

What it does not do, and so what the stack cannot show:

- It plugs nothing: no bridge, no tap device, no flow, no firewall. Nova's fake driver plugs
  nothing either (``vif_plugging_is_fatal = false``, ``vif_plugging_timeout = 0`` in
  ``nova.conf``), so no packet ever moves.
- It never reports a device up (``update_device_list``), so bound ports stay ``DOWN``, and it
  does not sync tunnels, so no VXLAN endpoint is registered.
- Its configuration carries ``"cloudctl_stand_in": true`` so that nobody mistakes it for a
  real agent in ``openstack network agent list``.

It runs with the system Python (Debian's python3-neutron), started and stopped by
``stack.py`` like every other service of the stack: ``ovs_agent_stand_in.py --host HOST
[--bridge-mapping PHYSNET:BRIDGE ...] [--tunnel-type vxlan ...] -- --config-file neutron.conf``
(the arguments after ``--`` go to oslo.config, which reads the transport URL there).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from neutron.agent import rpc as agent_rpc
from neutron.common import config as common_config
from neutron.conf.agent import common as agent_config
from neutron_lib import constants
from neutron_lib import context as neutron_context
from neutron_lib.agent import topics
from oslo_config import cfg
from oslo_log import log as logging

LOG = logging.getLogger("cloudctl.ovs_agent_stand_in")
REPLY_TIMEOUT_S = 3.0
RETRY_INTERVAL_S = 1.0


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="ovs_agent_stand_in.py", description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True, help="the Nova compute host whose ports ML2 should bind")
    parser.add_argument(
        "--bridge-mapping",
        action="append",
        default=[],
        metavar="PHYSNET:BRIDGE",
        help="a physical network the agent claims to reach (flat and VLAN networks)",
    )
    parser.add_argument(
        "--tunnel-type", action="append", default=[], help="a tunnel type the agent claims (vxlan, gre)"
    )
    parser.add_argument("--tunneling-ip", default="127.0.0.1")
    parser.add_argument("--interval-s", type=float, default=10.0, help="seconds between state reports")
    args, rest = parser.parse_known_args(argv)
    return args, [arg for arg in rest if arg != "--"]


def agent_state(args: argparse.Namespace) -> dict[str, object]:
    """The report a real Open vSwitch agent sends, minus what only a real switch could tell."""
    bridge_mappings = dict(mapping.split(":", 1) for mapping in args.bridge_mapping)
    return {
        "binary": constants.AGENT_PROCESS_OVS,
        "host": args.host,
        "topic": constants.L2_AGENT_TOPIC,
        "agent_type": constants.AGENT_TYPE_OVS,
        "start_flag": True,
        "configurations": {
            "bridge_mappings": bridge_mappings,
            "tunnel_types": list(args.tunnel_type),
            "tunneling_ip": args.tunneling_ip,
            "integration_bridge": "br-int",
            "datapath_type": "system",
            "ovs_hybrid_plug": False,
            "l2_population": False,
            "arp_responder_enabled": False,
            "enable_distributed_routing": False,
            "extensions": [],
            "devices": 0,
            "cloudctl_stand_in": True,
        },
    }


def main(argv: list[str] | None = None) -> int:
    args, oslo_args = parse_args(sys.argv[1:] if argv is None else argv)
    common_config.register_common_config_options()
    agent_config.register_agent_state_opts_helper(cfg.CONF)
    common_config.init(oslo_args)
    # PluginReportStateAPI waits report_interval seconds for the server's answer: a report the
    # server has not taken by then (it is still starting) is sent again soon.
    cfg.CONF.set_override("report_interval", REPLY_TIMEOUT_S, "AGENT")
    common_config.setup_logging()

    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())

    reporter = agent_rpc.PluginReportStateAPI(topics.REPORTS)
    admin = neutron_context.get_admin_context_without_session()
    state = agent_state(args)
    LOG.info("reporting an Open vSwitch agent on %s every %g s; it plugs nothing", args.host, args.interval_s)
    failing = False
    while not stopping.is_set():
        try:
            # A call, not a cast: the server's answer tells that the report arrived.
            status = reporter.report_state(admin, state, use_call=True)
        except Exception as error:  # whatever went wrong, a stand-in keeps reporting
            if not failing:
                LOG.warning("state report failed, retrying every %g s: %s", RETRY_INTERVAL_S, error)
            failing = True
            stopping.wait(RETRY_INTERVAL_S)
            continue
        if failing or "start_flag" in state:
            LOG.info("state reported (the server counts the agent %s)", status)
        state.pop("start_flag", None)
        failing = False
        stopping.wait(args.interval_s)
    LOG.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
