"""NAT addresses on the switches: every switch attached to a router answers ARP for the router's NAT
addresses (MAC f2:01:<address bytes>, as 0.3) and delivers frames for that MAC to the router.
The translation itself (conntrack) belongs to the NAT stage."""

from __future__ import annotations

from typing import Any

from .. import tables as T
from ..flow import Flow, Load, Resubmit, ip_int, match
from ..view import Reader
from .common import lr_here, lr_of, ls_id, peer_lsp
from .switching import _remote_lookup, arp_responder


def nat_mac(ip: str) -> int:
    return (0xF201 << 32) | ip_int(ip)


def lnat_flows(r: Reader, key: tuple, nat: Any) -> list[Flow]:
    lr = lr_of(r, key[1])
    if lr is None:
        return []
    mac = nat_mac(nat.xlate_ip)
    here = lr_here(r, lr)
    ch = None if here else r.get(("chassis", lr.chassis))
    flows = []
    for lrp_key in r.members(("I", "lr_lrps", key[1])):
        lrp = r.get(lrp_key)
        lsp_key, lsp = peer_lsp(r, lrp_key[2], lrp.peer)
        if lsp is None:
            continue
        dp = ls_id(r, lsp_key[1])
        if dp is None:
            continue
        pid = ip_int(lsp.ip) & 0xFFFF
        flows.append(arp_responder(dp, nat.xlate_ip, mac))
        if here:
            flows.append(Flow(T.LS_IN_LOOKUP, 5, match(metadata=dp, dl_dst=mac),
                              (Load(T.R_DST_PORT, pid), Resubmit(T.LS_IN_OUTPUT))))
        elif ch is not None:
            flows.append(_remote_lookup(dp, pid, mac, ch.ip))
    return flows


__all__ = ["lnat_flows", "nat_mac"]
