"""NAT rules of a router: the address side and the translation.

Address side: every switch attached to the router answers ARP for the rule's xlate address (MAC
f2:01:<address bytes>, as 0.3) and delivers frames for that MAC to the router; an xlate address that is one
of the router's own port addresses (SNAT to the edge's VIP) keeps that port's MAC and needs nothing extra.
The translation itself (conntrack in the router's zone) is in nat_xlate.py."""

from __future__ import annotations

from typing import Any

from ..flow import Flow, ip_int, mac_int
from ..view import Reader
from .common import lr_here, lr_of, ls_id, peer_lsp
from .nat_xlate import translation_flows
from .switching import arp_responder, router_lookup


def nat_mac(ip: str) -> int:
    return (0xF201 << 32) | ip_int(ip)


def lnat_flows(r: Reader, key: tuple, nat: Any) -> list[Flow]:
    lr = lr_of(r, key[1])
    if lr is None:
        return []
    lrps = [(k, r.get(k)) for k in r.members(("I", "lr_lrps", key[1]))]
    own = next((lrp for _, lrp in lrps if lrp is not None and lrp.ip == nat.xlate_ip), None)
    mac = mac_int(own.mac) if own is not None else nat_mac(nat.xlate_ip)
    flows = []
    for lrp_key, lrp in ([] if own is not None else lrps):  # a router port's own flows answer for it
        if lrp is None:
            continue
        lsp_key, lsp = peer_lsp(r, lrp_key, lrp.peer)
        if lsp is None:
            continue
        dp = ls_id(r, lsp_key[1])
        if dp is None:
            continue
        pid = ip_int(lsp.ip) & 0xFFFF
        flows.append(arp_responder(dp, nat.xlate_ip, mac))
        flows += router_lookup(r, lr, dp, pid, mac, 5)
    if lr_here(r, lr):
        flows += translation_flows(r, key, nat, lr.id, mac)
    return flows


__all__ = ["lnat_flows", "nat_mac"]
