"""Simulated edges for the ECMP/BFD tests and the failover benchmark.

On a SimNetwork: a compute host with vm1 behind the distributed router LR-central, and edge hosts each with
a road built by `tpctl edge` (control/edges.py): outside switch with a patch port to `br-ext`, pinned edge
router, transit switch, routes. The physical gateway of every outside switch is played by a port `gw<i>`
on the edge host (the gateway's IP as a switch port, so its MAC is known without ARP): a frame vm1 sends to
the internet shows up on the gw port of the edge that carried it. Edges run with GATEWAY=1 (BFD on every
tunnel); the compute host runs BFD towards the edges because of the ECMP routes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from ..agent.ovsdb_model import tunnel_port_name
from ..control import Controller
from ..control.edges import EdgeSpec, Road
from ..model import LSP, derive_mac
from ..store import Store
from . import packets as P
from .procs import wait_for
from .sim import SimNetwork

VM_IP, VM_MAC = "10.10.1.2", "f2:01:0a:0a:01:02"
ROUTER_MAC = derive_mac("10.10.1.1")
EXT_GW = "172.16.0.254"
VIRT = "10.10.0.0/16"


class EdgeLab:
    def __init__(self, net: SimNetwork, endpoint: str, prefix: str, compute: str = "hv1",
                 edges: Sequence[str] = ("hv2", "hv3")) -> None:
        self.net, self.endpoint, self.prefix = net, endpoint, prefix
        self.compute, self.edges = compute, list(edges)
        self.store = Store(endpoint, prefix=prefix)
        self.ctl = Controller(self.store)
        self.roads: dict[str, Road] = {}  # edge host -> its road
        self.gw_port: dict[str, str] = {}  # edge host -> the port standing for its physical gateway

    def close(self) -> None:
        self.store.close()

    # ---- topology ------------------------------------------------------------------------------------------
    def build(self) -> None:
        c = self.ctl
        c.add_router("LR-central")
        c.add_switch("LS-A")
        c.link("LR-central", "LS-A", "10.10.1.1/24")
        c.store.put(LSP("LS-A", "vm1", VM_IP, VM_MAC, None, self.compute).key,
                    LSP("LS-A", "vm1", VM_IP, VM_MAC, None, self.compute).to_value())
        for h in self.net.hosts.values():  # edge commands need the chassis registered (agents do it later too)
            c.store.put(f"entity_view/chassis/{h.name}", f"ip={h.ip},tick=1")
        self.net[self.compute].add_vm_port("vm1", "vm1")
        for i, edge in enumerate(self.edges):
            self.add_edge(edge, first=i == 0)

    def add_edge(self, edge: str, first: bool = False) -> Road:
        """`tpctl edge init/add` for `edge` plus its gateway stand-in port."""
        host = self.net[edge]
        host.vsctl("--may-exist", "add-br", "br-ext")
        vip = f"172.16.0.{11 + self.edges.index(edge)}/24"
        spec = EdgeSpec(edge, "br-ext", vip, VIRT, EXT_GW) if first else EdgeSpec(edge, "br-ext", vip)
        road = self.ctl.edges.init(spec) if first else self.ctl.edges.add(spec)
        self.roads[edge] = road
        gw = f"gw{self.edges.index(edge) + 1}"
        lsp = LSP(road.outside, gw, EXT_GW, derive_mac(EXT_GW), None, edge)
        self.store.put(lsp.key, lsp.to_value())
        host.add_vm_port(gw, gw)
        self.gw_port[edge] = gw
        return road

    # ---- agents --------------------------------------------------------------------------------------------
    def start(self, env: Mapping[str, str] | None = None, timeout: float = 30.0) -> None:
        for name in [self.compute, *self.edges]:
            extra = {**(env or {}), **({"GATEWAY": "1"} if name in self.edges else {})}
            self.net[name].start_agent(self.endpoint, self.prefix, extra_env=extra)

    def bfd(self, host: str, peer: str) -> dict[str, str]:
        """bfd_status of `host`'s tunnel to `peer`, as OVSDB shows it."""
        name = tunnel_port_name(self.net[peer].ip)
        out = self.net[host].vsctl("--if-exists", "get", "Interface", name, "bfd_status")
        pairs = out.strip().strip("{}")
        return dict(p.split("=", 1) for p in pairs.replace('"', "").split(", ") if "=" in p)

    def wait_bfd(self, peers: Sequence[str] | None = None, up: bool = True, timeout: float = 20.0) -> float:
        """Wait until the compute host's BFD to every peer is (not) forwarding; returns the wait in seconds."""
        t0 = time.monotonic()
        want = "true" if up else "false"
        for p in peers or self.edges:
            wait_for(lambda p=p: self.bfd(self.compute, p).get("forwarding") == want, timeout=timeout,
                     interval=0.02, what=f"BFD {self.compute}->{p} forwarding={want}")
        return time.monotonic() - t0

    def bfd_rx_ms(self, host: str, peer: str) -> int | None:
        """The receive interval BFD on `host` currently uses for `peer` (`bfd/show`): a session that has just
        come up runs at 1 s (RFC 5880's slow start) until the poll sequence agrees on the configured rate."""
        out = self.net[host].appctl("bfd/show", tunnel_port_name(self.net[peer].ip))
        for line in out.splitlines():
            if line.strip().startswith("RX Interval:"):
                return int("".join(c for c in line.split(":", 1)[1] if c.isdigit()) or 0)
        return None

    def wait_bfd_rate(self, peer: str, ms: int, timeout: float = 20.0) -> None:
        wait_for(lambda: self.bfd_rx_ms(self.compute, peer) == ms, timeout=timeout, interval=0.05,
                 what=f"BFD {self.compute}->{peer} at {ms} ms")

    def set_forwarding(self, peer: str, mode: str) -> None:
        """`ovs-appctl bfd/set-forwarding` on the compute host's tunnel to `peer` (true|false|normal)."""
        self.net[self.compute].appctl("bfd/set-forwarding", tunnel_port_name(self.net[peer].ip), mode)

    # ---- traffic -------------------------------------------------------------------------------------------
    @staticmethod
    def dest(flow: int) -> str:
        return f"198.18.{(flow >> 8) & 0xFF}.{flow & 0xFF}"

    def frame(self, flow: int, seq: int = 1) -> bytes:
        """vm1 -> the internet (198.18.x.y by flow number), through its router."""
        return P.icmp_frame(VM_MAC, ROUTER_MAC, VM_IP, self.dest(flow), seq=seq)

    def marks(self) -> dict[str, int]:
        return {e: self.net[e].tx_mark(self.gw_port[e]) for e in self.edges}

    def arrivals(self, since: dict[str, int]) -> list[tuple[str, P.Frame]]:
        """(edge, frame) for every frame that reached a gateway port after `since`."""
        out = []
        for e, mark in since.items():
            out += [(e, P.parse(f)) for f in self.net[e]._follower(self.gw_port[e]).since(mark)]
        return out

    def send(self, flow: int, seq: int = 1) -> None:
        self.net[self.compute].inject("vm1", self.frame(flow, seq))

    def locate(self, flow: int, timeout: float = 2.0, seq: int = 1) -> str | None:
        """Send one frame of `flow`; the edge that carried it (None: dropped within `timeout`)."""
        since = self.marks()
        self.send(flow, seq)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for edge, f in self.arrivals(since):
                if f.ip_dst == self.dest(flow):
                    return edge
            time.sleep(0.01)
        return None

    def wait_ecmp(self, flows: int = 16, timeout: float = 30.0) -> dict[int, str]:
        """Wait until every flow is delivered by some edge; returns flow -> edge."""
        where: dict[int, str] = {}

        def all_placed() -> bool:
            for k in range(flows):
                if k not in where:
                    e = self.locate(k, timeout=0.3)
                    if e is None:
                        return False
                    where[k] = e
            return True
        wait_for(all_placed, timeout=timeout, interval=0.1, what=f"{flows} flows through the edges")
        return where
