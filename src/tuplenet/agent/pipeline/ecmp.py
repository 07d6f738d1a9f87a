"""ECMP to edges: equal-cost static routes towards routers pinned on other chassis spread flows by hash.

Every static route of one router with one destination prefix belongs to one derived owner
`("ecmp", router, network, prefix)`. Its members whose next hop is a router pinned to another chassis
that has its own tunnel port are the *edges*. With two or more edges (and not on a gateway: gateways
never ECMP, as in 0.3) the owner emits:

- lr_in_route: one flow above every plain static route of the prefix that picks an edge with
  `bundle_load(HASH_FN, hrw, members = the edges' tunnel ports)`. OVS skips a member whose tunnel is not
  alive - BFD down, or not up yet - so a dead edge leaves the set within the BFD detection time, a new
  one joins only once BFD is up, and highest-random-weight hashing moves only the flows of the edge that
  changed: every other connection keeps its edge;
- lr_in_ecmp: per edge, "reg4 = its tunnel port" -> that route's registers; reg4 = 0xffff (no edge
  alive) -> drop, counted by that flow's packet counter.

Whatever the number of edges, the owner asks for BFD on the tunnel to every edge (OVSDB wish "bfd"), so
the liveness bundle_load reads is real. A gateway asks for BFD on all its tunnels (ovswishes.py).
"""

from __future__ import annotations

from .. import tables as T
from ..flow import BundleLoad, Flow, M, Resubmit, fmt_ip, match
from ..outputs import DerivedKind, Wish
from ..view import Reader, route_group
from .common import lr_here, lr_of, peer_lrp, peer_lsp
from .routing import route_actions, route_match

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ECMP = "ecmp"
BFD = "bfd"  # wish kind: ("bfd", (chassis,)) -> (min_tx ms, min_rx ms)
DEFAULT_HASH = "nw_dst"  # 0.3's HASH_FN default
DEFAULT_BFD_MS = 250  # BFD declares a peer down after 3 missed intervals: ~0.75 s detection
ECMP_LEVEL = 2  # route priority level above connected (0) and static (1) routes, as 0.3
DEAD_BASE, MEMBER_BASE = 1, 34  # lr_in_ecmp bands: + prefix length, so longer prefixes win


def _group_of(key: tuple, lsr: Any) -> tuple[tuple, ...]:
    return ((ECMP, key[1], *route_group(lsr.ip, lsr.prefix)),)


def next_hop_chassis(r: Reader, lr: str, lsr: Any) -> str | None:
    """The chassis the route's next hop router is pinned to; None when the next hop is not a pinned router."""
    lrp_key = ("lrp", lr, lsr.outport)
    out = r.get(lrp_key)
    if out is None:
        return None
    lsp_key, _ = peer_lsp(r, lrp_key, out.peer)
    if lsp_key is None:
        return None
    for k in r.members(("I", "ls_ip", lsp_key[1], lsr.next_hop)):
        nh = r.get(k)
        if nh is None or not nh.peer:
            continue
        nlrp_key, _ = peer_lrp(r, k, nh.peer)
        if nlrp_key is None or nlrp_key[1] == lr:
            continue
        nlr = lr_of(r, nlrp_key[1])
        if nlr is not None and nlr.chassis:
            return nlr.chassis
    return None


def bfd_timers(r: Reader) -> tuple[int, int]:
    """BFD min_tx/min_rx in ms, from the agent's settings fact (default when absent)."""
    cfg = r.get(("bfd_cfg",))
    return cfg if cfg else (DEFAULT_BFD_MS, DEFAULT_BFD_MS)


def ecmp_outputs(r: Reader, owner: tuple, members: list[tuple]) -> list:
    _, lr_name, net, prefix = owner
    lr = lr_of(r, lr_name)
    if lr is None or not lr_here(r, lr):
        return []
    gateway = bool(r.get(("gateway",)))
    self_id = r.self_id
    timers = bfd_timers(r)
    outs: list = []
    edges: list[tuple[Any, Any, int]] = []  # (route, out lrp, tunnel ofport) in route-name order
    ports: set[int] = set()
    bfd_for: set[str] = set()
    for k in members:
        lsr = r.get(k)
        if lsr is None:
            continue
        chassis = next_hop_chassis(r, lr_name, lsr)
        if chassis is None or chassis == self_id:
            continue
        if not gateway and chassis not in bfd_for:
            bfd_for.add(chassis)
            outs.append(Wish(BFD, (chassis,), timers))
        ofport = r.get(("tun", chassis))
        lrp = r.get(("lrp", lr_name, lsr.outport))
        if ofport is None or lrp is None or ofport in ports:
            continue  # no own tunnel yet (no BFD either), or a second route to the same chassis
        ports.add(ofport)
        edges.append((lsr, lrp, ofport))
    if gateway or len(edges) < 2:
        return outs
    ip = fmt_ip(net)
    rmatch = route_match(lr.id, ip, prefix)
    pick = BundleLoad(r.get(("hash_fn",)) or DEFAULT_HASH, tuple(p for _, _, p in edges), T.R_OFPORT, 0, 16)
    outs.append(Flow(T.LR_IN_ROUTE, (prefix << 10) + (ECMP_LEVEL << 6), rmatch, (pick, Resubmit(T.LR_IN_ECMP))))
    for lsr, lrp, ofport in edges:
        outs.append(Flow(T.LR_IN_ECMP, MEMBER_BASE + prefix, match(*rmatch, M(T.R_OFPORT, ofport)),
                         route_actions(lrp, lsr.next_hop, T.LR_OUT_START)))
    outs.append(Flow(T.LR_IN_ECMP, DEAD_BASE + prefix, match(*rmatch, M(T.R_OFPORT, T.OFPORT_NONE)),
                     (Resubmit(T.DROP),)))
    return outs


ECMP_GROUPS = DerivedKind(ECMP, ("lsr",), _group_of, ecmp_outputs)

__all__ = ["BFD", "ECMP", "ECMP_GROUPS", "bfd_timers", "ecmp_outputs", "next_hop_chassis"]
