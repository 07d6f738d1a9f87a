"""The sandbox's "outside": a namespace standing in for the internet behind an edge host's physical bridge.

    edge host hv<i>:  OVS bridge br-ext (netdev, standalone: a learning switch), port <p>-out
    <p>-out ns:       eth0 172.16.0.1/24 (the physical next hop of the edge routers), MTU 1400 like the
                      VMs (frames to VMs are tunnelled over a 1500-byte underlay), tx offload off; the
                      "internet" address 203.0.113.10/32 on lo, where `serve_http` listens

An edge's outside switch gets a patch port to br-ext (`tpctl patchport add LS-out phy hv<i> br-ext`), so
its router reaches the outside through br-ext. The namespace is recorded like a VM (host = the edge), so
`exec`/`spawn` work on it by name and `down` or the host's teardown remove it.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

from . import netns_hosts as nh
from .netns_util import SandboxError, ifname, run

if TYPE_CHECKING:
    from .netns import NetnsSandbox

NAME = "outside"
BRIDGE = "br-ext"
GATEWAY_IP = "172.16.0.1/24"  # the outside's own address on the edges' network: their next hop
INTERNET_IP = "203.0.113.10"  # a "public" server behind it (TEST-NET-3)
MTU = 1400


def edge_steps(edge_host: str, central: str = "LR-central", virt: str = "10.10.0.0/16",
               snat_ip: str | None = "172.16.0.100") -> list[tuple[str, ...]]:
    """tpctl commands building an edge in front of router `central`: transit switch LS-M, LR-edge pinned
    to `edge_host` with VIP 172.16.0.2 on LS-out, LS-out patched to br-ext, default routes towards the
    outside (172.16.0.1), the way back to `virt`, and optionally SNAT of `virt` to `snat_ip`."""
    steps: list[tuple[str, ...]] = [
        ("ls", "add", "LS-M"), ("ls", "add", "LS-out"), ("lr", "add", "LR-edge", edge_host),
        ("lr", "link", central, "LS-M", "100.64.88.254/24"),
        ("lr", "link", "LR-edge", "LS-M", "100.64.88.100/24"),
        ("lr", "link", "LR-edge", "LS-out", "172.16.0.2/24"),
        ("patchport", "add", "LS-out", "LS-out-phy", edge_host, BRIDGE),
        ("lsr", "add", central, "out", "0.0.0.0/0", "100.64.88.100", f"{central}_to_LS-M"),
        ("lsr", "add", "LR-edge", "out", "0.0.0.0/0", GATEWAY_IP.split("/")[0], "LR-edge_to_LS-out"),
        ("lsr", "add", "LR-edge", "virt", virt, "100.64.88.254", "LR-edge_to_LS-M"),
    ]
    if snat_ip:
        steps.append(("lnat", "add", "LR-edge", "vms", virt, "snat", snat_ip))
    return steps


def add_outside(sb: NetnsSandbox, host: str, ip: str = GATEWAY_IP, internet_ip: str = INTERNET_IP,
                routes: tuple[str, ...] = ()) -> dict[str, Any]:
    """Create the outside namespace behind `host`'s bridge br-ext (idempotent). `routes`: extra
    `prefix via addr` routes inside (e.g. a virtual network reached through an edge without NAT)."""
    from .netns import default_mac

    try:
        iface = ipaddress.IPv4Interface(ip)
        ipaddress.IPv4Address(internet_ip)
    except ValueError as exc:
        raise SandboxError(f"bad outside address: {exc}") from exc
    with sb._locked():
        old = sb.state["vms"].get(NAME)
        if old is not None:
            if old["host"] == host and old["ip"] == str(iface):
                return old
            raise SandboxError(f"the outside exists behind {old['host']} ({old['ip']})")
        if host not in sb.state["hosts"] or not sb.state["hosts"][host].get("ready"):
            raise SandboxError(f"unknown or unfinished host {host!r}")
        ns, port, hns = f"{sb.prefix}-out", ifname(sb.prefix, "out"), sb.state["hosts"][host]["netns"]
        nh._claim(sb, ns)
        vm = {"host": host, "ip": str(iface), "mac": default_mac(str(iface)), "gateway": None, "iface_id": "",
              "netns": ns, "port": port, "outside": True, "bridge": BRIDGE, "internet_ip": internet_ip,
              "ready": True}
        sb.state["vms"][NAME] = vm
        try:
            nh._new_netns(sb, ns, nh.QUIET_SYSCTLS)
            run(["ip", "-n", hns, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns])
            batch = [f"link set eth0 address {vm['mac']} mtu {MTU}", f"addr add {vm['ip']} dev eth0",
                     "link set eth0 up", f"addr add {internet_ip}/32 dev lo"]
            batch += [f"route add {r}" for r in routes]
            nh._ip_batch(ns, batch)
            run(["ip", "netns", "exec", ns, "ethtool", "-K", "eth0", "tx", "off"])
            run(["ip", "-n", hns, "link", "set", port, "up"])
            sb.ovs(host, "--may-exist", "add-br", BRIDGE, "--", "set", "Bridge", BRIDGE, "datapath_type=netdev",
                   "--", "--may-exist", "add-port", BRIDGE, port)
            sb._save()
        except Exception:
            nh.del_vm(sb, NAME)
            raise
    sb.log(f"outside    netns {ns}: {vm['ip']} + {internet_ip} behind {host}:{BRIDGE}")
    return vm


UNDERLAY_LEG_IP = "172.31.0.200/24"  # the outside's leg on the hosts' physical network (DSR's next hop)


def add_underlay_leg(sb: NetnsSandbox, ip: str = UNDERLAY_LEG_IP) -> str:
    """Give the outside a second interface `ul0` on the underlay bridge, so hosts reach it through their own
    stack (ENABLE_UNTUNNEL: `ip route add default via 172.31.0.200` on a host). Its replies still go back
    through the edge (its route to the VMs), so reverse-path filtering is off inside (idempotent)."""
    with sb._locked():
        vm = sb.state["vms"].get(NAME)
        if vm is None:
            raise SandboxError("no outside yet: add_outside first")
        if vm.get("underlay_ip"):
            return vm["underlay_ip"]
        ns, ul, port = vm["netns"], sb.ns("ul"), ifname(sb.prefix, "outul")
        run(["ip", "-n", ul, "link", "add", port, "type", "veth", "peer", "name", "ul0", "netns", ns])
        run(["ip", "-n", ul, "link", "set", port, "master", ul, "up"])
        nh._ip_batch(ns, [f"addr add {ip} dev ul0", "link set ul0 up"])
        run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0",
             "net.ipv4.conf.ul0.rp_filter=0", "net.ipv4.conf.eth0.rp_filter=0"])
        run(["ip", "netns", "exec", ns, "ethtool", "-K", "ul0", "tx", "off"])
        vm["underlay_ip"] = ip.split("/")[0]
        sb._save()
    sb.log(f"outside    leg ul0 {ip} on the underlay")
    return vm["underlay_ip"]


def serve_http(sb: NetnsSandbox, target: str = NAME, bind: str = INTERNET_IP, port: int = 80,
               directory: str | None = None) -> subprocess.Popen[bytes]:
    """A plain HTTP server (python -m http.server) inside `target`; its log (one line per request, with
    the client's address) goes to <workdir>/<target>-http.log."""
    directory = directory or os.path.join(sb.workdir, f"{target}-www")
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "index.html"), "w") as f:
        f.write(f"hello from {target}\n")
    log = os.path.join(sb.workdir, f"{target}-http.log")
    return sb.spawn(target, [sys.executable, "-u", "-m", "http.server", str(port), "--bind", bind,
                             "--directory", directory], logfile=log)


def http_get(sb: NetnsSandbox, target: str, url: str, timeout: float = 5.0) -> str:
    """The body of `url` fetched from inside `target` (raises SandboxError on failure)."""
    code = ("import sys, urllib.request\n"
            f"sys.stdout.write(urllib.request.urlopen({url!r}, timeout={timeout}).read().decode())\n")
    r = sb.exec(target, [sys.executable, "-c", code], check=False, timeout=timeout + 10)
    if r.returncode != 0:
        raise SandboxError(f"GET {url} from {target} failed: {r.stderr.strip().splitlines()[-1:] or r.returncode}")
    return r.stdout


__all__ = ["BRIDGE", "GATEWAY_IP", "INTERNET_IP", "UNDERLAY_LEG_IP", "add_outside", "add_underlay_leg", "edge_steps",
           "http_get", "serve_http"]
