"""tpctl's part of a live trace (issue 11 §3): ask the agent holding the source port to inject a marked
packet, collect every host's report from etcd and assemble them into the offline trace's document, in the
order the packet took (trace/livewire.py has the records, agent/livetrace.py the agents' side).

A trace is complete when every tunnel crossing a report announces has been reported by the receiving
host; a crossing still unreported when the wait ends becomes a drop naming that host (its agent is down
or the underlay lost the packet). A report nobody announced (the packet went where the sender's flows did
not say) is shown as a hop as well: the hosts' own words win over what was predicted.
"""

from __future__ import annotations

import random
import time

from ..agent.flow import fmt_ip, fmt_mac
from ..agent.stages import table as stage_table
from ..records import dataclass, field
from . import livewire as W
from .packet import TraceError
from .report import SCHEMA, outcome_text, result

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

POLL = 0.02  # seconds between reads of the results while waiting
# After the last hop reported: how long to keep reading for a switch-drop record. A host reports the hop from
# the packet-in on tunnel ingress and the switch's drop from a second packet-in of the same pass, written just
# after; without this, a trace could finish between the two and call a dropped packet delivered.
SETTLE = 0.15
DROP_TABLE = stage_table("drop")


@dataclass
class Pending:
    """One trace in flight."""

    cmd_id: int
    source: str             # LS/port
    chassis: str            # where it is injected
    lease: Any = None
    results: list[W.Result] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)


def frame_of(pkt: dict[str, int]) -> bytes:
    """The Ethernet frame for a packet built by trace.request.build (ICMP echo, TCP, UDP or ARP request)."""
    from ..sandbox import packets as P

    src_mac, dst_mac = fmt_mac(pkt["dl_src"]), fmt_mac(pkt["dl_dst"])
    if pkt["dl_type"] == 0x0806:
        return P.arp_request(src_mac, fmt_ip(pkt["arp_spa"]), fmt_ip(pkt["arp_tpa"]), dst=dst_mac)
    src, dst, ttl = fmt_ip(pkt["nw_src"]), fmt_ip(pkt["nw_dst"]), pkt["nw_ttl"]
    if pkt["nw_proto"] == 1:
        return P.icmp_frame(src_mac, dst_mac, src, dst, ttl=ttl, type=pkt["icmp_type"])
    if pkt["nw_proto"] == 6:
        body = P.tcp(pkt["tcp_src"], pkt["tcp_dst"], src=src, dst=dst)
    else:
        body = P.udp(pkt["udp_src"], pkt["udp_dst"], src=src, dst=dst)
    return P.eth(dst_mac, src_mac, 0x0800, P.ipv4(src, dst, pkt["nw_proto"], body, ttl))


def source_chassis(facts: dict[tuple, Any], ls: str, port: str) -> str:
    lsp = facts[("lsp", ls, port)]
    if lsp.peer and lsp.ip != "255.255.255.255":
        raise TraceError(f"{ls}/{port} is a router port; trace from a VM or patch port")
    if not lsp.chassis:
        raise TraceError(f"{ls}/{port} is not bound to a chassis")
    return lsp.chassis


def free_ids(store: Any, n: int, rng: random.Random | None = None) -> list[int]:
    """`n` command ids with no results in etcd (0.3 counted from the clock; a random start keeps two
    tpctl runs apart, the check keeps a fresh id off a recent trace's leftovers)."""
    rng = rng or random.Random()
    if n == 1:  # one trace: one small read
        probe = [rng.randrange(1, W.MAX_CMD_ID + 1) for _ in range(8)]
        for cid in probe:
            if not store.get_prefix_page(W.result_prefix(cid), limit=1)[0]:
                return [cid]
    used = {kv.key[len(W.RESULT_ROOT):].split("/", 1)[0] for kv in store.get_prefix(W.RESULT_ROOT)[0]}
    out: list[int] = []
    start = rng.randrange(1, W.MAX_CMD_ID + 1)
    for i in range(W.MAX_CMD_ID):
        cid = (start + i - 1) % W.MAX_CMD_ID + 1
        if str(cid) not in used:
            out.append(cid)
            if len(out) == n:
                return out
    raise TraceError("no free live-trace command id (65535 traces in the last 30 s?)")


def start(store: Any, facts: dict[tuple, Any], ls: str, port: str, frame: bytes, cmd_id: int) -> Pending:
    """Write the command for the agent holding LS/port (leased, so it goes away on its own)."""
    chassis = source_chassis(facts, ls, port)
    lease = store.lease_grant(W.CMD_TTL)
    cmd = W.Command(cmd_id, ls, port, frame)
    store.put(W.command_key(chassis, cmd_id), W.encode_command(cmd), lease.id)
    return Pending(cmd_id, f"{ls}/{port}", chassis, lease)


