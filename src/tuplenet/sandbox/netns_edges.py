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


VIPS = {"hv2": "172.16.0.11", "hv3": "172.16.0.12"}


def tpctl(sb: NetnsSandbox, prefix: str, *args: str) -> str:
    """Run tpctl against the sandbox's etcd; raises SandboxError with its message on failure."""
    import subprocess
    import sys

    from .netns_util import SandboxError

    r = subprocess.run([sys.executable, "-m", "tuplenet.cli.tpctl", "-e", sb.etcd_endpoint, "-p", prefix, *args],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise SandboxError(f"tpctl {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout


def build_two_edges(sb: NetnsSandbox, prefix: str) -> None:
    """On an up 3-host sandbox: hv2 and hv3 become edges (GATEWAY=1 agents, roads by `tpctl edge`, SNAT to
    their VIPs) in front of LR-central, an outside behind both, and vm1 on hv1 in LS-A (10.10.1.2)."""
    from .netns import default_mac

    for h in VIPS:
        sb.agent_stop(h)
        sb.agent_start(h, {"GATEWAY": "1"})
    sb.wait_agents()
    add_shared_outside(sb, list(VIPS))  # br-ext on both edges before the patch ports
    for args in [("ls", "add", "LS-A"), ("lr", "add", "LR-central"),
                 ("lr", "link", "LR-central", "LS-A", "10.10.1.1/24"),
                 ("edge", "init", "hv2", BRIDGE, f"{VIPS['hv2']}/24", "10.10.0.0/16", GATEWAY_IP.split("/")[0]),
                 ("edge", "add", "hv3", BRIDGE, f"{VIPS['hv3']}/24"),
                 ("lnat", "add", "tp_LR_edge1", "vms", "10.10.0.0/16", "snat", VIPS["hv2"]),
                 ("lnat", "add", "tp_LR_edge2", "vms", "10.10.0.0/16", "snat", VIPS["hv3"]),
                 ("lsp", "add", "LS-A", "vm1", "10.10.1.2")]:
        tpctl(sb, prefix, *args)
    sb.add_vm("vm1", host="hv1", ip="10.10.1.2/24", mac=default_mac("10.10.1.2"), gateway="10.10.1.1")


def snat_packets(sb: NetnsSandbox, host: str) -> int:
    """Packets `host`'s SNAT flows translated so far (which edge carries a flow)."""
    import re

    text = sb.ovs(host, "ovs-ofctl", "-O", "OpenFlow15", "dump-flows", "br-int", "table=53")
    return sum(int(m) for m in re.findall(r"n_packets=(\d+)", text))


def ping_loss(sb: NetnsSandbox, seconds: float, cut_after: float, victim: str, interval: float = 0.01) -> tuple[int, int]:
    """vm1 pings the outside every `interval` s for `seconds`; `victim` is cut off after `cut_after` s and
    restored at the end. Returns (sent, received)."""
    import os
    import re
    import time

    log = os.path.join(sb.workdir, "ping.log")
    if os.path.exists(log):
        os.unlink(log)
    ping = sb.spawn("vm1", ["ping", "-i", str(interval), "-W", "1", "-w", str(int(seconds)), INTERNET_IP], logfile=log)
    try:
        time.sleep(cut_after)
        cut_host(sb, victim)
        ping.wait(timeout=seconds + 30)
    finally:
        cut_host(sb, victim, up=True)
    text = open(log).read()
    m = re.search(r"(\d+) packets transmitted, (\d+) received", text)
    if not m:
        raise RuntimeError(f"no ping summary: {text[-300:]}")
    return int(m.group(1)), int(m.group(2))


def cut_host(sb: NetnsSandbox, host: str, up: bool = False) -> None:
    """Take `host`'s link to the underlay down (a dead host, as far as its peers can tell) or back up."""
    run(["ip", "-n", sb.ns("ul"), "link", "set", ifname(sb.prefix, host), "up" if up else "down"])


__all__ = ["VIPS", "add_shared_outside", "build_two_edges", "cut_host", "ping_loss", "snat_packets", "tpctl"]
