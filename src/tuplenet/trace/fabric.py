"""Several chassis at once: each chassis's flows computed by the agent's own engine from the logical
model plus that chassis's local facts, and a packet followed through tunnels from one to the next.

`--simulate` has no OVS to ask, so local facts are synthesized the way the agents would find them: every
port whose lsp names a chassis is bound there (ofports numbered in name order), and every chassis has a
tunnel port to every other chassis plus the flow-based tunnel port.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from ..agent.engine import Engine
from ..agent.flow import ip_int
from ..agent.view import PATCH_IP, View
from ..records import NamedTuple
from .compiled import compile_groups, compile_tables, owner_index
from .interp import ChassisPipeline, Event, HopTrace, Port
from .names import Names
from .packet import TraceError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_HOPS = 64  # chassis crossings per packet: more is a forwarding loop
LOCAL_KINDS = ("self", "bind", "patchport", "tun", "tunfb", "live", "untunnel")


class Model:
    """The logical topology as the agents' views hold it: facts by key, with etcd create revisions."""

    def __init__(self, facts: dict[tuple, Any], created: dict[tuple, int] | None = None) -> None:
        self.facts = {k: v for k, v in facts.items() if k[0] not in LOCAL_KINDS}
        self.created = created or {}

    @classmethod
    def from_changes(cls, changes: Iterable[tuple[tuple, Any, Any]]) -> Model:
        """From an etcd listing (agent.etcdsync changes: key, entity, KV)."""
        facts: dict[tuple, Any] = {}
        created: dict[tuple, int] = {}
        for key, obj, kv in changes:
            if obj is None or key[0] in LOCAL_KINDS:
                continue
            facts[key] = obj
            if kv is not None:
                created[key] = kv.create_revision
        return cls(facts, created)

    def chassis_ips(self) -> dict[int, str]:
        """tunnel IP -> chassis; chassis sharing an IP resolve to the newest tick (the agents' rule)."""
        best: dict[int, tuple[int, str]] = {}
        for key in (k for k in self.facts if k[0] == "chassis"):
            ch = self.facts[key]
            ip = ip_int(ch.ip)
            if ip not in best or (ch.tick, key[1]) > best[ip]:
                best[ip] = (ch.tick, key[1])
        return {ip: name for ip, (_, name) in best.items()}


def synth_local(model: Model, chassis: str) -> dict[tuple, Any]:
    """Local OVS facts of `chassis` as its agent would see them if every recorded port were plugged."""
    facts: dict[tuple, Any] = {("self",): chassis}
    ofport = 1
    for key in sorted(k for k in model.facts if k[0] == "lsp"):
        lsp = model.facts[key]
        if lsp.chassis != chassis or (lsp.peer and lsp.ip != PATCH_IP):
            continue
        local = ("patchport" if lsp.ip == PATCH_IP else "bind", key[2])  # the agent's patch port, or a VM's
        if local not in facts:
            facts[local] = ofport
            ofport += 1
    facts[("tunfb",)] = ofport
    own = model.facts.get(("chassis", chassis))
    for ip, name in sorted(model.chassis_ips().items(), key=lambda x: x[1]):
        if name != chassis and (own is None or ip != ip_int(own.ip)):
            ofport += 1
            facts[("tun", name)] = ofport
    return facts


def build_engine(model: Model, local: dict[tuple, Any]) -> Engine:
    view = View()
    changed: set = set()
    for key, obj in model.facts.items():
        view.apply(key, obj, changed, model.created.get(key, 0))
    for key, obj in local.items():
        view.apply(key, obj, changed)
    engine = Engine(view)
    engine.full()
    return engine


