"""NAT addresses on the switches: every switch attached to a router answers ARP for the router's NAT
addresses (MAC f2:01:<address bytes>, as 0.3) and delivers frames for that MAC to the router.
The translation itself (conntrack) belongs to the NAT stage."""

from __future__ import annotations

from typing import Any

from ..flow import Flow, ip_int
from ..view import Reader
from .common import lr_of, ls_id, peer_lsp
from .switching import arp_responder, router_lookup


def nat_mac(ip: str) -> int:
    return (0xF201 << 32) | ip_int(ip)


def lnat_flows(r: Reader, key: tuple, nat: Any) -> list[Flow]:
    lr = lr_of(r, key[1])
    if lr is None:
        return []
    mac = nat_mac(nat.xlate_ip)
    flows = []
    for lrp_key in r.members(("I", "lr_lrps", key[1])):
        lrp = r.get(lrp_key)
        lsp_key, lsp = peer_lsp(r, lrp_key, lrp.peer)
        if lsp is None:
            continue
        dp = ls_id(r, lsp_key[1])
        if dp is None:
            continue
        pid = ip_int(lsp.ip) & 0xFFFF
        flows.append(arp_responder(dp, nat.xlate_ip, mac))
        flows += router_lookup(r, lr, dp, pid, mac, 5)
    return flows


__all__ = ["lnat_flows", "nat_mac"]
