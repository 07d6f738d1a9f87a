"""On-demand flows (0.3's ONDEMAND=1, reference §3.6, §3.9.7): what a host programs for remote ports.

An on-demand host computes flows for its own ports, every router port, and only those remote ports its
ports have talked to (the agent's demand set, agent/ondemand.py, kept in the view as `("want", ls, lsp)`
facts) and the chassis they sit on (`("wantch", chassis)`). A lookup miss is sent to the agent (metered) and,
flagged REDIRECT in the Geneve option, to a fully programmed chassis (a host of a pinned router, run with
ONDEMAND=0), which looks it up again and delivers it: no first packet is lost. A redirected frame is never
redirected again (the miss flow does not match the flag), so a helper that lacks the destination too drops
it instead of looping.

Every host (on-demand or not) accepts redirected frames, so a full-mode helper and the destination host
both re-run the lookup for them.
"""

from __future__ import annotations

from .. import tables as T
from ..binding import claiming_key
from ..flow import Clone, Controller, Flow, Load, M, Meter, Move, Resubmit, ip_int, match
from ..openflow.meters import MeterSpec, meter_id
from ..view import Reader
from .const import ETH_ARP, ETH_IP

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MODE_KEY = ("ondemand",)  # local fact: True = on-demand, False = full mode (absent in pure tests = full)
# The on-demand packet-in meters: one per source bucket (the low 4 bits of the IPv4 / ARP sender address,
# so a host's VMs spread over 16 buckets), indexes 0x310-0x31F, and 0x300 for anything else (TTL-exceeded
# buckets use 0-255). A VM scanning addresses exhausts its bucket only: the other VMs' misses are still
# learned, and on a host without a helper (where the meter gates the paused packet itself) not dropped. A
# miss above the rate is still redirected, only its flows come later.
METER_INDEX = 0x300
METER_RATE = 500
METER_BURST = 100
SOURCE_BUCKETS = 16
SOURCE_METER_INDEX = 0x310
SOURCE_RATE = 100  # per bucket: 1,600 misses/s per host at most
SOURCE_BURST = 100

_REDIRECT_BIT = T.F_REDIRECT.bit_length() - 1
_OPCODE = T.OP_UNKNOWN_DST.to_bytes(4, "big")
_MULTICAST = 0x010000000000


def want_key(ls: str, lsp: str) -> tuple:
    return ("want", ls, lsp)


def wantch_key(chassis: str) -> tuple:
    return ("wantch", chassis)


def enabled(r: Reader) -> bool:
    return bool(r.get(MODE_KEY))


def untouched(r: Reader, key: tuple, lsp: Any) -> bool:
    """An ordinary remote port the host has not talked to: on an on-demand host it has no flows."""
    if not enabled(r):
        return False
    self_id = r.self_id
    if lsp.chassis and lsp.chassis == self_id:
        return False
    if r.get(claiming_key(key)):  # being claimed here: a local port already
        return False
    return not r.get(want_key(key[1], key[2]))


def chassis_counted(r: Reader, chassis: str) -> bool:
    """Whether flows and a tunnel to `chassis` exist here: always in full mode; on-demand only for this
    host, hosts of pinned routers (where routers run and helpers live) and chassis of touched ports."""
    if not enabled(r) or chassis == r.self_id:
        return True
    return bool(r.members(("I", "lr_pinned", chassis))) or bool(r.get(wantch_key(chassis)))


def helper(r: Reader) -> Any:
    """The chassis redirected frames go to: a live host of a pinned router other than this one (the
    first by name, so every on-demand host picks the same); a known but not live one if none is live."""
    self_id = r.self_id
    best = None
    for lr_key in r.members(("I", "pinned_lrs")):
        lr = r.get(lr_key)
        if lr is None or not lr.chassis or lr.chassis == self_id:
            continue
        ch = r.get(("chassis", lr.chassis))
        if ch is None:
            continue
        rank = (r.get(("live", lr.chassis)) is None, lr.chassis)
        if best is None or rank < best[0]:
            best = (rank, ch)
    return None if best is None else best[1]


