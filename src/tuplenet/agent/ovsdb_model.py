"""Pure side of the OVSDB connection: snapshots of the switch and the agent's desired OVS state; the planner
that turns (what is there, what we want) into a minimal list of edits is ovsdb_plan.py.

Kept free of I/O so the reconciliation rules (0.3 §3.3/§3.4: tunnel naming, ownership, ofport preservation,
patch pairs) are unit-tested without a switch; `ovsdb_idl` converts IDL rows to these views and edits back.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

from tuplenet.agent.ovsdb_ipfix import IpfixSpec, IpfixView
from tuplenet.agent.ovsdb_mirror import MirrorView

TUNNEL_PREFIX = "tupleNet-"
FLOWBASED_PORT = "tupleNet-flowbased"
ROLE_KEY = "tuplenet-role"
ROLE_FLOWBASED = "flowbased"
ROLE_PATCH = "patch"
ROLE_DSRGW = "dsrgw"
DSRGW_PORT = "br-int-dsrgw"  # ENABLE_UNTUNNEL: internal port to the host's own stack (0.3 name)
CHASSIS_KEY = "chassis-id"
IFACE_ID_KEY = "iface-id"
INSTALLED_KEY = "tuplenet-installed"  # readiness mark: every flow of the port is installed (OVN: ovn-installed)
OF_PROTOCOLS = ("OpenFlow10", "OpenFlow13", "OpenFlow14", "OpenFlow15")

# Reconciliation domains: every request belongs to one, and is reported done when its domain converges.
D_BRIDGE = "bridge"
D_EXTIDS = "external_ids"
D_TUNNELS = "tunnels"
D_PATCH = "patch"
D_BFD = "bfd"
D_MARKS = "marks"
D_DSRGW = "dsrgw"


class OvsdbError(Exception):
    """OVSDB unreachable, a transaction failed for good, or a blocking request timed out."""


@dataclass(frozen=True)
class OvsState:
    """What the agent needs to know about the local switch; a fresh, never-mutated copy per change.

    bindings: iface-id -> ofport of br-int Interfaces with an ofport >= 1 (VM ports; not our patch ports).
    patch_ofports: iface-id -> ofport of the br-int side of the patch ports the agent made (kept apart so a
    VM interface can never stand for a patch lsp, nor a patch port for a VM lsp).
    tunnels: chassis-id -> ofport (>= 1) of br-int tunnel ports; tunnel_ips: chassis-id -> remote_ip of every
    tunnel port in the database (bound or not). connected is False while ovsdb-server is unreachable (the
    rest is then the last known state). ofports/macs: br-int Interface name -> ofport (>= 1) / mac_in_use.
    plugged: iface-ids of br-int VM Interfaces whether or not ovs-vswitchd has given them an ofport yet (the
    binding claim need not wait for the ofport: its etcd round trip overlaps the port's creation).
    """

    system_id: str | None = None
    bridge_exists: bool = False
    bindings: Mapping[str, int] = field(default_factory=dict)
    tunnels: Mapping[str, int] = field(default_factory=dict)
    tunnel_ips: Mapping[str, str] = field(default_factory=dict)
    flowbased_ofport: int | None = None
    bridges: frozenset[str] = frozenset()
    seqno: int = 0
    connected: bool = True
    bridge_external_ids: Mapping[str, str] = field(default_factory=dict)
    tunnel_bfd: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    ofports: Mapping[str, int] = field(default_factory=dict)
    macs: Mapping[str, str] = field(default_factory=dict)
    patch_ofports: Mapping[str, int] = field(default_factory=dict)
    plugged: frozenset[str] = frozenset()

    def same_as(self, other: OvsState | None) -> bool:
        """Equal apart from seqno: decides whether subscribers hear about a change."""
        return other is not None and _key(self) == _key(other)


def _key(s: OvsState) -> tuple:
    return (s.system_id, s.bridge_exists, s.bindings, s.tunnels, s.tunnel_ips, s.flowbased_ofport, s.bridges,
            s.connected, s.bridge_external_ids, s.tunnel_bfd, s.ofports, s.macs, s.patch_ofports, s.plugged)


# ---- views of the database (built from IDL rows by ovsdb_idl) ----

@dataclass(frozen=True)
class IfaceView:
    name: str
    type: str = ""
    options: Mapping[str, str] = field(default_factory=dict)
    external_ids: Mapping[str, str] = field(default_factory=dict)
    ofport: int = -1  # -1: not (yet) assigned by ovs-vswitchd, or failed
    bfd: Mapping[str, str] = field(default_factory=dict)
    bfd_status: Mapping[str, str] = field(default_factory=dict)
    mac: str | None = None


@dataclass(frozen=True)
class PortView:
    name: str
    ifaces: tuple[IfaceView, ...] = ()


@dataclass(frozen=True)
class BridgeView:
    name: str
    datapath_type: str = ""
    fail_mode: str | None = None
    protocols: frozenset[str] = frozenset()
    other_config: Mapping[str, str] = field(default_factory=dict)
    external_ids: Mapping[str, str] = field(default_factory=dict)
    ports: tuple[PortView, ...] = ()
    mirrors: tuple[MirrorView, ...] = ()  # our and others' Mirror rows (agent/ovsdb_mirror.py)
    ipfix: IpfixView | None = None  # the row Bridge.ipfix points at


@dataclass(frozen=True)
class DbView:
    has_root: bool = True  # the Open_vSwitch row exists (ovs-vsctl init has run)
    system_id: str | None = None
    bridges: Mapping[str, BridgeView] = field(default_factory=dict)


def state_from_view(view: DbView, bridge: str, connected: bool, seqno: int) -> OvsState:
    br = view.bridges.get(bridge)
    bindings: dict[str, int] = {}
    tunnels: dict[str, int] = {}
    tunnel_ips: dict[str, str] = {}
    tunnel_bfd: dict[str, Mapping[str, str]] = {}
    ofports: dict[str, int] = {}
    macs: dict[str, str] = {}
    patches: dict[str, int] = {}
    flowbased: int | None = None
    plugged: set[str] = set()
    for port in br.ports if br else ():
        for iface in port.ifaces:
            bound = iface.ofport >= 1
            if bound:
                ofports[iface.name] = iface.ofport
            if iface.mac:
                macs[iface.name] = iface.mac
            ext = iface.external_ids
            chassis = ext.get(CHASSIS_KEY)
            if chassis:
                # Two ports for one chassis only exist transiently; the lowest ofport wins deterministically.
                tunnel_ips.setdefault(chassis, iface.options.get("remote_ip", ""))
                if bound and (chassis not in tunnels or iface.ofport < tunnels[chassis]):
                    tunnels[chassis] = iface.ofport
                    tunnel_ips[chassis] = iface.options.get("remote_ip", "")
                    tunnel_bfd[chassis] = dict(iface.bfd_status)
            elif ext.get(ROLE_KEY) == ROLE_FLOWBASED or iface.name == FLOWBASED_PORT:
                if bound:
                    flowbased = iface.ofport
            iface_id = ext.get(IFACE_ID_KEY)
            into = patches if ext.get(ROLE_KEY) == ROLE_PATCH else bindings
            if iface_id and into is bindings:
                plugged.add(iface_id)
            if iface_id and bound and (iface_id not in into or iface.ofport < into[iface_id]):
                into[iface_id] = iface.ofport
    return OvsState(system_id=view.system_id, bridge_exists=br is not None, bindings=bindings, tunnels=tunnels,
                    tunnel_ips=tunnel_ips, flowbased_ofport=flowbased, bridges=frozenset(view.bridges),
                    seqno=seqno, connected=connected,
                    bridge_external_ids=dict(br.external_ids) if br else {}, tunnel_bfd=tunnel_bfd,
                    ofports=ofports, macs=macs, patch_ofports=patches, plugged=frozenset(plugged))


# ---- what the agent wants ----

@functools.lru_cache(maxsize=65536)
def tunnel_port_name(ip: str) -> str:
    """0.3 naming: tupleNet-<IPv4 as decimal uint32>, so names survive agent restarts and versions."""
    return TUNNEL_PREFIX + str(int(ipaddress.IPv4Address(ip)))


def validate_tunnels(desired: Mapping[str, str]) -> dict[str, str]:
    """Reject what OVSDB would reject later (bad IP, two chassis on one IP -> same port name) with a clear
    message in the caller's thread instead of a failed transaction in the IDL thread."""
    out: dict[str, str] = {}
    by_name: dict[str, str] = {}
    for chassis, ip in desired.items():
        if not isinstance(chassis, str) or not chassis:
            raise ValueError(f"bad chassis id {chassis!r}")
        try:
            name = tunnel_port_name(ip)
        except ValueError:
            raise ValueError(f"chassis {chassis}: bad tunnel IPv4 address {ip!r}") from None
        if name in by_name:
            raise ValueError(f"chassis {by_name[name]} and {chassis} share tunnel IP {ip}; keep only one")
        by_name[name] = chassis
        out[chassis] = str(ipaddress.IPv4Address(ip))
    return out


@dataclass
class Desired:
    """The agent's wishes; `None` for tunnels/patch_ports means "not managed yet: touch nothing"."""

    bridge: str = "br-int"
    ensure_bridge: bool = False
    datapath_type: str | None = None
    bridge_external_ids: dict[str, str | None] = field(default_factory=dict)
    tunnels: dict[str, str] | None = None
    patch_ports: dict[str, str] | None = None
    bfd: dict[str, bool] = field(default_factory=dict)
    bfd_timers: dict[str, tuple[int, int]] = field(default_factory=dict)  # chassis -> (min_tx, min_rx) ms
    installed: dict[str, int] | None = None  # iface-id -> ofport of the ports to mark ready
    mirrors: dict[str, tuple] | None = None  # mirror name -> wish (agent/ovsdb_mirror.py)
    ipfix: IpfixSpec | None = None  # bridge IPFIX wanted (None: none of ours) ...
    ipfix_managed: bool = False  # ... once the agent has said so: until then its rows are left alone
    dsrgw: bool | None = None  # br-int-dsrgw wanted (True) or ours removed (False); None: not managed


def patch_port_problem(lsp: str, peer: str, bridge: str) -> str | None:
    """Why a patch lsp must not become an OVS patch pair on this host (None: fine). Records written straight
    to etcd can name anything; the agent ignores these instead of failing or touching others' ports."""
    if not lsp or not peer:
        return "empty port or peer bridge name"
    if peer == bridge:
        return f"its peer bridge is the integration bridge {bridge}"
    if lsp in (bridge, peer):
        return "it is named like a bridge"
    if lsp.startswith(TUNNEL_PREFIX):
        return f"names starting with {TUNNEL_PREFIX} are the agent's tunnel ports"
    if any(c.isspace() or not c.isprintable() for c in lsp + peer) or "/" in lsp + peer:
        return "the name is not a valid OVS port name"
    return None
