"""Logical switch flows owned by one switch port: classification, destination lookup, egress, ARP
responder, and the IP → MAC binding routers use to reach it as a next hop."""

from __future__ import annotations

from .. import tables as T
from ..binding import bound_lsp, claiming_key
from ..flow import Flow, Load, M, Move, Resubmit, SetField, ip_int, mac_int, match
from ..view import PATCH_IP, Reader
from . import ondemand
from .common import lr_here, lr_of, ls_id, lsp_shadowed, peer_lrp
from .const import ETH_ARP, ETH_IP

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def lsp_flows(r: Reader, key: tuple, lsp: Any) -> list[Flow]:
    dp = ls_id(r, key[1])
    if dp is None:
        return []
    if lsp.ip == PATCH_IP:
        return _patch_port_flows(r, key, lsp, dp)
    if not lsp.peer and ondemand.untouched(r, key, lsp):  # remote, not talked to (on-demand hosts)
        return []
    if lsp_shadowed(r, key, lsp):
        return []
    pid = ip_int(lsp.ip) & 0xFFFF
    mac = mac_int(lsp.mac)
    flows: list[Flow] = [arp_responder(dp, lsp.ip, mac)]
    if lsp.peer:
        flows += _router_port_flows(r, key, lsp, dp, pid, mac)
    else:
        flows += _vm_port_flows(r, key, lsp, dp, pid, mac)
    flows.append(mac_binding(dp, lsp.ip, mac))
    return flows


_ETH_SWAP = Move("dl_src", "dl_dst")
_ARP_REPLY = Load("arp_op", 2)
_SHA_TO_THA = Move("arp_sha", "arp_tha")
_SPA_TO_TPA = Move("arp_spa", "arp_tpa")
_BACK = Move(T.R_SRC_PORT, T.R_DST_PORT)
_LOOPBACK = Load(T.R_FLAGS, 1, 0, 1)
# Entering a switch clears the flags but TRACE (bit 1): the live-trace mark (TRACE, bits 8-31) an injected
# packet carries survives classification (pipeline/tracepoints.py); a frame from a port never has it.
_CLEAR_FLAGS = (Load(T.R_FLAGS, 0, 0, 1), Load(T.R_FLAGS, 0, 2, 6))
_TO_OUTPUT = Resubmit(T.LS_IN_OUTPUT)
_TO_TO_ROUTER = Resubmit(T.LS_OUT_TO_ROUTER)
_DECIDED = Load(T.R_DECIDED, 1)
_TO_CHASSIS = Resubmit(T.TO_CHASSIS)


def arp_responder(dp: int, ip: str, mac: int) -> Flow:
    """Answer ARP requests for `ip` with `mac`, sending the reply back out the asking port."""
    ipn = ip_int(ip)
    return Flow(T.ARP_RESPOND, 1, match(metadata=dp, dl_type=ETH_ARP, arp_op=1, arp_tpa=ipn), (
        _ETH_SWAP, SetField("dl_src", mac), _ARP_REPLY, _SHA_TO_THA, SetField("arp_sha", mac),
        _SPA_TO_TPA, SetField("arp_spa", ipn), _BACK, _LOOPBACK))


def _vm_port_flows(r: Reader, key: tuple, lsp: Any, dp: int, pid: int, mac: int) -> list[Flow]:
    self_id = r.self_id
    chassis = lsp.chassis
    if chassis != self_id and r.get(claiming_key(key)):  # our claim is in flight: local flows at once
        chassis = self_id
    if not chassis and lsp.requested_chassis != self_id:
        # Unbound but requested on a chassis (the CMS knows where the VM goes, as Neutron's requested-chassis
        # or our CNI's own write): peers tunnel to that chassis at once, so the port is reachable as soon as
        # its owner has its local flows, without waiting for the claim's trip through etcd. Until then that
        # chassis has no flow for the port and drops what arrives; a bound port goes where it is bound.
        chassis = lsp.requested_chassis
    if not chassis:
        return []
    if chassis == self_id:
        ofport = r.get(("bind", lsp.name))
        if ofport is None or bound_lsp(r, lsp.name) != key:  # one iface-id, one port (tenant isolation)
            return []
        return _local_port(dp, pid, mac, ofport, lsp)
    ch = r.get(("chassis", chassis))
    if ch is None:
        return []
    return [_remote_lookup(dp, pid, mac, ch.ip)]


def _local_port(dp: int, pid: int, mac: int, ofport: int, lsp: Any) -> list[Flow]:
    return [
        *classify_vm(dp, pid, mac, ofport, lsp.ip if lsp.port_security else None),
        Flow(T.LS_IN_LOOKUP, 4, match(metadata=dp, dl_dst=mac), (Load(T.R_DST_PORT, pid), _TO_OUTPUT)),
        Flow(T.LS_OUT_PORT, 3, match(M("metadata", dp), M(T.R_DST_PORT, pid)), (
            Load(T.R_OFPORT, ofport), _DECIDED, _TO_TO_ROUTER)),
    ]


