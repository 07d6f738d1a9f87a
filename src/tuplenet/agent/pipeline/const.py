"""Flows that do not depend on the topology: pass-through stages, output, embed/extract, drop."""

from __future__ import annotations

from functools import cache

from .. import stages as S
from .. import tables as T
from ..flow import Controller, DecTtl, Flow, Load, M, Meter, Move, OutputReg, Resubmit, match
from ..openflow.meters import MeterSpec, meter_id
from . import tracepoints

ETH_IP = 0x0800
ETH_ARP = 0x0806


def default_flows() -> list[Flow]:
    """Each stage's priority-0 flow as the registry declares it: pass to the next stage, or drop/return."""
    out = []
    for st in S.STAGES:
        if st.default is None:
            continue
        out.append(Flow(st.table, 0, (), (Resubmit(S.table(st.default)),) if st.default else ()))
    return out


def geneve_flows() -> list[Flow]:
    """Embed/extract the logical context (datapath in the VNI, the GENEVE_LAYOUT registers in the option)."""
    embed = [Move("metadata", "tun_id", 0, 0, S.VNI_BITS)]
    extract = [Move("tun_id", "metadata", 0, 0, S.VNI_BITS)]
    for reg, ofs, bits in S.GENEVE_LAYOUT:
        embed.append(Move(reg, "tun_metadata0", 0, ofs, bits))
        extract.append(Move("tun_metadata0", reg, ofs, 0, bits))
    return [Flow(T.EMBED, 0, (), tuple(embed)), Flow(T.EXTRACT, 0, (), tuple(extract))]


_AFTER_LOOPBACK = S.table(S.BY_NAME["ls_out_loopback"].default or "")


@cache
def flows() -> list[Flow]:
    fl = default_flows() + geneve_flows() + [
        # Switch ingress: clear per-switch registers (a packet may re-enter from a router).
        Flow(T.LS_IN_START, 0, (), (Load(T.R_DST_PORT, 0), Load(T.R_OFPORT, 0), Load(T.R_DECIDED, 0),
                                    Resubmit(T.LS_IN_HOOK))),
        Flow(T.LS_IN_ARP, 2, match(dl_type=ETH_ARP, arp_op=1),
             (Resubmit(T.ARP_RESPOND), Resubmit(T.LS_IN_LOOKUP))),
        Flow(T.LS_IN_OUTPUT, 2, match(M(T.R_DECIDED, 1)), (Resubmit(T.EMBED), Resubmit(T.OUTPUT))),
        Flow(T.LS_IN_OUTPUT, 1, (), (Resubmit(T.LS_OUT_START),)),
        # Switch egress.
        Flow(T.LS_OUT_LOOPBACK, 2, match(M(T.R_FLAGS, T.F_LOOPBACK, T.F_LOOPBACK)),
             (Load("in_port", 0), Resubmit(_AFTER_LOOPBACK))),
        Flow(T.LS_OUT_TO_ROUTER, 2, match(M(T.R_DECIDED, 1)), (Resubmit(T.OUTPUT),)),
        Flow(T.LS_OUT_TO_ROUTER, 1, (), (
            Move(T.R_NEXT_LR, "metadata", 0, 0, 32), Move(T.R_NEXT_LRP, T.R_SRC_PORT, 0, 0, 32),
            Load(T.R_NEXT_LR, 0), Load(T.R_NEXT_LRP, 0), Resubmit(T.LR_IN_START))),
        # Router ingress.
        Flow(T.LR_IN_START, 0, (), (Load(T.R_DST_PORT, 0), Load(T.R_FLAGS, 0, 3, 1),  # F_NAT: per router
                                    Resubmit(T.LR_IN_ICMP))),
        Flow(T.LR_IN_ICMP, 1, match(dl_type=ETH_IP), (Resubmit(T.LR_IN_TTL),)),
        Flow(T.LR_IN_ICMP, 0, (), (Resubmit(T.DROP),)),
        # TTL 0/1 never forwarded: the agent answers with ICMP time exceeded (see pinctrl).
        Flow(T.LR_IN_TTL, 0, match(dl_type=ETH_IP), (DecTtl(), Resubmit(T.LR_IN_UNSNAT))),
        # Shared tables.
        Flow(T.OUTPUT, 1, match(M(T.R_OFPORT, T.OFPORT_NONE)), (Resubmit(T.DROP),)),
        Flow(T.OUTPUT, 0, (), (OutputReg(T.R_OFPORT, 0, 16),)),
    ]
    # Every controller() goes through a meter, so a flood costs the agent a bounded packet-in rate. TTL
    # exceeded: one meter per source-IP bucket, so a VM flooding TTL-1 frames exhausts only its own bucket
    # and other sources' traceroutes are still answered; pinctrl limits per source again behind the meters.
    fl += [Flow(T.LR_IN_TTL, 2, match(M("nw_src", ttl_bucket_bits(b), TTL_BUCKET_MASK), dl_type=ETH_IP, nw_ttl=ttl),
                (Meter(ttl_meter(b)), Controller(T.OP_TTL_EXCEEDED.to_bytes(4, "big"))))
           for ttl in (0, 1) for b in range(TTL_METER_BUCKETS)]
    return fl + tracepoints.flows()


# A source's bucket is the low nibble of the last two octets of its IP: hosts of one subnet spread over 16
# buckets and the same host part in different subnets (10.0.1.2, 10.0.2.2) lands in different ones.
TTL_BUCKET_MASK = 0x00000F0F
TTL_METER_BUCKETS = 256
TTL_METER_RATE = 20  # packets/s per bucket: a traceroute needs a few
TTL_METER_BURST = 20


def ttl_bucket_bits(bucket: int) -> int:
    """The nw_src bits (under TTL_BUCKET_MASK) of bucket 0-255."""
    return ((bucket >> 4) << 8) | (bucket & 0xF)


def ttl_meter(bucket: int) -> int:
    """Meter ids: our tag in the top 16 bits; indexes 0-255 are the TTL-exceeded buckets."""
    return meter_id(bucket)


@cache
def meters() -> list[MeterSpec]:
    """The meters the constant flows use; the agent installs them before the flows (ofctrl)."""
    return [MeterSpec(ttl_meter(b), TTL_METER_RATE, TTL_METER_BURST) for b in range(TTL_METER_BUCKETS)] + \
        tracepoints.meters()
