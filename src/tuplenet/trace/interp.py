"""Walk one chassis's flows with a packet, as ovs-vswitchd translates it: highest-priority match per
table, actions in order, `resubmit` recursing with the packet as modified so far and returning to the
rest of the action list, output to the input port skipped, translation depth capped like OVS's.

Every table visit is a `Step` (table, flow, owner, datapath and ports at that moment); outputs, packet-ins
and dead ends are `Event`s pointing at the step whose actions caused them. Output to a tunnel port ends the
walk on this chassis with a `Send` the fabric follows into the next chassis.
"""

from __future__ import annotations

from ..agent import tables as T
from ..agent.flow import OFPP_IN_PORT, Flow, fmt_ip
from ..agent.stages import table as stage_table
from ..records import NamedTuple
from . import compiled as C
from .names import Names
from .stages import DeadEndContext, dead_end, opcode_meaning

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# OVS's translation limits: nested resubmits to the same or an earlier table (a resubmit to a later table
# does not deepen), and resubmits in all. Over either, OVS drops the whole packet.
MAX_DEPTH = 64
MAX_RESUBMITS = 4096


class Step(NamedTuple):
    depth: int
    table: int
    priority: int | None  # None: no flow matched
    flow: Flow | None
    owner: tuple | None
    dp: int   # metadata (datapath id) when the table was entered
    src: int  # reg0: source port id
    dst: int  # reg1: destination port id


class Event(NamedTuple):
    kind: str  # deliver | patch | tunnel | controller | meter | skip | dead_end | note | error
    step: int  # index of the step whose actions caused it
    text: str
    data: dict[str, Any]
    pkt: dict[str, int] | None = None  # the packet as it left (outputs and packet-ins)


class Send(NamedTuple):
    """A copy of the packet leaving through a tunnel towards `chassis` (None: no chassis has that IP)."""

    chassis: str | None
    via_ofport: int
    pkt: dict[str, int]


class Port(NamedTuple):
    kind: str         # vif | patch | tunnel | tunfb | dsr (br-int-dsrgw, ENABLE_UNTUNNEL)
    name: str         # iface-id / chassis name
    switch: str = ""  # logical switch of a vif or patch port


class HopTrace(NamedTuple):
    chassis: str
    in_port: int
    entry: dict[str, int]  # the packet as it entered this chassis
    steps: list[Step]
    events: list[Event]
    sends: list[Send]


class ChassisPipeline:
    """The compiled flows of one chassis plus what its ofports are."""

    def __init__(self, chassis: str, tables: C.Tables, ports: dict[int, Port], names: Names,
                 chassis_by_ip: dict[int, str], groups: dict[int, C.CGroup] | None = None) -> None:
        self.chassis, self.tables, self.ports, self.names = chassis, tables, ports, names
        self.chassis_by_ip = chassis_by_ip
        self.groups = groups or {}

    def walk(self, pkt: dict[str, int], in_port: int) -> HopTrace:
        """Translate `pkt` entering on `in_port` (the dict is copied, never modified)."""
        w = _Walk(self, dict(pkt, in_port=in_port))
        entry = dict(w.pkt)
        try:
            w.table(T.CLASSIFY, 0, 0, None)
        except _Stop:
            w.sends.clear()  # OVS drops the whole packet when translation fails
        return HopTrace(self.chassis, in_port, entry, w.steps, w.events, w.sends)

    def port_label(self, ofport: int) -> str:
        p = self.ports.get(ofport)
        if p is None:
            return f"ofport {ofport}"
        if p.kind in ("vif", "patch"):
            return f"{p.switch}/{p.name}"
        if p.kind == "tunnel":
            return f"tunnel port of {p.name}"
        return "flow-based tunnel port"


class _Stop(Exception):
    """The whole translation fails (OVS's depth/resubmit limits): the packet is dropped."""


_new = tuple.__new__  # a Step without NamedTuple.__new__'s Python-level call: the walk's hottest line
_SET, _RESUBMIT, _MOVE, _OUTPUT_REG = C.SET, C.RESUBMIT, C.MOVE, C.OUTPUT_REG
_TRACE_POINT = stage_table("trace_point")


