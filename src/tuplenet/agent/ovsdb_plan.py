"""The OVSDB planner: (what the switch has, what the agent wants) -> the minimal list of edits.

Pure, like ovsdb_model (the snapshots and wishes it reads), so the reconciliation rules (0.3 §3.3/§3.4: tunnel
naming, ownership, ofport preservation, patch pairs, marks) are unit-tested without a switch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tuplenet.agent.ovsdb_ipfix import D_IPFIX, IpfixAction, plan_ipfix
from tuplenet.agent.ovsdb_mirror import D_MIRROR, ROLE_MIRROR, collector_specs, plan_mirrors
from tuplenet.agent.ovsdb_model import (
    CHASSIS_KEY,
    D_BFD,
    D_BRIDGE,
    D_DSRGW,
    D_EXTIDS,
    D_MARKS,
    D_PATCH,
    D_TUNNELS,
    DSRGW_PORT,
    FLOWBASED_PORT,
    IFACE_ID_KEY,
    INSTALLED_KEY,
    OF_PROTOCOLS,
    ROLE_DSRGW,
    ROLE_FLOWBASED,
    ROLE_KEY,
    ROLE_PATCH,
    BridgeView,
    DbView,
    Desired,
    IfaceView,
    PortView,
    tunnel_port_name,
)
from tuplenet.agent.ovsdb_plan_memo import Deletion, Mark, PortMemo, owner, port_marks


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
    """`plan` with memory, because it runs after every database change and every readiness update, on the
    latency path of a port coming up: the wanted ports are recomputed only when the wish (its generation) or
    the set of bridges changes, and a port found correct is not compared again while its spec and IfaceView
    are the very same objects (the IDL side reuses an IfaceView until its row changes). The ports of the
    bridges (names, the ones we may delete, wrong readiness marks) are followed by `PortMemo`, which redoes
    only the ports that are new objects and those whose `installed` entry changed, instead of walking 1,000
    ports three times per plan. Keeps a small change cheap with thousands of tunnels or VM ports; the same
    actions, in the same order, as the full walk (generation None), which stays the fallback."""

    def __init__(self) -> None:
        self._specs_key: tuple[int, frozenset[str]] | None = None
        self._specs: tuple[list[PortSpec], set[str]] = ([], set())
        self._ok: dict[str, tuple[PortSpec, IfaceView]] = {}
        self._memo = PortMemo()
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
        """`generation` must change whenever the wanted ports of `desired` may (it need not for `installed`,
        which is diffed); None: no caching at all."""
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

        memo = self._memo if generation is not None and self._memo.update(view, desired) else None
        if memo is None:
            self._memo.reset()
            existing = _existing(view)
        else:
            existing = memo.existing
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
        dels = _deletions(view, desired, wanted, keep) if memo is None else memo.deletions(wanted, keep)
        p.actions += [DelPort(b, port_name, domain) for b, port_name, domain in dels]
        if desired.installed is not None:
            marks = _marks(br, desired.installed) if memo is None else memo.marks()
            p.actions += [FixIface(iface, D_MARKS, external_ids={INSTALLED_KEY: "true" if on else None})
                          for iface, _, _, on in marks]
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


def _existing(view: DbView) -> dict[str, tuple[str, PortView]]:
    """Port name -> (bridge name, port), all bridges (the full walk; `PortMemo.existing` keeps it up to date)."""
    existing: dict[str, tuple[str, PortView]] = {}
    for b in view.bridges.values():
        for port in b.ports:
            existing[port.name] = (b.name, port)
    return existing


def _deletions(view: DbView, desired: Desired, wanted: set[str], keep: set[str]) -> list[Deletion]:
    """Owned ports neither wanted nor kept, sorted (the full walk; `PortMemo.deletions` without it)."""
    out: list[Deletion] = []
    for b in view.bridges.values():
        on_bridge = b.name == desired.bridge
        for port in b.ports:
            if port.name in wanted or port.name in keep:
                continue
            domain = owner(port, on_bridge, desired)
            if domain is not None:
                out.append((b.name, port.name, domain))
    out.sort()
    return out


def _marks(br: BridgeView, installed: Mapping[str, int]) -> list[Mark]:
    """Wrong readiness marks of the bridge, sorted (the full walk; `PortMemo.marks` without it)."""
    out: list[Mark] = []
    for port in br.ports:
        out += port_marks(port, installed)
    out.sort()
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
