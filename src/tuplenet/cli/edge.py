"""`tpctl edge init|add|remove|show`: 0.3's edge-operate.py as tpctl commands (control/edges.py does the work).

    tpctl edge init CHASSIS PHY_BRIDGE VIP/LEN VIRT/LEN EXT_GW [INNER/LEN] [CENTRAL]
    tpctl edge add CHASSIS PHY_BRIDGE VIP/LEN [EXT_GW]
    tpctl edge remove VIP [DRAIN_SECONDS]
    tpctl edge show
"""

from __future__ import annotations

import sys
from typing import Any

from .context import Ctx, say


def _describe(road: Any) -> str:
    return (f"edge {road.edge} on chassis {road.chassis}: vip {road.vip} on {road.outside} (patch to "
            f"{road.phy_bridge}), transit {road.transit} {road.inner} <-> {road.central} {road.central_ip}, "
            f"default route via {road.ext_gw}, virtual space {road.virt}")


def init(ctx: Ctx, a: list[str]) -> int:
    from tuplenet.control.edges import DEFAULT_INNER, EdgeSpec

    spec = EdgeSpec(a[0], a[1], a[2], virt=a[3], ext_gw=a[4], inner=a[5] if len(a) > 5 else DEFAULT_INNER,
                    central=a[6] if len(a) > 6 else None)
    return say(_describe(ctx.ctl.edges.init(spec)) + " created")


def add(ctx: Ctx, a: list[str]) -> int:
    from tuplenet.control.edges import EdgeSpec

    road = ctx.ctl.edges.add(EdgeSpec(a[0], a[1], a[2], ext_gw=a[3] if len(a) > 3 else None))
    return say(_describe(road) + " created; it takes ECMP traffic once BFD to it is up")


def remove(ctx: Ctx, a: list[str]) -> int:
    from tuplenet.control.errors import InvalidArgument

    drain = 1.0
    if len(a) > 1:
        try:
            drain = float(a[1])
        except ValueError:
            drain = -1.0
        if not 0 <= drain <= 3600:
            raise InvalidArgument(f"invalid drain time {a[1]!r}: seconds between 0 and 3600")
    road = ctx.ctl.edges.remove(a[0], drain=drain)
    return say(f"edge {road.edge} (vip {road.vip}) drained and deleted")


def show(ctx: Ctx, a: list[str]) -> int:
    roads = ctx.ctl.edges.list_roads()
    if ctx.as_json:
        import json

        return say(json.dumps([r.as_dict() for r in roads]))
    if not roads:
        return say("empty data set")
    for r in roads:
        state = "in ECMP" if r.in_ecmp else "NOT in ECMP (draining or half removed: run edge remove again)"
        sys.stdout.write(f"{r.edge}:\n  - chassis   : {r.chassis}\n  - vip       : {r.vip} ({r.outside}, patch "
                         f"{r.patch_port} to {r.phy_bridge})\n  - transit   : {r.transit} {r.inner} <-> "
                         f"{r.central} {r.central_ip}\n  - routes    : 0.0.0.0/0 via {r.ext_gw}; {r.virt} via "
                         f"{r.central_ip}\n  - state     : {state}\n\n")
    return 0


COMMANDS = {
    "init": (5, 7, "CHASSIS PHY_BRIDGE VIP/LEN VIRT/LEN EXT_GW [INNER/LEN] [CENTRAL]", init),
    "add": (3, 4, "CHASSIS PHY_BRIDGE VIP/LEN [EXT_GW]", add),
    "remove": (1, 2, "VIP [DRAIN_SECONDS]", remove),
    "show": (0, 0, "", show),
}