def ports_of(view: View, chassis: str) -> dict[int, Port]:
    """ofport -> what it is, from the view's local facts."""
    ports: dict[int, Port] = {}
    for key, ofport in view.facts.items():
        kind = key[0]
        if kind in ("bind", "patchport"):
            patch = kind == "patchport"
            lsps = [k for k in sorted(view.members(("I", "lsp_name", key[1])))
                    if (view.facts[k].ip == PATCH_IP) == patch and (patch or not view.facts[k].peer)]
            mine = [k for k in lsps if view.facts[k].chassis == chassis] or lsps
            ports[ofport] = Port("patch" if patch else "vif", key[1], mine[0][1] if mine else "?")
        elif kind == "tun":
            ports[ofport] = Port("tunnel", key[1])
        elif kind == "tunfb":
            ports[ofport] = Port("tunfb", "")
        elif kind == "untunnel":  # (MAC, ofport) of br-int-dsrgw (pipeline/untunnel.py)
            ports[ofport[1]] = Port("dsr", "br-int-dsrgw")
    return ports


def pipeline_from_engine(chassis: str, engine: Engine, names: Names, chassis_by_ip: dict[int, str]) -> ChassisPipeline:
    tables = compile_tables(engine.active.values(), owner_index(engine.owner_flows))
    outputs = getattr(engine, "desired_outputs", None)
    groups = compile_groups(outputs("group").values()) if outputs is not None else {}
    return ChassisPipeline(chassis, tables, ports_of(engine.view, chassis), names, chassis_by_ip, groups)


class Hop(NamedTuple):
    trace: HopTrace
    came_from: str | None  # the chassis that tunnelled it here (None: the source chassis)


class Trace(NamedTuple):
    source: str                # LS/port where the packet entered
    packet: dict[str, int]
    hops: list[Hop]
    outcomes: list[dict[str, Any]]


class Fabric:
    """Pipelines of the chassis a trace reaches, computed on first use (or given, e.g. from real hosts)."""

    def __init__(self, model: Model, local: dict[str, dict[tuple, Any]] | None = None,
                 engines: dict[str, Engine] | None = None) -> None:
        self.model = model
        self.names = Names(model.facts)
        self.chassis_by_ip = model.chassis_ips()
        self._local = local or {}
        self._engines = engines or {}
        self._pipelines: dict[str, ChassisPipeline] = {}

    def pipeline(self, chassis: str) -> ChassisPipeline:
        cp = self._pipelines.get(chassis)
        if cp is None:
            engine = self._engines.get(chassis)
            if engine is None:
                local = self._local.get(chassis) or synth_local(self.model, chassis)
                engine = build_engine(self.model, local)
            cp = self._pipelines[chassis] = pipeline_from_engine(chassis, engine, self.names, self.chassis_by_ip)
        return cp

    def source(self, ls: str, port: str) -> tuple[str, int]:
        """(chassis, ofport) where a packet from logical port LS/port enters."""
        lsp = self.model.facts.get(("lsp", ls, port))
        if lsp is None:
            raise TraceError(f"logical port {ls}/{port} does not exist")
        if lsp.peer and lsp.ip != PATCH_IP:
            raise TraceError(f"{ls}/{port} is a router port; trace from a VM or patch port")
        if not lsp.chassis:
            raise TraceError(f"{ls}/{port} is not bound to a chassis")
        cp = self.pipeline(lsp.chassis)
        for ofport, p in sorted(cp.ports.items()):
            if p.kind in ("vif", "patch") and p.name == port and p.switch == ls:
                return lsp.chassis, ofport
        raise TraceError(f"{ls}/{port} has no interface on chassis {lsp.chassis}")

    def trace(self, ls: str, port: str, pkt: dict[str, int]) -> Trace:
        chassis, ofport = self.source(ls, port)
        return self.trace_from(f"{ls}/{port}", chassis, ofport, pkt)

    def trace_from(self, source: str, chassis: str, ofport: int, pkt: dict[str, int]) -> Trace:
        hops: list[Hop] = []
        outcomes: list[dict[str, Any]] = []
        todo: deque[tuple[str, int, dict[str, int], str | None]] = deque([(chassis, ofport, pkt, None)])
        while todo:
            ch, port, p, came_from = todo.popleft()
            if len(hops) >= MAX_HOPS:
                outcomes.append({"result": "drop", "chassis": ch,
                                 "reason": f"more than {MAX_HOPS} tunnel hops: a forwarding loop"})
                break
            hop = self.pipeline(ch).walk(p, port)
            hops.append(Hop(hop, came_from))
            outcomes += hop_outcomes(hop)
            for send in hop.sends:
                if send.chassis is None:
                    continue
                nxt = self._arrival(ch, send.chassis, send.pkt)
                if nxt is None:
                    outcomes.append({"result": "drop", "chassis": send.chassis,
                                     "reason": f"{send.chassis} has no tunnel port that accepts Geneve from {ch}"})
                else:
                    todo.append((send.chassis, nxt[0], nxt[1], ch))
        return Trace(source, dict(pkt), hops, outcomes)

    def _arrival(self, src: str, dst: str, sent: dict[str, int]) -> tuple[int, dict[str, int]] | None:
        """The ofport and packet with which Geneve from `src` enters `dst`: its own tunnel port for `src`
        if it has one, else the flow-based port; registers and metadata start at zero, the tunnel key
        and option carry what EMBED put there."""
        cp = self.pipeline(dst)
        src_rec = self.model.facts.get(("chassis", src))
        dst_rec = self.model.facts.get(("chassis", dst))
        own = [o for o, p in cp.ports.items() if p.kind == "tunnel" and p.name == src]
        fb = [o for o, p in cp.ports.items() if p.kind == "tunfb"]
        if not own and not fb:
            return None
        pkt = {k: 0 if k.startswith("reg") else v for k, v in sent.items()}
        pkt.update(metadata=0, ct_state=0, ct_zone=0, tun_id=sent["tun_id"] & 0xFFFFFF,
                   tun_src=ip_int(src_rec.ip) if src_rec else 0, tun_dst=ip_int(dst_rec.ip) if dst_rec else 0)
        return (own or fb)[0], pkt


