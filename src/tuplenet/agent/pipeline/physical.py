"""Tunnel ingress: every Geneve port (per-chassis and flow-based) feeds the pipeline."""

from __future__ import annotations

from .. import tables as T
from ..flow import Flow, Resubmit, match


def tunnel_flows(ofport: int) -> list[Flow]:
    return [Flow(T.CLASSIFY, 2, match(in_port=ofport),
                 (Resubmit(T.EXTRACT), Resubmit(T.FROM_TUNNEL)))]
