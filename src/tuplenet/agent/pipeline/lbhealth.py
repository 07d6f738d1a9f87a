"""Flows for load-balancer health checks: in every switch holding backends of a checked load balancer,
answer ARP for the monitor address and hand TCP sent to it (probe replies) to the agent, metered.

The agent (healthcheck_service.py) puts its probes straight on the backend's port by packet-out; the
backend answers the monitor address either on-link (ARP answered here with MONITOR_MAC) or through its
default gateway (any router MAC): the reply is caught by port and IP before the MAC lookup and before ACLs,
on the backend's own chassis, which is where the probing agent runs (other hosts have no catch flow for it).
"""

from __future__ import annotations

from typing import Any

from .. import stages as S
from .. import tables as T
from ..binding import bound_lsp
from ..flow import Controller, Flow, Meter, ip_int, mac_int, match
from ..healthprobe import MONITOR_IP, MONITOR_MAC
from ..openflow.meters import MeterSpec, meter_id
from ..view import Reader
from .const import ETH_IP
from .switching import arp_responder

LS_IN_HC = S.table("ls_in_hc")
# Probe replies pass a meter of the backend's own port (ofports are unique on a chassis): a VM flooding the
# monitor address from its checked backend exhausts only its own meter, never another tenant's checks (a
# bucket by address was shared across switches and tenants). A probe is 1-3 segments per interval; 500
# packets/s covers the load balancers checking one port. Ids 0x8000-0xFFFF of our range (ofport & 0x7FFF).
HC_METER_BASE = 0x8000
HC_METER_PORTS = 0x8000
HC_METER_RATE = 500
HC_METER_BURST = 200


def hc_meter(ofport: int) -> int:
    return meter_id(HC_METER_BASE + (ofport % HC_METER_PORTS))


def local_port(r: Reader, switches: list[str], ip: str, self_id: str) -> tuple[Any, int] | None:
    """The lsp with `ip` in one of the switches, if it is bound to a local interface here: (lsp, ofport)."""
    for ls in switches:
        for key in r.members(("I", "ls_ip", ls, ip)):
            lsp = r.get(key)
            if lsp is None or lsp.chassis != self_id:
                continue
            ofport = r.get(("bind", key[2]))
            if isinstance(ofport, int) and ofport > 0 and bound_lsp(r, key[2]) == key:
                return lsp, ofport
    return None


def checked_switches(r: Reader, lb: Any) -> list[tuple[str, int]]:
    """(name, datapath id) of the switches where `lb`'s backends can live: its own switch, or every switch
    linked to its router (a router port and a switch port naming each other)."""
    if lb.dp_kind == "LS":
        ls = r.get(("LS", lb.dp))
        return [(lb.dp, ls.id)] if ls is not None else []
    out = set()
    for lrp_key in r.members(("I", "lr_lrps", lb.dp)):
        lrp = r.get(lrp_key)
        if lrp is None or not lrp.peer:
            continue
        for lsp_key in r.members(("I", "lsp_name", lrp.peer)):
            lsp = r.get(lsp_key)
            ls = r.get(("LS", lsp_key[1]))
            if lsp is not None and ls is not None and lsp.peer == lrp_key[2]:
                out.add((lsp_key[1], ls.id))
    return sorted(out)


def arp_flow(dp: int) -> Flow:
    """Answer ARP for the monitor address in switch `dp` (backends with an on-link route ask)."""
    return arp_responder(dp, MONITOR_IP, mac_int(MONITOR_MAC))


def catch_flow(dp: int, ip: str, port: int, ofport: int) -> Flow:
    """TCP from backend ip:port on its port `ofport` to the monitor address in switch `dp`: to the agent,
    metered per port."""
    return Flow(LS_IN_HC, 1, match(metadata=dp, in_port=ofport, dl_type=ETH_IP, nw_src=ip_int(ip),
                                   nw_dst=ip_int(MONITOR_IP), nw_proto=6, tcp_src=port),
                (Meter(hc_meter(ofport)), Controller(T.OP_LB_HEALTH.to_bytes(4, "big"))))


def health_flows(r: Reader, key: tuple, lb: Any) -> list:
    """Flows (and meters) a load balancer with a health check contributes: in each switch that may hold its
    backends, the monitor ARP answer, and a catch flow per backend bound here (where it is probed).
    Identical flows of several load balancers are shared by the engine."""
    if lb.check == "none" or not lb.backends:
        return []
    out: list = []
    meters = set()
    self_id = r.self_id
    switches = checked_switches(r, lb)
    dps = {name: dp for name, dp in switches}
    for _name, dp in switches:
        out.append(arp_flow(dp))
    for b in lb.backends:
        found = local_port(r, list(dps), b.ip, self_id) if self_id else None
        if found is not None:
            out.append(catch_flow(dps[found[0].ls], b.ip, b.port, found[1]))
            meters.add(hc_meter(found[1]))
    return out + [MeterSpec(m, HC_METER_RATE, HC_METER_BURST) for m in sorted(meters)]
