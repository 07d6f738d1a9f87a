"""Flows that do not depend on the topology: pass-through stages, output, embed/extract, drop."""

from __future__ import annotations

from functools import cache

from .. import tables as T
from ..flow import Controller, DecTtl, Flow, Load, M, Meter, Move, OutputReg, Resubmit, match
from ..openflow.meters import MeterSpec, meter_id

ETH_IP = 0x0800
ETH_ARP = 0x0806


@cache
def flows() -> list[Flow]:
    fl = [
        Flow(T.CLASSIFY, 0),
        # Switch ingress: clear per-switch registers (a packet may re-enter from a router).
        Flow(T.LS_IN_START, 0, (), (Load(T.R_DST_PORT, 0), Load(T.R_OFPORT, 0), Load(T.R_DECIDED, 0),
                                    Resubmit(T.LS_IN_HOOK))),
        Flow(T.LS_IN_HOOK, 0, (), (Resubmit(T.THIRD_PARTY),)),
        Flow(T.THIRD_PARTY, 0, (), (Resubmit(T.LS_IN_ARP_CTL),)),
        Flow(T.LS_IN_ARP_CTL, 0, (), (Resubmit(T.LS_IN_ARP),)),
        Flow(T.LS_IN_ARP, 2, match(dl_type=ETH_ARP, arp_op=1),
             (Resubmit(T.ARP_RESPOND), Resubmit(T.LS_IN_LOOKUP))),
        Flow(T.LS_IN_ARP, 0, (), (Resubmit(T.LS_IN_LOOKUP),)),
        Flow(T.LS_IN_LOOKUP, 0, (), (Resubmit(T.DROP),)),
        Flow(T.LS_IN_OUTPUT, 2, match(M(T.R_DECIDED, 1)), (Resubmit(T.EMBED), Resubmit(T.OUTPUT))),
        Flow(T.LS_IN_OUTPUT, 1, (), (Resubmit(T.LS_OUT_START),)),
        # Switch egress.
        Flow(T.LS_OUT_START, 0, (), (Resubmit(T.LS_OUT_LOOPBACK),)),
        Flow(T.LS_OUT_LOOPBACK, 2, match(M(T.R_FLAGS, T.F_LOOPBACK, T.F_LOOPBACK)),
             (Load("in_port", 0), Resubmit(T.LS_OUT_PORT))),
        Flow(T.LS_OUT_LOOPBACK, 0, (), (Resubmit(T.LS_OUT_PORT),)),
        Flow(T.LS_OUT_PORT, 0, (), (Resubmit(T.DROP),)),
        Flow(T.LS_OUT_TO_ROUTER, 2, match(M(T.R_DECIDED, 1)), (Resubmit(T.OUTPUT),)),
        Flow(T.LS_OUT_TO_ROUTER, 1, (), (
            Move(T.R_NEXT_LR, "metadata", 0, 0, 32), Move(T.R_NEXT_LRP, T.R_SRC_PORT, 0, 0, 32),
            Load(T.R_NEXT_LR, 0), Load(T.R_NEXT_LRP, 0), Resubmit(T.LR_IN_START))),
        # Router ingress.
        Flow(T.LR_IN_START, 0, (), (Load(T.R_DST_PORT, 0), Resubmit(T.LR_IN_ICMP))),
        Flow(T.LR_IN_ICMP, 1, match(dl_type=ETH_IP), (Resubmit(T.LR_IN_TTL),)),
        Flow(T.LR_IN_ICMP, 0, (), (Resubmit(T.DROP),)),
        # TTL 0/1 never forwarded: the agent answers with ICMP time exceeded (see pinctrl).
        Flow(T.LR_IN_TTL, 0, match(dl_type=ETH_IP), (DecTtl(), Resubmit(T.LR_IN_UNSNAT))),
        Flow(T.LR_IN_UNSNAT, 0, (), (Resubmit(T.LR_IN_DNAT),)),
        Flow(T.LR_IN_DNAT, 0, (), (Resubmit(T.LR_IN_ROUTE),)),
        Flow(T.LR_IN_ROUTE, 0, (), (Resubmit(T.DROP),)),
        Flow(T.LR_IN_ECMP, 0, (), (Resubmit(T.LR_OUT_START),)),
        # Router egress.
        Flow(T.LR_OUT_START, 0, (), (Resubmit(T.LR_OUT_UNDNAT),)),
        Flow(T.LR_OUT_UNDNAT, 0, (), (Resubmit(T.LR_OUT_SNAT),)),
        Flow(T.LR_OUT_SNAT, 0, (), (Resubmit(T.LR_OUT_NEXTHOP),)),
        Flow(T.LR_OUT_NEXTHOP, 0, (), (Resubmit(T.LR_OUT_TO_SWITCH),)),
        Flow(T.LR_OUT_TO_SWITCH, 0, (), (Resubmit(T.DROP),)),
        Flow(T.LS_MAC_BIND, 0),  # unknown next hop: the zero MAC stays and the switch drops the packet
        # Shared tables.
        Flow(T.TO_CHASSIS, 0),  # no tunnel (yet): the output stays undecided and the packet is dropped
        Flow(T.OUTPUT, 1, match(M(T.R_OFPORT, T.OFPORT_NONE)), (Resubmit(T.DROP),)),
        Flow(T.OUTPUT, 0, (), (OutputReg(T.R_OFPORT, 0, 16),)),
        Flow(T.EMBED, 0, (), (
            Move("metadata", "tun_id", 0, 0, 24),
            Move(T.R_SRC_PORT, "tun_metadata0", 0, 0, 16),
            Move(T.R_DST_PORT, "tun_metadata0", 0, 16, 16),
            Move(T.R_FLAGS, "tun_metadata0", 0, 32, 32))),
        Flow(T.EXTRACT, 0, (), (
            Move("tun_id", "metadata", 0, 0, 24),
            Move("tun_metadata0", T.R_SRC_PORT, 0, 0, 16),
            Move("tun_metadata0", T.R_DST_PORT, 16, 0, 16),
            Move("tun_metadata0", T.R_FLAGS, 32, 0, 32))),
        Flow(T.FROM_TUNNEL, 0, (), (Resubmit(T.LS_OUT_START),)),
        Flow(T.DROP, 0),
    ]
    # Every controller() goes through a meter, so a flood costs the agent a bounded packet-in rate. TTL
    # exceeded: one meter per source-IP bucket (low bits of nw_src), so one VM flooding TTL-1 frames
    # exhausts only its own bucket and others' traceroutes are still answered (pinctrl limits per source
    # again, behind the meters).
    fl += [Flow(T.LR_IN_TTL, 2, match(M("nw_src", b, TTL_METER_BUCKETS - 1), dl_type=ETH_IP, nw_ttl=ttl),
                (Meter(ttl_meter(b)), Controller(T.OP_TTL_EXCEEDED.to_bytes(4, "big"))))
           for ttl in (0, 1) for b in range(TTL_METER_BUCKETS)]
    return fl


TTL_METER_BUCKETS = 64  # a power of two: the bucket is nw_src & (TTL_METER_BUCKETS - 1)
TTL_METER_RATE = 50  # packets/s per bucket: a traceroute needs a few
TTL_METER_BURST = 50


def ttl_meter(bucket: int) -> int:
    """Meter ids: our tag in the top 16 bits; indexes 0-63 are the TTL-exceeded buckets."""
    return meter_id(bucket)


@cache
def meters() -> list[MeterSpec]:
    """The meters the constant flows use; the agent installs them before the flows (ofctrl)."""
    return [MeterSpec(ttl_meter(b), TTL_METER_RATE, TTL_METER_BURST) for b in range(TTL_METER_BUCKETS)]