def collect(store: Any, pending: list[Pending], wait: float) -> None:
    """Read the results of every pending trace until each is complete or `wait` seconds have passed."""
    deadline = time.monotonic() + wait
    todo = list(pending)
    done_at: dict[int, float] = {}  # id(p) -> when it was first complete
    while todo:
        every: dict[str, list] | None = None
        if len(todo) > 1:  # --detect: one read of every result beats one read per trace
            every = {}
            for kv in store.get_prefix(W.RESULT_ROOT)[0]:
                every.setdefault(kv.key[len(W.RESULT_ROOT):].split("/", 1)[0], []).append(kv)
        for p in list(todo):
            kvs = every.get(str(p.cmd_id), []) if every is not None else store.get_prefix(W.result_prefix(p.cmd_id))[0]
            p.results, p.bad = [], []
            for kv in kvs:
                try:
                    p.results.append(W.decode_result(kv.key, kv.value))
                except W.WireError as exc:
                    p.bad.append(f"{kv.key}: {exc}")
            if complete(p):
                now = time.monotonic()
                if now - done_at.setdefault(id(p), now) >= SETTLE or any(
                        r.hop is not None and ("switch_drop" in r.hop or "error" in r.hop) for r in p.results):
                    todo.remove(p)
        if not todo or time.monotonic() >= deadline:
            break
        time.sleep(POLL)
    for p in pending:
        if p.lease is not None:
            try:
                p.lease.revoke()  # the command key goes with it
            except Exception:  # noqa: BLE001 - it expires by itself
                pass


def complete(p: Pending) -> bool:
    """Every announced tunnel crossing has its report (an error report ends the trace at once)."""
    if any(r.hop is not None and "error" in r.hop for r in p.results):
        return True
    return _assemble(p)[1] == [] and any(_is_source(r) for r in p.results)


def _is_source(r: W.Result) -> bool:
    return r.hop is not None and r.hop.get("source") is not None


def _assemble(p: Pending) -> tuple[list[W.Result], list[tuple[str, str]]]:
    """(reports in the order the packet took, crossings (from, to) nobody reported)."""
    by_host: dict[str, list[W.Result]] = {}
    for r in sorted(p.results, key=lambda r: (r.chassis, r.seq)):
        if r.hop is not None and "hop" in r.hop:
            by_host.setdefault(r.chassis, []).append(r)
    src = next((r for r in by_host.get(p.chassis, []) if _is_source(r)), None)
    if src is None:
        return [], []
    dropped = {r.chassis for r in p.results if r.hop is not None and "switch_drop" in r.hop}
    used = {id(src)}
    order, missing, i = [src], [], 0
    while i < len(order):
        cur = order[i]
        i += 1
        for to in cur.hop["sends"]:
            nxt = next((r for r in by_host.get(to, []) if id(r) not in used
                        and r.hop["hop"].get("from_chassis") == cur.chassis), None)
            if nxt is None:
                if cur.chassis not in dropped:  # the sender's switch dropped it instead: explained
                    missing.append((cur.chassis, to))
            else:
                used.add(id(nxt))
                order.append(nxt)
    order += [r for rs in by_host.values() for r in rs if id(r) not in used]  # unannounced arrivals
    return order, missing


def document(p: Pending, wait: float) -> dict[str, Any]:
    """The trace document (trace.report's schema) of a collected trace; TraceError if there is none."""
    for r in p.results:
        if r.hop is not None and "error" in r.hop:
            raise TraceError(f"{r.chassis}: {r.hop['error']}")
    order, missing = _assemble(p)
    if not order:
        raise TraceError(f"no report from chassis {p.chassis} within {wait:g} s (is its agent running?)")
    src = order[0].hop
    outcomes = [o for r in order for o in r.hop["outcomes"]]
    outcomes += [{"result": "drop", "chassis": to,
                  "reason": f"tunnelled from {frm}, but {to} reported nothing within {wait:g} s "
                            "(its agent is down, or the underlay lost the packet)"} for frm, to in missing]
    # hosts whose walk reached the drop stage (or died otherwise): a switch drop there was expected
    walked = {o["chassis"] for o in outcomes if o["result"] == "drop"} | {
        r.chassis for r in order if any(st["table"] == DROP_TABLE for st in r.hop["hop"]["steps"])}
    drops = [(r.chassis, r.hop["switch_drop"]) for r in p.results if r.hop is not None and "switch_drop" in r.hop]
    for chassis, d in drops:
        if chassis not in walked:  # the walk of the installed flows did not expect it: the switch knows better
            said = "; ".join(outcome_text(o) for o in outcomes if o.get("chassis") == chassis) or "sent on"
            outcomes = [o for o in outcomes if o.get("chassis") != chassis]
            where = f"{d['datapath_type']} {d['datapath']}, {d['from_port']}>{d['to_port']}"
            outcomes.append({"result": "drop", "chassis": chassis, "reason": (
                f"the switch dropped it in the drop stage ({where}) where the walk of its flows said: {said} "
                "(a tunnel chosen by bundle_load is down (BFD), or a flow was changed by hand)")})
            walked.add(chassis)
    return {"schema": SCHEMA, "source": src.get("source") or p.source, "packet": src.get("packet") or {},
            "summary": src.get("summary") or "", "hops": [r.hop["hop"] for r in order], "outcomes": outcomes,
            "result": result(outcomes), "live": {"cmd_id": p.cmd_id, "reports": len(order),
                                                  "switch_drops": [{"chassis": c, **d} for c, d in drops],
                                                  "bad_records": p.bad}}


def trace(store: Any, facts: dict[tuple, Any], req: Any, wait: float) -> dict[str, Any]:
    """One live trace of a checked request: inject, wait for the reports, assemble."""
    from .request import find_port

    ls, port = find_port(facts, req.src_port)
    frame = _frame(facts, req)
    p = start(store, facts, ls, port, frame, free_ids(store, 1)[0])
    collect(store, [p], wait)
    return document(p, wait)


def _frame(facts: dict[tuple, Any], req: Any) -> bytes:
    from .packet import parse_hex
    from .request import build

    if req.frame is not None:
        return parse_hex(req.frame)
    return frame_of(build(facts, req)[2])