def redirect_flows() -> list[Flow]:
    """Every host: a redirected frame is looked up again in its switch (its destination port is unknown
    to the sender). A router's miss carries the zero MAC: resolve the next hop (its destination IP) first."""
    redirected = M(T.R_FLAGS, T.F_REDIRECT, T.F_REDIRECT)
    return [
        Flow(T.FROM_TUNNEL, 2, match(redirected, dl_type=ETH_IP, dl_dst=0), (
            Move("nw_dst", T.R_NEXT_HOP, 0, 0, 32), Resubmit(T.LS_MAC_BIND), Resubmit(T.LS_IN_ARP))),
        Flow(T.FROM_TUNNEL, 1, match(redirected), (Resubmit(T.LS_IN_ARP),)),
    ]


def miss_flows(r: Reader) -> list:
    """On-demand hosts: an IPv4 unicast or ARP request frame whose destination is unknown here goes to the
    agent (metered per source bucket, in the ls_in_ondemand subroutine) and, flagged, to the helper chassis;
    with no helper it is paused there until the agent has installed its destination's flows, then looked up
    again (a router's next hop resolved again first). Other frames (multicast, IPv6) stay dropped."""
    h = helper(r)
    flagged = Load(T.R_FLAGS, 1, _REDIRECT_BIT, 1)  # never twice: the miss flows do not match it
    if h is None:
        # Nowhere to send it: the packet itself waits (a continuation, the meter drops it over the rate).
        actions: tuple = (flagged, Resubmit(T.LS_IN_ONDEMAND), Resubmit(T.LS_MAC_BIND), Resubmit(T.LS_IN_ARP))
    else:
        # The frame to the helper first, then the metered copy to the agent. Not the other way round: OVS
        # translates a clone that holds only a resubmit inline (it counts as reversible), so the meter's
        # drop in the datapath ended the whole frame, redirect included.
        actions = (Clone((flagged, Load(T.R_CHASSIS, ip_int(h.ip)), Resubmit(T.TO_CHASSIS),
                          Resubmit(T.LS_IN_OUTPUT))), Resubmit(T.LS_IN_ONDEMAND))
    fresh = M(T.R_FLAGS, 0, T.F_REDIRECT)
    return [
        Flow(T.LS_IN_LOOKUP, 1, match(fresh, M("dl_dst", 0, _MULTICAST), dl_type=ETH_IP), actions),
        Flow(T.LS_IN_LOOKUP, 1, match(fresh, dl_type=ETH_ARP, arp_op=1), actions),
        *agent_flows(pause=h is None),
    ]


def agent_flows(pause: bool) -> list:
    """The ls_in_ondemand subroutine: to the agent through the meter of the sender's bucket."""
    ctl = Controller(_OPCODE, pause=pause)
    mask = SOURCE_BUCKETS - 1
    out: list = [Flow(T.LS_IN_ONDEMAND, 0, (), (Meter(meter_id(METER_INDEX)), ctl)),
                 MeterSpec(meter_id(METER_INDEX), METER_RATE, METER_BURST)]
    for b in range(SOURCE_BUCKETS):
        mid = meter_id(SOURCE_METER_INDEX + b)
        out += [Flow(T.LS_IN_ONDEMAND, 1, match(M("nw_src", b, mask), dl_type=ETH_IP), (Meter(mid), ctl)),
                Flow(T.LS_IN_ONDEMAND, 1, match(M("arp_spa", b, mask), dl_type=ETH_ARP), (Meter(mid), ctl)),
                MeterSpec(mid, SOURCE_RATE, SOURCE_BURST)]
    return out


def mode_flows(r: Reader, key: tuple, on: Any) -> list:
    """The owner of the mode fact: redirect acceptance everywhere, miss handling on on-demand hosts."""
    return redirect_flows() + (miss_flows(r) if on else [])