def classify_vm(dp: int, pid: int, mac: int, ofport: int, ip: str | None) -> list[Flow]:
    """Frames from a VM enter its switch. With port security (`ip` given) only from the port's own MAC,
    and only IPv4 from its own IP or ARP with its own sender addresses: no spoofed MAC, IP or ARP reply
    can poison a neighbour or impersonate another port. The rest is dropped by a per-port flow whose
    counters tell the operator which port misbehaves."""
    enter = (Load(T.R_SRC_PORT, pid), SetField("metadata", dp), *_CLEAR_FLAGS, Resubmit(T.LS_IN_START))
    if ip is None:
        return [Flow(T.CLASSIFY, 2, match(in_port=ofport), enter)]
    ipn = ip_int(ip)
    return [
        Flow(T.CLASSIFY, 3, match(in_port=ofport, dl_src=mac, dl_type=ETH_IP, nw_src=ipn), enter),
        Flow(T.CLASSIFY, 3, match(in_port=ofport, dl_src=mac, dl_type=ETH_ARP, arp_spa=ipn, arp_sha=mac), enter),
        Flow(T.CLASSIFY, 2, match(in_port=ofport), ()),
    ]


def _remote_lookup(dp: int, pid: int, mac: int, chassis_ip: str) -> Flow:
    """Destination on another chassis: tunnel there (table TO_CHASSIS picks the port)."""
    return Flow(T.LS_IN_LOOKUP, 3, match(metadata=dp, dl_dst=mac), (
        Load(T.R_DST_PORT, pid), Load(T.R_CHASSIS, ip_int(chassis_ip)), _TO_CHASSIS, _TO_OUTPUT))


def _router_port_flows(r: Reader, key: tuple, lsp: Any, dp: int, pid: int, mac: int) -> list[Flow]:
    lrp_key, lrp = peer_lrp(r, key, lsp.peer)
    if lrp is None:
        return []
    lr = lr_of(r, lrp_key[1])
    if lr is None:
        return []
    flows = router_lookup(r, lr, dp, pid, mac, 4)
    if lr_here(r, lr):
        flows.append(Flow(T.LS_OUT_PORT, 2, match(M("metadata", dp), M(T.R_DST_PORT, pid)), (
            Load(T.R_NEXT_LR, lr.id), Load(T.R_NEXT_LRP, ip_int(lrp.ip) & 0xFFFF), Resubmit(T.LS_OUT_TO_ROUTER))))
    return flows


def router_lookup(r: Reader, lr: Any, dp: int, pid: int, mac: int, priority: int) -> list[Flow]:
    """Frames for `mac` in switch `dp` go to the router's port `pid`: here if the router runs here, else
    through the tunnel to the chassis it is pinned to (nothing while that chassis is unknown)."""
    if lr_here(r, lr):
        return [Flow(T.LS_IN_LOOKUP, priority, match(metadata=dp, dl_dst=mac), (Load(T.R_DST_PORT, pid), _TO_OUTPUT))]
    ch = r.get(("chassis", lr.chassis))
    return [] if ch is None else [_remote_lookup(dp, pid, mac, ch.ip)]


def mac_binding(dp: int, ip: str, mac: int) -> Flow:
    """Next hop `ip` in this switch is `mac`: routers leaving into the switch resolve their next hop here,
    so a port's flows do not depend on which routers are attached (one flow per port, not per router)."""
    return Flow(T.LS_MAC_BIND, 1, match(M("metadata", dp), M(T.R_NEXT_HOP, ip_int(ip))),
                (SetField("dl_dst", mac),))


def _patch_port_flows(r: Reader, key: tuple, lsp: Any, dp: int) -> list[Flow]:
    """A patch port bridges the switch to a physical OVS bridge on one chassis; it is the switch's
    default destination there (0.3 §3.4)."""
    if lsp.chassis != r.self_id:
        return []
    ofport = r.get(("patchport", lsp.name))  # our patch port, never a VM interface with that iface-id
    if ofport is None:
        return []
    pid = T.OFPORT_NONE
    return [
        Flow(T.CLASSIFY, 2, match(in_port=ofport), (
            Load(T.R_SRC_PORT, pid), SetField("metadata", dp), *_CLEAR_FLAGS, Resubmit(T.LS_IN_START))),
        Flow(T.LS_IN_LOOKUP, 2, match(metadata=dp), (Load(T.R_DST_PORT, pid), Resubmit(T.LS_OUT_START))),
        Flow(T.LS_OUT_PORT, 3, match(M("metadata", dp), M(T.R_DST_PORT, pid)), (
            Load(T.R_OFPORT, ofport), Load(T.R_DECIDED, 1), Resubmit(T.LS_OUT_TO_ROUTER))),
    ]
