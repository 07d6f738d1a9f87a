"""`tpctl trace --detect`: 0.3's pkt-trace --auto_detect (reference §4.2). Live-trace random pairs of ports
that should reach each other and report only the pairs whose packet did not arrive.

The packet is an ICMP echo *reply*, so routers forward it instead of answering. Pairs are drawn among the
VM ports bound to a known chassis, within the switches given (0.3's list) or, by default, within each set
of switches joined by routers (ports of unconnected switches are not expected to reach each other).
"""

from __future__ import annotations

import random
from typing import Any

from .packet import TraceError
from .request import Request

MAX_PAIRS = 100
EXHAUSTIVE = 10_000  # candidate pairs listed in full up to this many; above, pairs are drawn


def _switch_groups(facts: dict[tuple, Any]) -> dict[str, str]:
    """switch -> a representative of the switches it reaches through routers (union-find)."""
    parent: dict[str, str] = {k[1]: k[1] for k in facts if k[0] == "LS"}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    lrp_router = {k[2]: k[1] for k in facts if k[0] == "lrp"}
    router_of_switch: dict[str, list[str]] = {}
    for k, lsp in facts.items():
        if k[0] == "lsp" and lsp.peer and lsp.peer in lrp_router:
            router_of_switch.setdefault(lrp_router[lsp.peer], []).append(k[1])
    for switches in router_of_switch.values():
        for s in switches[1:]:
            parent[find(s)] = find(switches[0])
    return {s: find(s) for s in parent}


def ports(facts: dict[tuple, Any], switches: list[str] | None) -> list[tuple[str, Any]]:
    """(switch, lsp) of VM ports bound to a known chassis, in the given switches (all when None)."""
    out = []
    for k in sorted(k for k in facts if k[0] == "lsp"):
        lsp = facts[k]
        if lsp.peer or lsp.ip == "255.255.255.255" or not lsp.chassis or ("chassis", lsp.chassis) not in facts:
            continue
        if switches is None or k[1] in switches:
            out.append((k[1], lsp))
    return out


def pairs(facts: dict[tuple, Any], switches: list[str] | None, n: int,
          rng: random.Random) -> list[tuple[tuple[str, Any], tuple[str, Any]]]:
    """Up to `n` distinct random (source, target) pairs of ports that should reach each other."""
    for s in switches or ():
        if ("LS", s) not in facts:
            raise TraceError(f"switch {s} does not exist")
    group = _switch_groups(facts)
    members: dict[str | None, list[tuple[str, Any]]] = {}
    for p in ports(facts, switches):
        members.setdefault(None if switches is not None else group.get(p[0]), []).append(p)
    pools = [m for m in members.values() if len(m) > 1]
    if sum(len(m) * (len(m) - 1) for m in pools) <= EXHAUSTIVE:  # small: every pair is a candidate
        cands = [(a, b) for m in pools for a in m for b in m if a[1] is not b[1] and a[1].ip != b[1].ip]
        if not cands:
            raise TraceError("no pair of bound ports to trace between")
        return rng.sample(cands, min(n, len(cands)))
    chosen: dict[tuple[int, int], tuple] = {}  # large: draw, never list N^2 pairs
    weights = [len(m) for m in pools]
    for _ in range(50 * n):
        m = rng.choices(pools, weights)[0]
        a, b = rng.choice(m), rng.choice(m)
        if a[1] is not b[1] and a[1].ip != b[1].ip:
            chosen.setdefault((id(a[1]), id(b[1])), (a, b))
            if len(chosen) == n:
                break
    return list(chosen.values())


def request(src: tuple[str, Any], dst: tuple[str, Any]) -> Request:
    return Request(f"{src[0]}/{src[1].name}", dst_ip=dst[1].ip, icmp_type=0)


def wrong(doc: dict[str, Any], dst: tuple[str, Any]) -> str | None:
    """Why the traced packet did not reach `dst` (None when it did)."""
    ok = any(o["result"] == "delivered" and o.get("switch") == dst[0] and o.get("port") == dst[1].name
             for o in doc["outcomes"])
    if ok:
        return None
    from .report import outcome_text

    return "; ".join(outcome_text(o) for o in doc["outcomes"]) or "no outcome"


def detect(store: Any, facts: dict[tuple, Any], switches: list[str] | None, n: int, wait: float,
           rng: random.Random | None = None) -> list[dict[str, Any]]:
    """One round: trace `n` random pairs at once; the wrong ones as {source, target, reason, trace}."""
    from . import live

    rng = rng or random.Random()
    chosen = pairs(facts, switches, min(n, MAX_PAIRS), rng)
    ids = live.free_ids(store, len(chosen), rng)
    inflight = []
    for (src, dst), cid in zip(chosen, ids, strict=True):
        req = request(src, dst)
        frame = live._frame(facts, req)
        inflight.append((src, dst, live.start(store, facts, src[0], src[1].name, frame, cid)))
    live.collect(store, [p for _s, _d, p in inflight], wait)
    bad = []
    for src, dst, p in inflight:
        try:
            doc: dict[str, Any] | None = live.document(p, wait)
            reason = wrong(doc, dst)  # type: ignore[arg-type]
        except TraceError as exc:
            doc, reason = None, str(exc)
        if reason is not None:
            bad.append({"source": f"{src[0]}/{src[1].name}", "target": f"{dst[0]}/{dst[1].name}",
                        "target_ip": dst[1].ip, "reason": reason, "trace": doc})
    return bad
