"""Tunnels: every Geneve port feeds the pipeline, and each remote chassis's tunnel IP maps to its port.

Port flows name a destination chassis by its tunnel IP (reg9) and resolve the ofport here, so a tunnel
appearing, moving or going touches one flow, not every port on that chassis; and no flow ever points at
a tunnel that does not exist yet (0.3's ordering problem).
"""

from __future__ import annotations

from typing import Any

from .. import tables as T
from ..flow import Flow, Load, M, Resubmit, ip_int, match
from ..view import Reader

_INGRESS = (Resubmit(T.EXTRACT), Resubmit(T.FROM_TUNNEL))
_DECIDED = Load(T.R_DECIDED, 1)


def tunnel_flows(r: Reader, owner: tuple, ofport: int) -> list[Flow]:
    flows = [Flow(T.CLASSIFY, 2, match(in_port=ofport), _INGRESS)]
    if owner[0] == "tun":
        ch: Any = r.get(("chassis", owner[1]))
        if ch is not None:
            flows.append(Flow(T.TO_CHASSIS, 1, match(M(T.R_CHASSIS, ip_int(ch.ip))),
                              (Load(T.R_OFPORT, ofport), _DECIDED)))
    return flows
