"""Logical router flows owned by router ports (ICMP responder, connected route, hand-off to the switch)
and by static routes. A router's flows exist only where it runs: everywhere if distributed, on its
chassis if pinned."""

from __future__ import annotations

from .. import tables as T
from ..flow import Flow, Load, M, Move, Resubmit, SetField, ip_int, mac_int, match
from ..view import Reader, route_group
from .common import lr_here, lr_of, ls_id, peer_lsp
from .const import ETH_IP

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_RESOLVE = Resubmit(T.LS_MAC_BIND)
_INTO_SWITCH = Resubmit(T.LS_IN_START)
MAX_ILK = 64  # distinct routes per (router, network, prefix); priorities stay unique below this


def route_match(lr_id: int, ip: str, prefix: int) -> tuple[M, ...]:
    if prefix == 0:
        return match(metadata=lr_id, dl_type=ETH_IP)
    net, _ = route_group(ip, prefix)
    mask = ((1 << 32) - 1) ^ ((1 << (32 - prefix)) - 1)
    return match(M("nw_dst", net, None if prefix == 32 else mask), metadata=lr_id, dl_type=ETH_IP)


def ilk(r: Reader, key: tuple, lr: str, level: int, ip: str, prefix: int) -> int | None:
    """Index of this route among same-prefix routes of its router (0.3's ILK), by name order."""
    group = r.members(("I", "rgroup", lr, level, *route_group(ip, prefix)))
    idx = group.index(key) if key in group else None
    return idx if idx is not None and idx < MAX_ILK else None


def route_actions(lrp: Any, next_hop: str | None, then: int = T.LR_IN_ECMP) -> tuple:
    """Leave through `lrp` towards `next_hop` (None: the destination itself), then continue in `then`."""
    nh = Load(T.R_NEXT_HOP, ip_int(next_hop)) if next_hop else Move("nw_dst", T.R_NEXT_HOP, 0, 0, 32)
    return (Load(T.R_DST_PORT, ip_int(lrp.ip) & 0xFFFF), SetField("dl_src", mac_int(lrp.mac)), nh,
            Load(T.R_OUT_LRP_IP, ip_int(lrp.ip)), Resubmit(then))


def lrp_flows(r: Reader, key: tuple, lrp: Any) -> list[Flow]:
    lr = lr_of(r, key[1])
    if lr is None or not lr_here(r, lr):
        return []
    ip = ip_int(lrp.ip)
    pid = ip & 0xFFFF
    flows = [
        # Echo replies from any interface of the router: swap addresses, answer, route back.
        Flow(T.LR_IN_ICMP, 3, match(metadata=lr.id, dl_type=ETH_IP, nw_proto=1, nw_dst=ip, icmp_type=8,
                                    icmp_code=0), (
            Move("nw_dst", T.R_SCRATCH, 0, 0, 32), Move("nw_src", "nw_dst", 0, 0, 32),
            Move(T.R_SCRATCH, "nw_src", 0, 0, 32), SetField("icmp_type", 0), Load("nw_ttl", 255),
            Load(T.R_FLAGS, 1, 0, 1), Resubmit(T.LR_IN_TTL))),
    ]
    idx = ilk(r, key, key[1], 0, lrp.ip, lrp.prefix)
    if idx is not None:
        flows.append(Flow(T.LR_IN_ROUTE, (lrp.prefix << 10) + idx, route_match(lr.id, lrp.ip, lrp.prefix),
                          route_actions(lrp, None)))
    lsp_key, lsp = peer_lsp(r, key, lrp.peer)
    if lsp is not None:
        dp = ls_id(r, lsp_key[1])
        if dp is not None:
            # Into the switch: resolve the next hop's MAC there (unknown: zero MAC, dropped by the lookup).
            flows.append(Flow(T.LR_OUT_TO_SWITCH, 1, match(M("metadata", lr.id), M(T.R_DST_PORT, pid)), (
                SetField("dl_dst", 0), SetField("metadata", dp), Load(T.R_SRC_PORT, ip_int(lsp.ip) & 0xFFFF),
                _RESOLVE, _INTO_SWITCH)))
    return flows


def lsr_flows(r: Reader, key: tuple, lsr: Any) -> list[Flow]:
    lr = lr_of(r, key[1])
    if lr is None or not lr_here(r, lr):
        return []
    out = r.get(("lrp", key[1], lsr.outport))
    if out is None:
        return []
    idx = ilk(r, key, key[1], 1, lsr.ip, lsr.prefix)
    if idx is None:
        return []
    return [Flow(T.LR_IN_ROUTE, (lsr.prefix << 10) + (1 << 6) + idx, route_match(lr.id, lsr.ip, lsr.prefix),
                 route_actions(out, lsr.next_hop))]