_LEAVES = ("deliver", "patch", "controller", "tunnel", "dsr")


def hop_outcomes(hop: HopTrace) -> list[dict[str, Any]]:
    """Where the packet went from this chassis; a drop (with the last dead end as reason) if nowhere."""
    errors = [e for e in hop.events if e.kind == "error"]
    if errors:
        return [{"result": "drop", "chassis": hop.chassis, "reason": f"OVS drops the packet: {errors[0].text}"}]
    out: list[dict[str, Any]] = []
    for e in hop.events:
        if e.kind == "deliver":
            out.append({"result": "delivered", "chassis": hop.chassis, "switch": e.data["switch"],
                        "port": e.data["port"], "ofport": e.data["ofport"], "packet": e.pkt})
        elif e.kind == "patch":
            out.append({"result": "physical", "chassis": hop.chassis, "switch": e.data["switch"],
                        "port": e.data["port"], "ofport": e.data["ofport"], "packet": e.pkt})
        elif e.kind == "dsr":
            out.append({"result": "dsr", "chassis": hop.chassis, "port": e.data["port"], "ofport": e.data["ofport"],
                        "packet": e.pkt})
        elif e.kind == "controller":
            out.append({"result": "controller", "chassis": hop.chassis, "opcode": e.data["opcode"],
                        "reason": e.data["meaning"], "packet": e.pkt})
        elif e.kind == "tunnel" and e.data["to_chassis"] is None:
            out.append({"result": "drop", "chassis": hop.chassis, "reason": e.text})
    if not out and not any(e.kind == "tunnel" for e in hop.events):
        out.append({"result": "drop", "chassis": hop.chassis, "reason": last_dead_end(hop.events)})
    return out


def last_dead_end(events: list[Event]) -> str:
    for e in reversed(events):
        if e.kind in ("dead_end", "skip"):
            return e.text
    return "no output"
