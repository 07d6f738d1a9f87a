"""Gateway flows: an edge's outside switch (one with a patch port to a physical bridge on this chassis).

On a gateway (GATEWAY=1, fact `("gateway",)`): IP frames a router sends into the switch with an unresolved
next hop (zero destination MAC, pipeline/routing.py) go to the agent, which sends an ARP request for the
next hop out of the patch port (gateway_arp.py); the frame itself is dropped, as in 0.3. ARP replies from
the physical side go to the agent to be learned, per router port, never globally (0.3 defect §7.8). A
learned binding is a local fact `("neigh", lr, lrp, ip)` → MAC whose flow resolves that router port's next
hop in `ls_mac_bind`, keyed by switch, next hop and router port (reg3), so no router's entries affect
another's. A port known to the topology keeps its static binding: the learned one yields to it.
Elsewhere a zero-MAC frame is dropped before it could leak out of the patch port."""

from __future__ import annotations

from .. import tables as T
from ..flow import Controller, Flow, M, Meter, SetField, ip_int, mac_int, match
from ..openflow.meters import MeterSpec, meter_id
from ..view import PATCH_IP, Reader
from .common import lr_here, lr_of, ls_id, peer_lsp
from .const import ETH_ARP, ETH_IP

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

METER_INDEX = 0x500  # resolution; 0x501 replies (TTL buckets 0-255, on-demand 0x300, trace 0x400)
METER_RATE = 100  # packets/s per gateway and kind: a flood of replies from outside cannot starve resolution
METER_BURST = 100
_METERS = {T.OP_ARP_GENERATE: METER_INDEX, T.OP_ARP_LEARN: METER_INDEX + 1}


def _to_agent(op: int) -> tuple:
    return (Meter(meter_id(_METERS[op])), Controller(op.to_bytes(4, "big")))


def patch_flows(r: Reader, key: tuple, lsp: Any) -> list:
    """ARP control flows of a switch with a local patch port (owned by the patch lsp)."""
    if lsp.ip != PATCH_IP or lsp.chassis != r.self_id or r.get(("patchport", lsp.name)) is None:
        return []
    dp = ls_id(r, key[1])
    if dp is None:
        return []
    unresolved = match(metadata=dp, dl_dst=0, dl_type=ETH_IP)
    if not r.get(("gateway",)):
        return [Flow(T.LS_IN_ARP_CTL, 2, unresolved, ())]
    return [
        Flow(T.LS_IN_ARP_CTL, 2, unresolved, _to_agent(T.OP_ARP_GENERATE)),
        Flow(T.LS_IN_ARP_CTL, 2, match(M(T.R_SRC_PORT, T.OFPORT_NONE), metadata=dp, dl_type=ETH_ARP, arp_op=2),
             _to_agent(T.OP_ARP_LEARN)),
        *(MeterSpec(meter_id(i), METER_RATE, METER_BURST) for i in _METERS.values()),
    ]


def neigh_flows(r: Reader, key: tuple, mac: str) -> list[Flow]:
    """A learned next hop of router port (key[1], key[2]): `key[3]` is at `mac`."""
    _, lr_name, lrp_name, ip = key
    lr = lr_of(r, lr_name)
    if lr is None or not lr_here(r, lr):
        return []
    lrp_key = ("lrp", lr_name, lrp_name)
    lrp = r.get(lrp_key)
    if lrp is None:
        return []
    lsp_key, lsp = peer_lsp(r, lrp_key, lrp.peer)
    if lsp is None:
        return []
    dp = ls_id(r, lsp_key[1])
    if dp is None or r.members(("I", "ls_ip", lsp_key[1], ip)):
        return []
    m = match(M("metadata", dp), M(T.R_NEXT_HOP, ip_int(ip)), M(T.R_OUT_LRP_IP, ip_int(lrp.ip)))
    return [Flow(T.LS_MAC_BIND, 1, m, (SetField("dl_dst", mac_int(mac)),))]


__all__ = ["METER_INDEX", "neigh_flows", "patch_flows"]
