"""A trace as operators read it: host by host, datapath by datapath, each step with its stage, logical
owner and rule, then where the packet went or why it died. The JSON form is the contract the live trace
(packets marked on real hosts) reports in as well."""

from __future__ import annotations

from ..agent.flow import fmt_ip, fmt_mac
from .names import Names
from .stages import band, owner_label, stage

TYPE_CHECKING = False
if TYPE_CHECKING:  # the live trace renders documents without the engine behind the offline trace
    from typing import Any

    from .fabric import Trace
    from .interp import HopTrace, Step

SCHEMA = 1

_PROTO = {1: "icmp", 6: "tcp", 17: "udp"}
_MAC_FIELDS = ("dl_src", "dl_dst", "arp_sha", "arp_tha")
_IP_FIELDS = ("nw_src", "nw_dst", "arp_spa", "arp_tpa", "tun_src", "tun_dst")


def packet_fields(pkt: dict[str, int]) -> dict[str, str | int]:
    """The packet's non-zero fields, addresses in their usual notation."""
    out: dict[str, str | int] = {}
    for k, v in pkt.items():
        if not v:
            continue
        if k in _MAC_FIELDS:
            out[k] = fmt_mac(v)
        elif k in _IP_FIELDS:
            out[k] = fmt_ip(v)
        elif k == "dl_type":
            out[k] = f"{v:#06x}"
        else:
            out[k] = v
    return out


def describe_packet(pkt: dict[str, int]) -> str:
    """One line: 'icmp 10.10.1.2 > 10.10.2.3 ttl 64 (f2:.. > f2:..)'."""
    macs = f"{fmt_mac(pkt['dl_src'])} > {fmt_mac(pkt['dl_dst'])}"
    if pkt["dl_type"] == 0x0806:
        op = {1: "request", 2: "reply"}.get(pkt["arp_op"], f"op {pkt['arp_op']}")
        return f"arp {op} who-has {fmt_ip(pkt['arp_tpa'])} tell {fmt_ip(pkt['arp_spa'])} ({macs})"
    if pkt["dl_type"] != 0x0800:
        return f"ethertype {pkt['dl_type']:#06x} ({macs})"
    proto = _PROTO.get(pkt["nw_proto"], f"ip proto {pkt['nw_proto']}")
    src, dst = fmt_ip(pkt["nw_src"]), fmt_ip(pkt["nw_dst"])
    if proto == "icmp":
        detail = f" type {pkt['icmp_type']} code {pkt['icmp_code']}"
    elif proto in ("tcp", "udp"):
        src, dst = f"{src}:{pkt[proto + '_src']}", f"{dst}:{pkt[proto + '_dst']}"
        detail = ""
    else:
        detail = ""
    return f"{proto} {src} > {dst}{detail} ttl {pkt['nw_ttl']} ({macs})"


def _step_json(s: Step, names: Names, rules: dict[int, str | None]) -> dict[str, Any]:
    kind, dp = names.datapath(s.dp)
    key = id(s.flow)
    rule = rules.get(key)
    if rule is None and s.flow is not None:
        rule = rules[key] = s.flow.body_text()
    return {
        "table": s.table, "stage": stage(s.table), "priority": s.priority, "band": band(s.table, s.priority),
        "owner": owner_label(s.owner), "rule": rule,
        "datapath": dp, "datapath_type": kind, "from_port": names.port(s.dp, s.src),
        "to_port": names.port(s.dp, s.dst), "depth": s.depth, "events": [],
    }


def hop_json(hop: HopTrace, came_from: str | None, names: Names, in_port_name: str,
             rules: dict[int, str | None] | None = None) -> dict[str, Any]:
    """One chassis's part of the document; `rules` caches flow texts across hops (a flow's text is the same
    on every visit)."""
    rules = {} if rules is None else rules
    steps = [_step_json(s, names, rules) for s in hop.steps]
    for e in hop.events:
        ev = {"kind": e.kind, "text": e.text, **e.data}
        if e.pkt is not None:
            ev["packet"] = describe_packet(e.pkt)
        steps[e.step]["events"].append(ev)
    return {"chassis": hop.chassis, "from_chassis": came_from, "in_port": hop.in_port,
            "in_port_name": in_port_name, "steps": steps}


