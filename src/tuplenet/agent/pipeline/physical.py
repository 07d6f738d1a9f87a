"""Tunnels: every Geneve port feeds the pipeline, and each remote chassis's tunnel IP maps to a port.

Port flows name a destination chassis by its tunnel IP (reg9) and resolve the port here, so a tunnel
appearing, moving or going touches one flow, not every port on that chassis; and no flow ever points at a
tunnel that does not exist. Until OVS has created a chassis's own port (seconds for thousands of chassis on
a fresh host), traffic to it leaves through the flow-based port with the destination set per packet.
"""

from __future__ import annotations

from .. import tables as T
from ..flow import Flow, Load, M, Resubmit, SetField, ip_int, match
from ..view import Reader
from . import redirect
from .ondemand import chassis_counted
from .tracepoints import INGRESS_REPORT

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_INGRESS = (Resubmit(T.EXTRACT), INGRESS_REPORT, Resubmit(T.FROM_TUNNEL))  # live trace: tracepoints.py
_DECIDED = Load(T.R_DECIDED, 1)
# A frame may leave through the tunnel it came in on (a chain of routers pinned alternately to two hosts
# crosses the same host pair several times); OpenFlow drops output to the ingress port unless it is cleared.
_ANY_IN_PORT = Load("in_port", 0)


def tunnel_flows(ofport: int) -> list[Flow]:
    """Geneve arriving on a chassis's own tunnel port enters the pipeline (OVS delivers to that port only
    what comes from its remote IP)."""
    return [Flow(T.CLASSIFY, 2, match(in_port=ofport), _INGRESS)]


def chassis_flows(r: Reader, key: tuple, ch: Any) -> list[Flow]:
    """Chassis (by tunnel IP) → the tunnel port that reaches it; and Geneve from that IP on the flow-based
    port is accepted. The flow-based port takes packets from any underlay address, so without a known
    chassis as source a frame there would reach any switch and port (a spoofing hole): no flow, no entry."""
    if key[1] == r.self_id:
        return []
    ip = ip_int(ch.ip)
    flows = []
    flowbased = r.get(("tunfb",))
    if flowbased is not None:
        flows.append(Flow(T.CLASSIFY, 2, match(in_port=flowbased, tun_src=ip), _INGRESS))
    if not chassis_counted(r, key[1]):  # on-demand: no port here has talked to it yet
        return flows
    own = r.get(("tun", key[1]))
    if own is not None and redirect.dead(r, key[1]):  # BFD says it went down: through another edge
        actions: tuple = (Load(T.R_OFPORT, own), _DECIDED, _ANY_IN_PORT, Resubmit(T.REDIRECT))
    elif own is not None:
        actions = (Load(T.R_OFPORT, own), _DECIDED, _ANY_IN_PORT)
    elif flowbased is not None:
        actions = (SetField("tun_dst", ip), Load(T.R_OFPORT, flowbased), _DECIDED, _ANY_IN_PORT)
    else:
        return flows
    return [*flows, Flow(T.TO_CHASSIS, 1, match(M(T.R_CHASSIS, ip)), actions)]



