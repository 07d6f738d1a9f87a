"""Pure side of the OVSDB connection: snapshots of the switch, the agent's desired OVS state, and the planner
that turns (what is there, what we want) into a minimal list of edits.

Kept free of I/O so the reconciliation rules (0.3 §3.3/§3.4: tunnel naming, ownership, ofport preservation,
patch pairs) are unit-tested without a switch; `ovsdb_idl` converts IDL rows to these views and edits back.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

from tuplenet.agent.ovsdb_ipfix import D_IPFIX, IpfixAction, IpfixSpec, IpfixView, plan_ipfix
from tuplenet.agent.ovsdb_mirror import D_MIRROR, ROLE_MIRROR, MirrorView, collector_specs, plan_mirrors

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


@dataclass(frozen=True)
class PortSpec:
    """A single-interface port we own. external_ids and bfd list only our keys (others' keys are kept)."""

    name: str
    bridge: str
    type: str
    options: Mapping[str, str]
    external_ids: Mapping[str, str]
    bfd: Mapping[str, str] = field(default_factory=dict)
    domain: str = D_TUNNELS


# ---- edits ----

@dataclass(frozen=True)
class CreateBridge:
    name: str
    datapath_type: str | None
    external_ids: Mapping[str, str]
    domain: str = D_BRIDGE


@dataclass(frozen=True)
class FixBridge:
    name: str
    fail_mode: str | None = None
    protocols: tuple[str, ...] | None = None
    other_config: Mapping[str, str] = field(default_factory=dict)
    external_ids: Mapping[str, str | None] = field(default_factory=dict)  # None value: delete the key
    domain: str = D_BRIDGE


@dataclass(frozen=True)
class AddPort:
    spec: PortSpec

    @property
    def domain(self) -> str:
        return self.spec.domain


@dataclass(frozen=True)
class DelPort:
    bridge: str
    name: str
    domain: str


@dataclass(frozen=True)
class FixIface:
    name: str
    domain: str
    type: str | None = None
    options: Mapping[str, str] | None = None
    external_ids: Mapping[str, str | None] = field(default_factory=dict)  # None value: delete the key
    bfd: Mapping[str, str] = field(default_factory=dict)


Action = CreateBridge | FixBridge | AddPort | DelPort | FixIface | IpfixAction


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    blocked: set[str] = field(default_factory=set)  # cannot progress yet (e.g. br-int missing)
    errors: dict[str, str] = field(default_factory=dict)  # will not progress: fail the domain's requests
    foreign: dict[str, str] = field(default_factory=dict)  # wanted name taken by a port we did not create

    def converged(self, domain: str) -> bool:
        return (domain not in self.blocked and domain not in self.errors
                and all(a.domain != domain for a in self.actions))


def _bfd_spec(desired: Desired, chassis: str) -> dict[str, str]:
    if chassis not in desired.bfd:
        return {}  # 0.3: a tunnel never referenced by BFD keeps bfd={}
    if not desired.bfd[chassis]:
        return {"enable": "false"}
    timers = desired.bfd_timers.get(chassis)
    return {"enable": "true", **({"min_tx": str(timers[0]), "min_rx": str(timers[1])} if timers else {})}


def desired_ports(view: DbView, desired: Desired) -> tuple[list[PortSpec], set[str]]:
    """The ports we want, and names of owned ports to keep although not wanted (0.3: a patch port's br-int
    side stays when its peer bridge disappears)."""
    br = desired.bridge
    specs: list[PortSpec] = []
    keep: set[str] = set()
    if desired.tunnels is not None or desired.ensure_bridge:
        specs.append(PortSpec(FLOWBASED_PORT, br, "geneve", {"remote_ip": "flow", "key": "flow", "csum": "true"},
                              {ROLE_KEY: ROLE_FLOWBASED}))
    for chassis, ip in sorted((desired.tunnels or {}).items()):
        specs.append(PortSpec(tunnel_port_name(ip), br, "geneve", {"remote_ip": ip, "key": "flow", "csum": "true"},
                              {CHASSIS_KEY: chassis}, _bfd_spec(desired, chassis)))
    for lsp, peer_br in sorted((desired.patch_ports or {}).items()):
        if peer_br in view.bridges and peer_br != br:
            peer = f"{lsp}-peer"
            specs.append(PortSpec(lsp, br, "patch", {"peer": peer}, {IFACE_ID_KEY: lsp, ROLE_KEY: ROLE_PATCH},
                                  domain=D_PATCH))
            specs.append(PortSpec(peer, peer_br, "patch", {"peer": lsp}, {IFACE_ID_KEY: peer, ROLE_KEY: ROLE_PATCH},
                                  domain=D_PATCH))
        else:
            keep.add(lsp)
    if desired.dsrgw:
        specs.append(PortSpec(DSRGW_PORT, br, "internal", {}, {ROLE_KEY: ROLE_DSRGW}, domain=D_DSRGW))
    for name, typ, opts in collector_specs(desired.mirrors, frozenset((desired.tunnels or {}).values())):
        specs.append(PortSpec(name, br, typ, opts, {ROLE_KEY: ROLE_MIRROR}, domain=D_MIRROR))
    return specs, keep


def _fix_bridge(br: BridgeView) -> FixBridge | None:
    fail_mode = "secure" if br.fail_mode != "secure" else None
    protocols = None if set(OF_PROTOCOLS) <= br.protocols else tuple(sorted(br.protocols | set(OF_PROTOCOLS)))
    other = {} if br.other_config.get("disable-in-band") == "true" else {"disable-in-band": "true"}
    if fail_mode is None and protocols is None and not other:
        return None
    return FixBridge(br.name, fail_mode=fail_mode, protocols=protocols, other_config=other)


def _compare(spec: PortSpec, bridge: str, port: PortView) -> list[Action]:
    """Edits that make an existing port with spec.name match spec; in place when possible (keeps ofport)."""
    if bridge != spec.bridge or len(port.ifaces) != 1 or port.ifaces[0].name != spec.name:
        return [DelPort(bridge, port.name, spec.domain), AddPort(spec)]
    iface = port.ifaces[0]
    out: list[Action] = []
    ext = {k: v for k, v in spec.external_ids.items() if iface.external_ids.get(k) != v}
    typ = spec.type if iface.type != spec.type else None
    opts = dict(spec.options) if iface.options != spec.options else None
    if typ is not None or opts is not None or ext:
        out.append(FixIface(spec.name, spec.domain, type=typ, options=opts, external_ids=ext))
    bfd = {k: v for k, v in spec.bfd.items() if iface.bfd.get(k) != v}
    if bfd:
        out.append(FixIface(spec.name, D_BFD, bfd=bfd))
    return out


def plan(view: DbView, desired: Desired) -> Plan:
    """Minimal edits from `view` towards `desired`. Never touches ports it does not own."""
    return Planner().plan(view, desired)


class Planner:
    """`plan` with memory, because it runs after every database change: the wanted ports are recomputed only
    when the wish (its generation) or the set of bridges changes, and a port found correct is not compared
    again while its spec and IfaceView are the very same objects (the IDL side reuses an IfaceView until
    its row changes). Keeps a small change cheap with thousands of tunnels."""

    def __init__(self) -> None:
        self._specs_key: tuple[int, frozenset[str]] | None = None
        self._specs: tuple[list[PortSpec], set[str]] = ([], set())
        self._ok: dict[str, tuple[PortSpec, IfaceView]] = {}
        self.mirror_problems: dict[str, str] = {}  # mirror name -> why it is not applied (last plan)

    def _wanted(self, view: DbView, desired: Desired, generation: int | None) -> tuple[list[PortSpec], set[str]]:
        key = None if generation is None else (generation, frozenset(view.bridges))
        if key is None or key != self._specs_key:
            self._specs = desired_ports(view, desired)
            self._specs_key = key
            names = {spec.name for spec in self._specs[0]}
            self._ok = {k: v for k, v in self._ok.items() if k in names}
        return self._specs

    def plan(self, view: DbView, desired: Desired, generation: int | None = None) -> Plan:
        """`generation` must change whenever `desired` does (None: no caching of the wanted ports)."""
        p = Plan()
        name = desired.bridge
        br = view.bridges.get(name)
        if br is None:
            p.blocked |= {D_EXTIDS, D_TUNNELS, D_PATCH, D_BFD, D_MARKS, D_MIRROR, D_IPFIX, D_DSRGW}
            if desired.ensure_bridge:
                if not view.has_root:
                    p.errors[D_BRIDGE] = "the Open_vSwitch table is empty (has `ovs-vsctl init` run?)"
                else:
                    dp = desired.datapath_type
                    if dp is None:  # userspace hosts: follow the datapath of the bridges already there
                        dp = next((b.datapath_type for _, b in sorted(view.bridges.items()) if b.datapath_type),
                                  None)
                    ext = {k: v for k, v in desired.bridge_external_ids.items() if v is not None}
                    p.actions.append(CreateBridge(name, dp, ext))
            else:
                p.blocked.add(D_BRIDGE)
            return p
        if desired.ensure_bridge and (fix := _fix_bridge(br)):
            p.actions.append(fix)
        ext_fix = {k: v for k, v in desired.bridge_external_ids.items() if br.external_ids.get(k) != v}
        if ext_fix:
            p.actions.append(FixBridge(name, external_ids=ext_fix, domain=D_EXTIDS))
        if desired.ipfix_managed:
            edits, why = plan_ipfix(name, br.ipfix, desired.ipfix)
            p.actions += edits
            if why:
                p.errors[D_IPFIX] = why

        existing: dict[str, tuple[str, PortView]] = {}
        for b in view.bridges.values():
            for port in b.ports:
                existing[port.name] = (b.name, port)
        specs, keep = self._wanted(view, desired, generation)
        for spec in specs:
            have = existing.get(spec.name)
            if have is not None and not _owned(have[1], spec):
                p.foreign[spec.name] = f"port {spec.name} on {have[0]} was not created by tuplenet"
        wanted: set[str] = set()
        for spec in specs:
            if spec.name in p.foreign or (spec.domain == D_PATCH and spec.options.get("peer") in p.foreign):
                continue  # never retype or move someone else's port; the pair waits until the name is free
            if spec.name in wanted:
                p.errors[spec.domain] = f"port name {spec.name} wanted twice"
                continue
            wanted.add(spec.name)
            have = existing.get(spec.name)
            if have is None:
                p.actions.append(AddPort(spec))
                if spec.bfd:
                    p.blocked.add(D_BFD)  # BFD settles with the port itself
                continue
            bridge, port = have
            ok = self._ok.get(spec.name)
            if ok is not None and ok[0] is spec and bridge == spec.bridge and len(port.ifaces) == 1 \
                    and port.ifaces[0] is ok[1]:
                continue
            edits = _compare(spec, bridge, port)
            if not edits:
                self._ok[spec.name] = (spec, port.ifaces[0])
            p.actions.extend(edits)
            if spec.bfd and any(isinstance(a, AddPort) for a in edits):
                p.blocked.add(D_BFD)
        for b in view.bridges.values():
            for port in b.ports:
                if port.name in wanted or port.name in keep:
                    continue
                domain = _owner(port, b.name == name, desired)
                if domain is not None:
                    p.actions.append(DelPort(b.name, port.name, domain))
        if desired.installed is not None:
            p.actions += _marks(br, desired.installed)
        self._plan_mirrors(p, br, specs, desired)
        return p

    def _plan_mirrors(self, p: Plan, br: BridgeView, specs: list[PortSpec], desired: Desired) -> None:
        """Our Mirror rows on br-int (agent/ovsdb_mirror.py); waits while a collector port is being added."""
        self.mirror_problems = {}
        if desired.mirrors is None or not (desired.mirrors or br.mirrors):
            return  # not managed, or nothing wanted and no rows: no scan of (thousands of) ports per plan
        vm_ports: dict[str, tuple[str, int]] = {}
        for port in br.ports:
            for iface in port.ifaces:
                iface_id = iface.external_ids.get(IFACE_ID_KEY)
                if iface_id and iface.ofport >= 1 and iface.external_ids.get(ROLE_KEY) is None:
                    vm_ports.setdefault(iface_id, (port.name, iface.ofport))
        reserved = {s.name for s in specs if s.domain != D_MIRROR}
        actions, waiting = plan_mirrors(br.name, {port.name for port in br.ports}, vm_ports, br.mirrors,
                                        desired.mirrors, reserved, set(p.foreign), self.mirror_problems,
                                        frozenset((desired.tunnels or {}).values()))
        p.actions += actions
        if waiting:
            p.blocked.add(D_MIRROR)


def _marks(br: BridgeView, installed: Mapping[str, int]) -> list[Action]:
    """Set the readiness mark on the interfaces of ready ports (matching ofport), remove it elsewhere."""
    out: list[Action] = []
    for port in br.ports:
        for iface in port.ifaces:
            ext = iface.external_ids
            iface_id = ext.get(IFACE_ID_KEY)
            want = iface_id is not None and iface.ofport >= 1 and installed.get(iface_id) == iface.ofport
            has = ext.get(INSTALLED_KEY)
            if want and has != "true":
                out.append(FixIface(iface.name, D_MARKS, external_ids={INSTALLED_KEY: "true"}))
            elif not want and has is not None:
                out.append(FixIface(iface.name, D_MARKS, external_ids={INSTALLED_KEY: None}))
    return out


def _owned(port: PortView, spec: PortSpec) -> bool:
    """May the agent edit this existing port to match `spec`? Only if it carries our marks (a 0.3 patch port
    already pointing at the wanted peer counts as ours); tunnel names are our reserved namespace."""
    if spec.domain == D_MIRROR:
        return any(i.external_ids.get(ROLE_KEY) == ROLE_MIRROR for i in port.ifaces)
    if spec.domain != D_PATCH:
        return True
    for iface in port.ifaces:
        if iface.external_ids.get(ROLE_KEY) == ROLE_PATCH:
            return True
        if iface.type == "patch" and iface.options.get("peer") == spec.options.get("peer"):
            return True
    return False


def _owner(port: PortView, on_bridge: bool, desired: Desired) -> str | None:
    """The managed domain that owns `port`, if any: only such ports are ever deleted."""
    for iface in port.ifaces:
        ext = iface.external_ids
        if desired.tunnels is not None and on_bridge and (
                ext.get(CHASSIS_KEY) or ext.get(ROLE_KEY) == ROLE_FLOWBASED):
            return D_TUNNELS
        if desired.patch_ports is not None and ext.get(ROLE_KEY) == ROLE_PATCH:
            return D_PATCH
        if desired.mirrors is not None and on_bridge and ext.get(ROLE_KEY) == ROLE_MIRROR:
            return D_MIRROR
        if desired.dsrgw is False and on_bridge and ext.get(ROLE_KEY) == ROLE_DSRGW:
            return D_DSRGW
    return None
