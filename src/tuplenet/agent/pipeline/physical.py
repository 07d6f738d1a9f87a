"""Tunnels: every Geneve port feeds the pipeline, and each remote chassis's tunnel IP maps to a port.

Port flows name a destination chassis by its tunnel IP (reg9) and resolve the port here, so a tunnel
appearing, moving or going touches one flow, not every port on that chassis; and no flow ever points at a
tunnel that does not exist. Until OVS has created a chassis's own port (seconds for thousands of chassis on
a fresh host), traffic to it leaves through the flow-based port with the destination set per packet.
"""

from __future__ import annotations

from typing import Any

from .. import tables as T
from ..flow import Flow, Load, M, Resubmit, SetField, ip_int, match
from ..view import Reader

_INGRESS = (Resubmit(T.EXTRACT), Resubmit(T.FROM_TUNNEL))
_DECIDED = Load(T.R_DECIDED, 1)
# A frame may leave through the tunnel it came in on (a chain of routers pinned alternately to two hosts
# crosses the same host pair several times); OpenFlow drops output to the ingress port unless it is cleared.
_ANY_IN_PORT = Load("in_port", 0)


def tunnel_flows(ofport: int) -> list[Flow]:
    """Geneve arriving on any of our tunnel ports enters the pipeline."""
    return [Flow(T.CLASSIFY, 2, match(in_port=ofport), _INGRESS)]


def chassis_flows(r: Reader, key: tuple, ch: Any) -> list[Flow]:
    """Chassis (by tunnel IP) → the tunnel port that reaches it."""
    if key[1] == r.self_id:
        return []
    ip = ip_int(ch.ip)
    own = r.get(("tun", key[1]))
    if own is not None:
        actions: tuple = (Load(T.R_OFPORT, own), _DECIDED, _ANY_IN_PORT)
    else:
        flowbased = r.get(("tunfb",))
        if flowbased is None:
            return []
        actions = (SetField("tun_dst", ip), Load(T.R_OFPORT, flowbased), _DECIDED, _ANY_IN_PORT)
    return [Flow(T.TO_CHASSIS, 1, match(M(T.R_CHASSIS, ip)), actions)]



