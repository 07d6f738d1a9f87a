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
# One meter for every probe reply of this chassis: enough for thousands of backends (a probe is 1-3
# segments per interval), while a guest flooding the monitor address costs the agent a bounded rate.
HC_METER = meter_id(0x4C48)
HC_METER_RATE = 2000
HC_METER_BURST = 500


def checked_switches(r: Reader, lb: Any) -> list[int]:
    """Datapath ids of the switches where `lb`'s backends can live: its own switch, or every switch linked to
    its router (a router port and a switch port naming each other)."""
    if lb.dp_kind == "LS":
        ls = r.get(("LS", lb.dp))
        return [ls.id] if ls is not None else []
    out = []
    for lrp_key in r.members(("I", "lr_lrps", lb.dp)):
        lrp = r.get(lrp_key)
        if lrp is None or not lrp.peer:
            continue
        for lsp_key in r.members(("I", "lsp_name", lrp.peer)):
            lsp = r.get(lsp_key)
            ls = r.get(("LS", lsp_key[1]))
            if lsp is not None and ls is not None and lsp.peer == lrp_key[2]:
                out.append(ls.id)
    return sorted(set(out))


def monitor_flows(dp: int) -> list[Flow]:
    """The two flows of one switch: ARP for the monitor address, and TCP to it to the agent."""
    catch = Flow(LS_IN_HC, 1, match(metadata=dp, dl_type=ETH_IP, nw_dst=ip_int(MONITOR_IP), nw_proto=6),
                 (Meter(HC_METER), Controller(T.OP_LB_HEALTH.to_bytes(4, "big"))))
    return [arp_responder(dp, MONITOR_IP, mac_int(MONITOR_MAC)), catch]


def health_flows(r: Reader, key: tuple, lb: Any) -> list:
    """Flows (and the meter) a load balancer with a health check contributes; identical flows of several
    load balancers on one switch are shared by the engine."""
    if lb.check == "none" or not lb.backends:
        return []
    out: list = [MeterSpec(HC_METER, HC_METER_RATE, HC_METER_BURST)]
    for dp in checked_switches(r, lb):
        out += monitor_flows(dp)
    return out


