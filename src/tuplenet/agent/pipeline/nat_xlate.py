"""NAT translation flows of one rule (reference §3.9.6, with one conntrack zone per router, §7.10).

SNAT: egress `lr_out_snat` commits new connections from the rule's prefix with nat(src=xlate) (longest
prefix wins: priority prefix+1); replies to the xlate address are un-NATed by ct(nat) in `lr_in_unsnat`.
DNAT (/32 only): `lr_in_dnat` commits connections to the xlate address with nat(dst=ip); the internal
host's replies are un-NATed by ct(nat) in `lr_out_undnat`. An snat and a dnat rule of one router with the
same /32 and the same xlate address form a floating IP: a stateless 1:1 rewrite both ways, no conntrack.

Every packet that went through an inbound translation carries F_NAT and is never SNATed on its way out
(a reply that was just un-SNATed must not be committed again as a new connection; an inbound DNAT
connection keeps its client's address). Translated packets leave with the NAT address's MAC as source.
The flows exist where the router runs (pipeline/common.lr_here): on its chassis for a pinned router."""

from __future__ import annotations

from typing import Any

from .. import tables as T
from ..flow import Ct, Flow, Load, M, Nat, Resubmit, SetField, ip_int, match
from ..view import Reader
from .const import ETH_IP
from .ctzone import zone

_FLAG_NAT = Load(T.R_FLAGS, 1, 3, 1)  # T.F_NAT (0x8) is bit 3
_NOT_NATED = M(T.R_FLAGS, 0, T.F_NAT)


def floating_partner(r: Reader, key: tuple, nat: Any) -> bool:
    """True when another rule of the router completes `nat` into a floating IP (snat+dnat, same /32 pair)."""
    if nat.prefix != 32:
        return False
    want = "dnat" if nat.xlate_type == "snat" else "snat"
    for k in r.members(("I", "lr_lnats", key[1])):
        other = r.get(k)
        if (k != key and other is not None and other.xlate_type == want and other.prefix == 32
                and other.ip == nat.ip and other.xlate_ip == nat.xlate_ip):
            return True
    return False


def _dnat_to(r: Reader, key: tuple, xlate_ip: str) -> bool:
    """Does another rule of the router DNAT connections to `xlate_ip`?"""
    for k in r.members(("I", "lr_lnats", key[1])):
        other = r.get(k)
        if k != key and other is not None and other.xlate_type == "dnat" and other.xlate_ip == xlate_ip:
            return True
    return False


def _net(ip: str, prefix: int) -> M:
    mask = ((1 << 32) - 1) ^ ((1 << (32 - prefix)) - 1)
    return M("nw_src", ip_int(ip) & mask, None if prefix == 32 else mask)


def translation_flows(r: Reader, key: tuple, nat: Any, lr_id: int, mac: int) -> list[Flow]:
    """The rule's conntrack (or stateless) flows in router `lr_id`; `mac` is the xlate address's MAC."""
    z = zone(lr_id)
    xl = ip_int(nat.xlate_ip)
    inner = ip_int(nat.ip)
    if floating_partner(r, key, nat):
        if nat.xlate_type == "dnat":
            return [Flow(T.LR_IN_UNSNAT, 2, match(metadata=lr_id, dl_type=ETH_IP, nw_dst=xl),
                         (SetField("nw_dst", inner), _FLAG_NAT, Resubmit(T.LR_IN_LB)))]
        return [Flow(T.LR_OUT_UNDNAT, 2, match(M(T.R_FLAGS, 0, T.F_NAT), metadata=lr_id, dl_type=ETH_IP,
                                               nw_src=inner),
                     (SetField("nw_src", xl), SetField("dl_src", mac), Resubmit(T.LR_OUT_SNAT)))]
    if nat.xlate_type == "snat":
        if nat.prefix == 0:
            src = match(_NOT_NATED, metadata=lr_id, dl_type=ETH_IP)
        else:
            src = match(_net(nat.ip, nat.prefix), _NOT_NATED, metadata=lr_id, dl_type=ETH_IP)
        return [
            Flow(T.LR_OUT_SNAT, nat.prefix + 1, src,
                 (Ct(commit=True, zone=z, table=T.LR_OUT_SNAT_CT, nat=Nat("src", xl)),)),
            Flow(T.LR_OUT_SNAT_CT, 1, match(metadata=lr_id, dl_type=ETH_IP, nw_src=xl),
                 (SetField("dl_src", mac), Resubmit(T.LR_OUT_NEXTHOP))),
            Flow(T.LR_IN_UNSNAT, 1, match(metadata=lr_id, dl_type=ETH_IP, nw_dst=xl),
                 (_FLAG_NAT, Ct(zone=z, table=T.LR_IN_UNSNAT_CT, nat=Nat()))),
        ] + ([] if _dnat_to(r, key, nat.xlate_ip) else [
            # Not a reply (conntrack left it addressed to us) and no DNAT rule wants it: drop here, not
            # route it back out and ask the outside who has our own address (a flood would eat the ARP meter).
            Flow(T.LR_IN_UNSNAT_CT, 1, match(metadata=lr_id, dl_type=ETH_IP, nw_dst=xl), ())])
    if nat.xlate_type != "dnat" or nat.prefix != 32:
        return []  # DNAT translates to one address (0.3 requires /32 too)
    return [
        Flow(T.LR_IN_DNAT, 33, match(metadata=lr_id, dl_type=ETH_IP, nw_dst=xl),
             (_FLAG_NAT, Ct(commit=True, zone=z, table=T.LR_IN_DNAT_CT, nat=Nat("dst", inner)))),
        Flow(T.LR_OUT_UNDNAT, 1, match(metadata=lr_id, dl_type=ETH_IP, nw_src=inner),
             (Ct(zone=z, table=T.LR_OUT_UNDNAT_CT, nat=Nat()),)),
        Flow(T.LR_OUT_UNDNAT_CT, 1, match(metadata=lr_id, dl_type=ETH_IP, nw_src=xl),  # a reply, un-NATed
             (SetField("dl_src", mac), _FLAG_NAT, Resubmit(T.LR_OUT_SNAT))),
    ]


__all__ = ["floating_partner", "translation_flows"]
