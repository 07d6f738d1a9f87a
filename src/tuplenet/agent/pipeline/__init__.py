"""Pure flow generation: one module per stage family; `compute(owner)` dispatches by owner kind.

Owners return flows plus, where they need them, groups, meters and OVSDB wishes (agent/outputs.py);
DERIVED lists the owner kinds made of facts (the engine keeps their membership)."""

from __future__ import annotations

from ..flow import Flow
from ..view import Reader
from . import acl, const, ecmp, gateway, lb, mirror, nat, ondemand, ovswishes, physical, routing, switching
from .lbhealth import health_flows as lb_health_flows
from .redirect import redirect_flows
from .untunnel import DSR_NETS, dsr_flows, dsr_port_flows

OWNER_KINDS = ("lsp", "lrp", "lsr", "lnat", "chassis", "tun", "mirror", "ipfix", "ondemand", "neigh")
OWNER_KINDS += ("redirect",)  # ENABLE_REDIRECT: pipeline/redirect.py
OWNER_KINDS += ("ls_lb", "lr_lb")  # load balancers: pipeline/lb.py; their health-check monitor flows: lbhealth.py
OWNER_KINDS += ("untunnel",)  # ENABLE_UNTUNNEL: pipeline/untunnel.py (DSR through br-int-dsrgw)
DERIVED = (ovswishes.TUNNELS, ecmp.ECMP_GROUPS, acl.ACLS, DSR_NETS)


def compute(r: Reader, owner: tuple) -> list[Flow]:
    """All flows (and other outputs) `owner` contributes, reading the view through `r` (which records
    dependencies)."""
    kind = owner[0]
    if kind == "const":
        return const.flows() + const.meters()
    obj = r.get(owner)
    if obj is None:
        return []
    if kind == "lsp":
        return (switching.lsp_flows(r, owner, obj) + ovswishes.patch_wishes(r, owner, obj)
                + gateway.patch_flows(r, owner, obj) + dsr_port_flows(r, owner, obj))
    if kind == "lrp":
        return routing.lrp_flows(r, owner, obj)
    if kind == "lsr":
        return routing.lsr_flows(r, owner, obj)
    if kind == "lnat":
        return nat.lnat_flows(r, owner, obj)
    if kind == "neigh":
        return gateway.neigh_flows(r, owner, obj)
    if kind == "chassis":
        return physical.chassis_flows(r, owner, obj)
    if kind == "tun":
        return physical.tunnel_flows(obj)
    if kind == "ipfix":
        return ovswishes.ipfix_wishes(owner, obj)  # type: ignore[return-value]
    if kind == "untunnel":
        return dsr_flows(r, owner, obj)
    if kind == "redirect":
        return redirect_flows(r, owner, obj)
    if kind == "ondemand":
        return ondemand.mode_flows(r, owner, obj)
    if kind in ("ls_lb", "lr_lb"):
        return lb.lb_flows(r, owner, obj) + lb_health_flows(r, owner, obj)
    if kind == "mirror":
        return mirror.mirror_wishes(r, owner, obj)  # type: ignore[return-value]
    return []
