"""An outside network shared by several edge hosts (ECMP to edges on real namespaces).

    outside ns:  Linux bridge br0 with 172.16.0.1/24 (the edges' next hop), 203.0.113.10/32 on lo (the
                 "internet"); one veth per edge host into that host's br-ext (netdev, standalone)

Like netns_outside's single-edge outside, the namespace is recorded as a VM named "outside" (host = the
first edge), so `exec`/`spawn` reach it and `down` removes it; the veth ends in the edge hosts go with
their namespaces. `cut_host` takes an edge host off the underlay (its BFD sessions die).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import netns_hosts as nh
from .netns_outside import BRIDGE, GATEWAY_IP, INTERNET_IP, MTU, NAME
from .netns_util import ifname, run

if TYPE_CHECKING:
    from .netns import NetnsSandbox


def add_shared_outside(sb: NetnsSandbox, hosts: list[str]) -> dict[str, Any]:
    from .netns import default_mac

    ns = f"{sb.prefix}-out"
    with sb._locked():
        vm = {"host": hosts[0], "ip": GATEWAY_IP, "mac": default_mac(GATEWAY_IP), "gateway": None,
              "iface_id": "", "netns": ns, "port": ifname(sb.prefix, "out0"), "outside": True, "bridge": BRIDGE,
              "internet_ip": INTERNET_IP, "ready": True}
        sb.state["vms"][NAME] = vm
        nh._new_netns(sb, ns, nh.QUIET_SYSCTLS)
        batch = ["link add br0 type bridge", f"link set br0 address {vm['mac']} mtu {MTU}",
                 f"addr add {GATEWAY_IP} dev br0", f"addr add {INTERNET_IP}/32 dev lo"]
        for i, host in enumerate(hosts):
            port, hns = ifname(sb.prefix, f"out{i}"), sb.state["hosts"][host]["netns"]
            run(["ip", "-n", hns, "link", "add", port, "type", "veth", "peer", "name", f"e{i}", "netns", ns])
            batch += [f"link set e{i} mtu {MTU}", f"link set e{i} master br0", f"link set e{i} up"]
            run(["ip", "-n", hns, "link", "set", port, "up"])
            sb.ovs(host, "--may-exist", "add-br", BRIDGE, "--", "set", "Bridge", BRIDGE, "datapath_type=netdev",
                   "--", "--may-exist", "add-port", BRIDGE, port)
        nh._ip_batch(ns, [*batch, "link set br0 up"])
        run(["ip", "netns", "exec", ns, "ethtool", "-K", "br0", "tx", "off"], check=False)
        sb._save()
    sb.log(f"outside    netns {ns}: {GATEWAY_IP} + {INTERNET_IP} behind {', '.join(hosts)}:{BRIDGE}")
    return vm


def cut_host(sb: NetnsSandbox, host: str, up: bool = False) -> None:
    """Take `host`'s link to the underlay down (a dead host, as far as its peers can tell) or back up."""
    run(["ip", "-n", sb.ns("ul"), "link", "set", ifname(sb.prefix, host), "up" if up else "down"])


__all__ = ["add_shared_outside", "cut_host"]
