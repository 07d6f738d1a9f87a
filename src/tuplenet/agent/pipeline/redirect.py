"""Redirect between edges (ENABLE_REDIRECT=1, 0.3 §3.9.8): when BFD says this host cannot reach a chassis
directly, the frame goes to another edge that can.

The agent watches the tunnels' `bfd_status` (OVSDB): a session that has been up and stops forwarding makes a
`("tundead", chassis)` fact, and `to_chassis` for that chassis (physical.py) then hands the frame to the
`redirect` subroutine, which picks, by BFD liveness (`bundle_load`), the tunnel to another edge (a chassis
hosting a pinned router) and flags the frame REDIRECT (carried in the Geneve option); with no other edge
alive the frame still takes its own tunnel (BFD may be down on one side only: better tried than dropped). A session that has never
been up (just enabled, or enabled on one side only) does not count as dead: traffic is never held back
while BFD starts. The edge looks the frame up again (pipeline/ondemand.py accepts
redirected frames on every host) and sends it on through its own tunnel. A frame that is already flagged
is never redirected again: if the edge cannot reach the target either, it drops it (counted by the
`twice` flow), so a frame cannot loop between edges. Only tunnels with BFD (to edges on compute hosts,
every tunnel on a gateway) can be declared dead; without BFD a tunnel always counts as alive.
"""

from __future__ import annotations

from collections.abc import Mapping

from .. import tables as T
from ..flow import BundleLoad, Flow, Load, M, Move, Resubmit, match
from ..view import Reader
from .ecmp import DEFAULT_HASH

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

REDIRECT_KEY = ("redirect",)  # local fact, present when ENABLE_REDIRECT is on
_BIT = T.F_REDIRECT.bit_length() - 1


def enabled(r: Reader) -> bool:
    return bool(r.get(REDIRECT_KEY))


def dead(r: Reader, chassis: str) -> bool:
    """Redirect is on and BFD says the tunnel to `chassis` went down."""
    return enabled(r) and bool(r.get(("tundead", chassis)))


def dead_tunnel_facts(tunnel_bfd: Mapping[str, Mapping[str, str]]) -> dict[tuple, bool]:
    """("tundead", chassis) for every BFD session that was up and is not forwarding now; one that never came
    up (starting, or enabled on one side only) keeps its tunnel in use."""
    out: dict[tuple, bool] = {}
    for chassis, st in tunnel_bfd.items():
        try:
            flaps = int(st.get("flap_count", "0") or 0)
        except ValueError:
            flaps = 0
        # Up once: it has flapped, or a side still says up (`bfd/set-forwarding false` keeps both "up").
        if st.get("forwarding") == "false" and (flaps > 0 or "up" in (st.get("state"), st.get("remote_state"))):
            out[("tundead", chassis)] = True
    return out


def pick(r: Reader, members: tuple[int, ...], dst: str = T.R_OFPORT) -> BundleLoad:
    """dst := a live member of `members` by the configured hash (0xffff when none is alive)."""
    return BundleLoad(r.get(("hash_fn",)) or DEFAULT_HASH, members, dst, 0, 16)


def redirect_flows(r: Reader, key: tuple, on: Any) -> list[Flow]:
    """The redirect subroutines, entered with reg4 = the dead tunnel's port: a fresh frame goes to a live
    other edge (flagged), or, with none alive, still to its own tunnel (a one-sided BFD loss must not cut a
    host off); a frame already redirected once is dropped (counted by the `twice` flow)."""
    if not on:
        return []
    flows = [Flow(T.REDIRECT, 2, match(M(T.R_FLAGS, T.F_REDIRECT, T.F_REDIRECT)), (Load(T.R_OFPORT, T.OFPORT_NONE),)),
             Flow(T.REDIRECT_PICK, 2, match(M(T.R_SCRATCH, T.OFPORT_NONE)), ())]
    self_id = r.self_id
    ports = []
    for chassis in sorted({r.get(k).chassis for k in r.members(("I", "pinned_lrs")) if r.get(k) is not None}):
        if chassis and chassis != self_id and (ofport := r.get(("tun", chassis))) is not None:
            ports.append(ofport)
    if ports:
        flows += [Flow(T.REDIRECT, 1, (), (pick(r, tuple(sorted(ports)), T.R_SCRATCH), Resubmit(T.REDIRECT_PICK))),
                  Flow(T.REDIRECT_PICK, 1, (), (Load(T.R_FLAGS, 1, _BIT, 1), Move(T.R_SCRATCH, T.R_OFPORT)))]
    return flows


__all__ = ["REDIRECT_KEY", "dead", "dead_tunnel_facts", "enabled", "pick", "redirect_flows"]
