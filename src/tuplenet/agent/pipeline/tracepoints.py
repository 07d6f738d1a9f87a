"""Live-trace points (issue 11 §3, reference §3.9.10): where a marked packet reports to the agent.

A traced packet carries TRACE and its command id in reg10 (stages.REGISTERS), and reg10 travels in the
Geneve option, so the mark crosses hosts. Every packet arriving by tunnel runs `INGRESS_REPORT`: a clone
that looks the packet up in `trace_point`, where only marked packets match and are copied to the agent
through a meter (the original is never held or rate-limited: the clone carries the meter). Unmarked packets
end the clone in the stage's return flow, so the flows are always present and cost one lookup on tunnel
ingress; nothing is installed per trace. The drop stage reports marked packets too (they end there anyway). The agent holding the source port injects the packet (classify
clears only the flag bits 0-7 of reg10, so the mark survives it) and the agents report in
agent/livetrace.py.
"""

from __future__ import annotations

from functools import cache

from .. import stages as S
from .. import tables as T
from ..flow import Clone, Controller, Flow, M, Meter, Resubmit, match
from ..openflow.meters import MeterSpec, meter_id

TRACE_POINT = S.table("trace_point")
OP_TRACE = T.OP_TRACE  # 0.3's trace opcode (reference §3.10); the userdata's 5th byte is the trace point's table
METER_INDEX = 0x400  # TTL-exceeded buckets use 0-255, on-demand 0x300
METER_RATE = 200  # reports per second per host: a trace makes one per tunnel crossing
METER_BURST = 200

# In physical.py's tunnel ingress, between extract (reg10 restored from the Geneve option) and from_tunnel.
# OVS translates this clone inline (it holds only a resubmit), so over the meter's rate the marked frame
# itself is dropped, not just its report. Only trace probes carry the mark: a probe lost to a trace flood
# shows as a path ending at that host, never user traffic lost.
INGRESS_REPORT = Clone((Resubmit(TRACE_POINT),))


def userdata(table: int) -> bytes:
    return OP_TRACE.to_bytes(4, "big") + bytes([table & 0xFF])


@cache
def flows() -> list[Flow]:
    """Tunnel arrival (through INGRESS_REPORT), and the drop stage: a marked packet that the switch drops
    there says so (the walk may have assumed otherwise, e.g. a bundle member whose tunnel is down)."""
    marked = match(M(T.R_FLAGS, T.F_TRACE, T.F_TRACE))
    meter = Meter(meter_id(METER_INDEX))
    return [Flow(TRACE_POINT, 1, marked, (meter, Controller(userdata(S.table("from_tunnel"))))),
            Flow(T.DROP, 1, marked, (meter, Controller(userdata(T.DROP))))]


@cache
def meters() -> list[MeterSpec]:
    return [MeterSpec(meter_id(METER_INDEX), METER_RATE, METER_BURST)]