class _Walk:
    __slots__ = ("cp", "pkt", "steps", "events", "sends", "resubmits", "tables", "probes")

    def __init__(self, cp: ChassisPipeline, pkt: dict[str, int]) -> None:
        self.cp, self.pkt, self.tables = cp, pkt, cp.tables
        self.probes = cp.tables.probes  # table id -> (catch-all winner or None, table): one dict probe a step
        self.steps: list[Step] = []
        self.events: list[Event] = []
        self.sends: list[Send] = []
        self.resubmits = 0

    def table(self, tid: int, depth: int, deep: int, parent: int | None) -> None:
        """Look `tid` up and run the winner's actions. Inline, and a final resubmit loops instead of
        recursing: a walk of 50 tables costs a handful of Python calls."""
        pkt = self.pkt
        steps = self.steps
        probes = self.probes
        while True:
            probe = probes.get(tid)
            only, t = probe if probe is not None else self.tables.compile(tid)
            e = only if only is not None else None if t is None else t.lookup(pkt)
            idx = len(steps)
            if e is None:
                steps.append(_new(Step, (depth, tid, None, None, None, pkt["metadata"], pkt["reg0"], pkt["reg1"])))
                self._dead_end(idx, tid, None, parent, False)
                return
            steps.append(_new(Step, (depth, tid, e[0], e[1], e[3], pkt["metadata"], pkt["reg0"], pkt["reg1"])))
            tail = e[4]
            if not e[2] and tail is None:
                self._dead_end(idx, tid, e[0], parent, True)
                return
            if e[2] and not self.run(e[2], idx, tid, depth, deep):
                return
            if tail is None:
                return
            self._check_limits(idx, deep)
            self.resubmits += 1
            deep += tail <= tid
            parent, tid, depth = tid, tail, depth + 1

    def _check_limits(self, idx: int, deep: int) -> None:
        if deep >= MAX_DEPTH:
            self._fail(idx, f"over max translation depth {MAX_DEPTH}")
        if self.resubmits >= MAX_RESUBMITS:
            self._fail(idx, f"over {MAX_RESUBMITS} resubmit actions")

    def run(self, actions: tuple, idx: int, tid: int, depth: int, deep: int) -> bool:
        """Run a flow's actions (but a final resubmit); False when the table's processing stops early."""
        pkt = self.pkt
        for a in actions:
            code = a[0]
            if code == _SET:
                f = a[1]
                pkt[f] = (pkt[f] & a[2]) | a[3]
            elif code == _RESUBMIT:
                self._check_limits(idx, deep)
                self.resubmits += 1
                self.table(a[1], depth + 1, deep + (a[1] <= tid), tid)
            elif code == _MOVE:
                m = a[5]
                v = (pkt[a[1]] >> a[2]) & m
                dst, ofs = a[3], a[4]
                pkt[dst] = (pkt[dst] & ~(m << ofs)) | (v << ofs)
            elif code == _OUTPUT_REG:
                self.output((pkt[a[1]] >> a[2]) & a[3], idx, False)
            elif code == C.OUTPUT:
                port = pkt["in_port"] if a[1] == OFPP_IN_PORT else a[1]
                self.output(port, idx, a[1] == OFPP_IN_PORT)
            elif code == C.DEC_TTL:
                if pkt["nw_ttl"] <= 1:
                    self._event("dead_end", idx, f"dec_ttl: TTL {pkt['nw_ttl']} expired, processing of this "
                                "table stops", ttl=pkt["nw_ttl"])
                    return False
                pkt["nw_ttl"] -= 1
            elif code == C.CONTROLLER:
                op, meaning = opcode_meaning(a[1])
                self.events.append(Event("controller", idx, f"to the agent: {meaning}",
                                         {"opcode": op, "meaning": meaning, "pause": a[2]}, dict(pkt)))
            elif code == C.METER:
                self._event("meter", idx, f"meter {a[1]:#x} (rate-limited; assumed within its rate)", meter=a[1])
            else:
                self._special(a, idx, depth, deep)
        return True

    def _special(self, a: tuple, idx: int, depth: int, deep: int) -> None:
        code, act = a[0], a[1]
        tid = self.steps[idx].table
        if code == C.BUNDLE:
            member = act.members[0] if act.members else 0xFFFF
            self._load(act.dst, act.ofs, act.nbits, member)
            self._event("note", idx, f"bundle_load: assumed member {member} (the hash is not simulated)",
                        member=member)
        elif code == C.MULTIPATH:
            self._load(act.dst, act.ofs, act.nbits, 0)
            self._event("note", idx, f"multipath: assumed link 0 of {act.n_links} (the hash is not simulated)")
        elif code == C.CT:
            nat = act.nat
            state = 0x21  # +new+trk
            if nat is not None and nat.kind in ("src", "dst") and nat.ip is not None:
                self.pkt["nw_src" if nat.kind == "src" else "nw_dst"] = nat.ip  # a new connection's NAT
                l4 = {6: "tcp", 17: "udp"}.get(self.pkt.get("nw_proto", 0))
                if getattr(nat, "port", None) and l4:  # load balancers: nat(dst=backend:port)
                    self.pkt[f"{l4}_{nat.kind}"] = nat.port
                state |= 0x40 if nat.kind == "src" else 0x80  # +snat / +dnat
                text = f"conntrack: a new connection, {nat.text()} applied"
            elif nat is not None:
                text = "conntrack: a new connection, nothing to un-NAT (replies are not simulated)"
            else:
                text = "conntrack is not simulated: ct() treated as a new connection"
            self._event("note", idx, text, action=act.text())
            for load in getattr(act, "exec", ()) if act.commit else ():  # ct_mark set by the commit
                nbits = load.nbits if getattr(load, "nbits", None) is not None else 32 - getattr(load, "ofs", 0)
                self._load(load.field, getattr(load, "ofs", 0), nbits, load.value)
            if act.table is not None:
                self.pkt["ct_state"] = state
                self.table(act.table, depth + 1, deep, None)
        elif code == C.CLONE:
            self._on_copy(act, idx, tid, depth, deep)
        elif code == C.GROUP:
            self._group(act, idx, tid, depth, deep)
        elif code == C.SAMPLE:
            self._event("note", idx, f"sampled for IPFIX ({act.text()})")
        else:
            self._event("note", idx, f"action not simulated: {act.text()}", action=act.text())

    def _load(self, field: str, ofs: int, nbits: int, value: int) -> None:
        mask = ((1 << nbits) - 1) << ofs
        self.pkt[field] = (self.pkt[field] & ~mask) | ((value << ofs) & mask)

    def _on_copy(self, actions: tuple, idx: int, tid: int, depth: int, deep: int) -> None:
        """Run actions on a copy of the packet (clone, group buckets): the original goes on unchanged."""
        saved = self.pkt
        self.pkt = dict(saved)
        try:
            self.run(actions, idx, tid, depth, deep)
        finally:
            self.pkt = saved

    def _group(self, gid: int, idx: int, tid: int, depth: int, deep: int) -> None:
        g = self.cp.groups.get(gid)
        if g is None:
            self._event("dead_end", idx, f"group {gid:#x} does not exist", group=gid)
            return
        buckets = g.buckets
        if g.type == "all":
            chosen = list(range(len(buckets)))
            how = "every bucket"
        elif g.type == "fast_failover":
            live = [i for i, (_, watch) in enumerate(buckets) if watch is None or watch in self.cp.ports]
            chosen, how = live[:1], "the first live bucket (ports assumed up)"
        elif g.type == "select":
            chosen, how = [0] if buckets else [], "bucket 0 assumed (OVS picks by hash)"
        else:
            chosen, how = [0] if buckets else [], "its bucket"
        self._event("note", idx, f"group {gid:#x} ({g.type}, {len(buckets)} buckets): {how}", group=gid,
                    buckets=chosen)
        if not chosen:
            self._event("dead_end", idx, f"group {gid:#x} has no live bucket", group=gid)
        for i in chosen:
            self._on_copy(buckets[i][0], idx, tid, depth, deep)

    def output(self, port: int, idx: int, explicit_in_port: bool) -> None:
        pkt, cp = self.pkt, self.cp
        if port == pkt["in_port"] and not explicit_in_port:
            self._event("skip", idx, f"output to the input port {port} is skipped by OVS", ofport=port)
            return
        p = cp.ports.get(port)
        if p is None:
            self._event("dead_end", idx, f"output to ofport {port}, which does not exist", ofport=port)
            return
        if p.kind == "vif":
            self.events.append(Event("deliver", idx, f"output to {p.switch}/{p.name} on {cp.chassis}",
                                     {"ofport": port, "switch": p.switch, "port": p.name}, dict(pkt)))
        elif p.kind == "dsr":  # ENABLE_UNTUNNEL: handed to the host's own stack (pipeline/untunnel.py)
            self.events.append(Event("dsr", idx, f"output to {p.name} (DSR: the host's own stack) on {cp.chassis}",
                                     {"ofport": port, "port": p.name}, dict(pkt)))
        elif p.kind == "patch":
            self.events.append(Event("patch", idx, f"output to patch port {p.switch}/{p.name} (physical "
                                     f"bridge) on {cp.chassis}", {"ofport": port, "switch": p.switch,
                                                                  "port": p.name}, dict(pkt)))
        else:
            dst = p.name if p.kind == "tunnel" else cp.chassis_by_ip.get(pkt["tun_dst"])
            where = dst or f"unknown underlay address {fmt_ip(pkt['tun_dst'])}"
            self._event("tunnel", idx, f"tunnel to {where} (vni {pkt['tun_id'] & 0xFFFFFF:#x})", ofport=port,
                        to_chassis=dst, vni=pkt["tun_id"] & 0xFFFFFF)
            self.sends.append(Send(dst, port, dict(pkt)))

    def _dead_end(self, idx: int, tid: int, priority: int | None, parent: int | None, empty: bool) -> None:
        if tid == _TRACE_POINT and empty:
            return  # an unmarked packet's live-trace clone ends here by design (agent/pipeline/tracepoints.py)
        ctx = DeadEndContext(self.pkt, self.cp.names, self.pkt["in_port"], self.cp.port_label)
        self._event("dead_end", idx, dead_end(tid, priority, parent, empty, ctx), table=tid)

    def _event(self, kind: str, idx: int, text: str, **data: Any) -> None:
        self.events.append(Event(kind, idx, text, data))

    def _fail(self, idx: int, text: str) -> None:
        self._event("error", idx, text)
        raise _Stop(text)
