"""Untunnel / DSR (ENABLE_UNTUNNEL=1, 0.3 §3.9.9): IPv4 that a host's VMs send towards the outside leaves
through the host's own stack (the internal port `br-int-dsrgw`) instead of crossing Geneve to an edge;
replies still come back through the edges.

Where: in switch ingress, after port security and the ingress ACLs, at the point where the frame would be
handed to its router (`ls_in_untunnel`, between the ARP responder hook and the lookup). A frame leaves
this way only when all of these hold:

- it is IPv4 addressed (by MAC) to a router port on its switch whose router has a default route
  (0.0.0.0/0) - a router without one would drop the frame, so DSR must not open a way out for it;
- it comes from a port of this host, not from a router (frames routed into the switch pass), a patch port
  (the physical side of an edge) or a tunnel (redirected frames);
- its destination lies outside every router-port subnet of the whole topology, every NAT address and
  every router load-balancer VIP (`ls_in_untunnel_known`).

Cost: 0.3 wrote one flow per (switch, router port anywhere), O(#LS x #LRP). Here the known addresses are
one metadata-independent table with one flow per *distinct* subnet (the derived owner
`("dsrnet", network, prefix)` deduplicates ports sharing a subnet), and each router-facing switch port adds
two flows: O(#subnets + #router ports). The hand-off itself rewrites the destination MAC to the port's
own MAC (so the host's stack accepts the frame) and outputs it; IP header and TTL are unchanged here (the
host's forwarding decrements the TTL like any router).

The local fact `("untunnel",)` = (dsrgw MAC, dsrgw ofport) exists only while the option is on and the port
is up in OVSDB (agent/untunnel_host.py); without it nothing here emits a flow.
"""

from __future__ import annotations

from .. import tables as T
from ..flow import Flow, M, Output, Resubmit, SetField, ip_int, mac_int, match
from ..outputs import DerivedKind
from ..view import PATCH_IP, Reader, route_group
from .common import lr_of, ls_id, lsp_shadowed, peer_lrp
from .const import ETH_IP

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

UNTUNNEL_KEY = ("untunnel",)  # local fact: (MAC of br-int-dsrgw, its ofport)
DSR_NET = "dsrnet"  # derived owner ("dsrnet", network int, prefix): one known-subnet flow
_DEFAULT_ROUTE = route_group("0.0.0.0", 0)
_LOOKUP = (Resubmit(T.LS_IN_LOOKUP),)


def _known_of(key: tuple, obj: Any) -> tuple[tuple, ...]:
    """The known destinations a record contributes: a router port's subnet, a NAT rule's translated
    address, a router load balancer's VIP."""
    kind = key[0]
    if kind == "lrp":
        return ((DSR_NET, *route_group(obj.ip, obj.prefix)),)
    if kind == "lnat":
        return ((DSR_NET, *route_group(obj.xlate_ip, 32)),)
    if kind == "lr_lb":
        return ((DSR_NET, *route_group(obj.vip, 32)),)
    return ()


def known_flows(r: Reader, owner: tuple, members: list[tuple]) -> list[Flow]:
    """One flow per distinct known subnet, whoever contributes it: such destinations stay inside."""
    if r.get(UNTUNNEL_KEY) is None or not members:
        return []
    _, net, prefix = owner
    mask = None if prefix == 32 else ((1 << 32) - 1) ^ ((1 << (32 - prefix)) - 1)
    m = match(dl_type=ETH_IP) if prefix == 0 else match(M("nw_dst", net, mask), dl_type=ETH_IP)
    return [Flow(T.LS_IN_UNTUNNEL_KNOWN, prefix + 1, m, _LOOKUP)]


DSR_NETS = DerivedKind(DSR_NET, ("lrp", "lnat", "lr_lb"), _known_of, known_flows)


def has_default_route(r: Reader, lr: str) -> bool:
    return bool(r.members(("I", "rgroup", lr, 1, *_DEFAULT_ROUTE)))


def dsr_port_flows(r: Reader, key: tuple, lsp: Any) -> list[Flow]:
    """A router-facing switch port: frames coming out of the router pass; IPv4 sent to the router (if it
    has a default route) is checked against the known subnets."""
    if not lsp.peer or lsp.ip == PATCH_IP or r.get(UNTUNNEL_KEY) is None:
        return []
    dp = ls_id(r, key[1])
    if dp is None or lsp_shadowed(r, key, lsp):
        return []
    lrp_key, lrp = peer_lrp(r, key, lsp.peer)
    if lrp is None or lr_of(r, lrp_key[1]) is None:
        return []
    pid = ip_int(lsp.ip) & 0xFFFF
    flows = [Flow(T.LS_IN_UNTUNNEL, 2, match(M("metadata", dp), M(T.R_SRC_PORT, pid)), _LOOKUP)]
    if has_default_route(r, lrp_key[1]):
        flows.append(Flow(T.LS_IN_UNTUNNEL, 1, match(metadata=dp, dl_type=ETH_IP, dl_dst=mac_int(lsp.mac)),
                          (Resubmit(T.LS_IN_UNTUNNEL_KNOWN),)))
    return flows


def dsr_flows(r: Reader, key: tuple, port: Any) -> list[Flow]:
    """The option's own flows: patch-port and redirected frames pass; the hand-off to br-int-dsrgw."""
    mac, ofport = port
    return [
        Flow(T.LS_IN_UNTUNNEL, 3, match(M(T.R_SRC_PORT, T.OFPORT_NONE)), _LOOKUP),
        Flow(T.LS_IN_UNTUNNEL, 3, match(M(T.R_FLAGS, T.F_REDIRECT, T.F_REDIRECT)), _LOOKUP),
        Flow(T.LS_IN_UNTUNNEL_KNOWN, 0, match(dl_type=ETH_IP), (SetField("dl_dst", mac_int(mac)), Output(ofport))),
    ]


__all__ = ["DSR_NETS", "UNTUNNEL_KEY", "dsr_flows", "dsr_port_flows", "has_default_route", "known_flows"]