def to_json(trace: Trace, names: Names, port_label: Any) -> dict[str, Any]:
    """`port_label(chassis, ofport)` names an ingress port."""
    rules: dict[int, str | None] = {}
    return {
        "schema": SCHEMA, "source": trace.source, "packet": packet_fields(trace.packet),
        "summary": describe_packet(trace.packet),
        "hops": [hop_json(h.trace, h.came_from, names, port_label(h.trace.chassis, h.trace.in_port), rules)
                 for h in trace.hops],
        "outcomes": [_outcome_json(o) for o in trace.outcomes], "result": result(trace.outcomes),
    }


def _outcome_json(o: dict[str, Any]) -> dict[str, Any]:
    """Outcomes carry the raw packet as it left; the document shows its fields."""
    if o.get("packet") is None:
        return {k: v for k, v in o.items() if k != "packet"}
    return {**o, "packet": packet_fields(o["packet"])}


def result(outcomes: list[dict[str, Any]]) -> str:
    kinds = {o["result"] for o in outcomes}
    if not kinds or kinds == {"drop"}:
        return "dropped"
    if len(kinds) == 1:
        return kinds.pop()
    return "+".join(sorted(kinds))


def outcome_text(o: dict[str, Any]) -> str:
    r = o["result"]
    if r == "delivered":
        return f"delivered to {o['switch']}/{o['port']} on {o['chassis']}"
    if r == "physical":
        return f"out of patch port {o['switch']}/{o['port']} on {o['chassis']} (physical network)"
    if r == "dsr":
        return f"out of {o['port']} on {o['chassis']} (DSR: the host's own stack)"
    if r == "controller":
        return f"to the agent on {o['chassis']}: {o['reason']}"
    return f"dropped on {o['chassis']}: {o['reason']}"


def to_text(doc: dict[str, Any], brief: bool = False) -> str:
    """Render `to_json`'s document; `brief` hides pass-through steps of constant flows without events."""
    lines = [f"trace from {doc['source']}: {doc['summary']}"]
    for hop in doc["hops"]:
        via = f" (Geneve from {hop['from_chassis']})" if hop["from_chassis"] else ""
        lines.append(f"{hop['chassis']}: in {hop['in_port_name']}{via}")
        segment = None
        for st in hop["steps"]:
            seg = (st["datapath_type"], st["datapath"])
            if seg != segment:
                segment = seg
                lines.append("  " + ("physical" if seg[0] == "-" else f"{seg[0]} {seg[1]}"))
            if brief and st["owner"] == "const" and not st["events"]:
                continue
            prio = "miss" if st["priority"] is None else f"p{st['priority']}"
            ports = f"{st['from_port']}>{st['to_port']}" if seg[0] != "-" else ""
            rule = st["rule"] or "no flow matched"
            lines.append(f"    {st['table']:>3} {st['stage']:<17} {prio:<7} {st['owner']:<34} {ports:<24} {rule}")
            for ev in st["events"]:
                if ev["kind"] != "meter" or not brief:
                    lines.append(f"        {_ARROW.get(ev['kind'], '--')} {ev['text']}")
    for o in doc["outcomes"]:
        lines.append(f"=> {outcome_text(o)}")
    lines.append(f"result: {doc['result']}")
    return "\n".join(lines) + "\n"


_ARROW = {"deliver": "=>", "dsr": "=>", "patch": "=>", "tunnel": "=>", "controller": "=>", "dead_end": "xx", "error": "!!",
          "skip": "xx"}


def document(fabric: Any, trace: Trace) -> dict[str, Any]:
    """The JSON document of a trace computed by `fabric` (a trace.fabric.Fabric)."""
    return to_json(trace, fabric.names, lambda ch, port: fabric.pipeline(ch).port_label(port))
