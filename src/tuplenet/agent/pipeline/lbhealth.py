"""Flows for load-balancer health checks: in every switch holding backends of a checked load balancer,
answer ARP for the monitor address and hand TCP sent to it (probe replies) to the agent, metered.

The agent (healthcheck_service.py) puts its probes straight on the backend's port by packet-out; the
backend answers the monitor address either on-link (ARP answered here with MONITOR_MAC) or through its
default gateway (any router MAC): the reply is caught by IP before the MAC lookup and before ACLs, on the
backend's own chassis, which is where the probing agent runs.
"""

from __future__ import annotations

from typing import Any

from .. import stages as S
from .. import tables as T
from ..flow import Controller, Flow, Meter, ip_int, mac_int, match
from ..healthprobe import MONITOR_IP, MONITOR_MAC
from ..openflow.meters import MeterSpec, meter_id
from ..view import Reader
from .const import ETH_IP
from .switching import arp_responder

LS_IN_HC = S.table("ls_in_hc")
# Probe replies pass meters bucketed by the backend's address (like TTL exceeded's), so a backend flooding the
# monitor address exhausts only its bucket, never every check of the chassis; a probe is 1-3 segments per
# interval, so 500 packets/s per bucket covers hundreds of backends in it.
HC_METER_BASE = 0x4C40
HC_METER_BUCKETS = 16
HC_METER_RATE = 500
HC_METER_BURST = 200


def hc_meter(ip: str) -> int:
    return meter_id(HC_METER_BASE + (ip_int(ip) & (HC_METER_BUCKETS - 1)))


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


def catch_flow(dp: int, ip: str, port: int) -> Flow:
    """TCP from backend ip:port to the monitor address in switch `dp`: to the agent, metered."""
    return Flow(LS_IN_HC, 1, match(metadata=dp, dl_type=ETH_IP, nw_src=ip_int(ip), nw_dst=ip_int(MONITOR_IP),
                                   nw_proto=6, tcp_src=port),
                (Meter(hc_meter(ip)), Controller(T.OP_LB_HEALTH.to_bytes(4, "big"))))


def health_flows(r: Reader, key: tuple, lb: Any) -> list:
    """Flows (and meters) a load balancer with a health check contributes: in each switch that may hold its
    backends, the monitor ARP answer, and a catch flow per backend that is a port there. Identical flows of
    several load balancers are shared by the engine."""
    if lb.check == "none" or not lb.backends:
        return []
    out: list = []
    meters = set()
    for name, dp in checked_switches(r, lb):
        out.append(arp_flow(dp))
        for b in lb.backends:
            if r.members(("I", "ls_ip", name, b.ip)):
                out.append(catch_flow(dp, b.ip, b.port))
                meters.add(hc_meter(b.ip))
    return out + [MeterSpec(m, HC_METER_RATE, HC_METER_BURST) for m in sorted(meters)]
