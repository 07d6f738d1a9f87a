"""Redirect between edges (ENABLE_REDIRECT=1, 0.3 §3.9.8): when BFD says this host cannot reach a chassis
directly, the frame goes to another edge that can.

With redirect on, `to_chassis` picks a chassis's tunnel with a one-member `bundle_load` (physical.py): OVS
yields 0xffff when that tunnel's BFD is not forwarding, and the `redirect` subroutine then flags the frame
REDIRECT (carried in the Geneve option) and picks, again by BFD liveness, the tunnel to another edge (a
chassis hosting a pinned router). The edge looks the frame up again (pipeline/ondemand.py accepts
redirected frames on every host) and sends it on through its own tunnel. A frame that is already flagged
is never redirected again: if the edge cannot reach the target either, it drops it (counted by the
`twice` flow), so a frame cannot loop between edges. Only tunnels with BFD (to edges on compute hosts,
every tunnel on a gateway) can be declared dead; without BFD a tunnel always counts as alive.
"""

from __future__ import annotations

from typing import Any

from .. import tables as T
from ..flow import BundleLoad, Flow, Load, M, match
from ..view import Reader
from .ecmp import DEFAULT_HASH

REDIRECT_KEY = ("redirect",)  # local fact, present when ENABLE_REDIRECT is on
_BIT = T.F_REDIRECT.bit_length() - 1


def enabled(r: Reader) -> bool:
    return bool(r.get(REDIRECT_KEY))


def pick(r: Reader, members: tuple[int, ...]) -> BundleLoad:
    """reg4 := a live member of `members` by the configured hash (0xffff when none is alive)."""
    return BundleLoad(r.get(("hash_fn",)) or DEFAULT_HASH, members, T.R_OFPORT, 0, 16)


def redirect_flows(r: Reader, key: tuple, on: Any) -> list[Flow]:
    """The redirect subroutine: a dead tunnel (reg4 = 0xffff) sends a fresh frame to another edge."""
    if not on:
        return []
    dead = M(T.R_OFPORT, T.OFPORT_NONE)
    flows = [Flow(T.REDIRECT, 2, match(dead, M(T.R_FLAGS, T.F_REDIRECT, T.F_REDIRECT)), ())]
    self_id = r.self_id
    ports = []
    for chassis in sorted({r.get(k).chassis for k in r.members(("I", "pinned_lrs")) if r.get(k) is not None}):
        if chassis and chassis != self_id and (ofport := r.get(("tun", chassis))) is not None:
            ports.append(ofport)
    if ports:
        flows.append(Flow(T.REDIRECT, 1, match(dead), (Load(T.R_FLAGS, 1, _BIT, 1), pick(r, tuple(sorted(ports))))))
    return flows


__all__ = ["REDIRECT_KEY", "enabled", "pick", "redirect_flows"]
