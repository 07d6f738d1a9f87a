"""The on-demand miss meter is shared per source bucket, not per host: a VM scanning addresses nobody has
(hundreds of misses a second) must not use up the learning of the other VMs on its host, nor, on a host
without a helper (where the meter gates the paused packet itself), make their first packets drop."""

from __future__ import annotations

import pytest
from topo_helpers import build_view, tutorial_facts

from tuplenet.agent import tables as T
from tuplenet.agent.engine import Engine
from tuplenet.agent.flow import Clone, Controller, Meter, Resubmit, ip_int
from tuplenet.agent.pipeline.ondemand import MODE_KEY
from tuplenet.model import LR, Chassis
from tuplenet.sandbox import packets as P

VM1 = ("f2:01:0a:0a:01:02", "10.10.1.2")  # on hv1 (this host)
NEIGHBOUR = ("f2:01:0a:0a:01:05", "10.10.1.5")  # another VM here, one address up


def _engine(helper: bool) -> Engine:
    f = tutorial_facts()
    f[MODE_KEY] = True
    if helper:
        f[("LR", "LR-edge")] = LR("LR-edge", 30, "hv3")
        f[("chassis", "hv3")] = Chassis("hv3", "192.168.100.4", 1)
        f[("live", "hv3")] = True
    e = Engine(build_view(f))
    e.full()
    return e


def _hits(flow, pkt: dict) -> bool:
    return all((pkt.get(m.field, 0) & (m.mask if m.mask is not None else -1)) == m.value for m in flow.match)


def _best(e: Engine, table: int, pkt: dict):
    cands = [f for f in e.active.values() if f.table == table and _hits(f, pkt)]
    return max(cands, key=lambda f: f.priority) if cands else None


def _miss_meter(e: Engine, pkt: dict) -> tuple[int, bool]:
    """The meter a missed frame passes on its way to the agent, and whether the agent gets it paused."""
    flow = _best(e, T.LS_IN_LOOKUP, pkt)
    assert flow is not None and flow.priority == 1  # the miss flow
    meters, pause = [a.meter_id for a in flow.actions if isinstance(a, Meter)], False
    subs = [a for a in flow.actions if isinstance(a, Resubmit) and a.table == T.LS_IN_ONDEMAND]
    subs += [s for a in flow.actions if isinstance(a, Clone) for s in a.actions
             if isinstance(s, Resubmit) and s.table == T.LS_IN_ONDEMAND]
    for _ in subs:
        sub = _best(e, T.LS_IN_ONDEMAND, pkt)
        meters += [a.meter_id for a in sub.actions if isinstance(a, Meter)]
        pause |= any(isinstance(a, Controller) and a.pause for a in sub.actions)
    pause |= any(isinstance(a, Controller) and a.pause for a in flow.actions)
    (meter,) = meters
    return meter, pause


def _pkt(src: tuple[str, str], frame: bytes) -> dict:
    f = P.parse(frame)
    pkt = {"metadata": 1, "dl_dst": int(f.eth_dst.replace(":", ""), 16), "dl_type": f.eth_type,
           T.R_FLAGS: 0}
    if f.eth_type == 0x0806:
        pkt.update(arp_op=f.arp_op, arp_spa=ip_int(f.arp_spa), arp_tpa=ip_int(f.arp_tpa))
    else:
        pkt.update(nw_src=ip_int(f.ip_src), nw_dst=ip_int(f.ip_dst))
    return pkt


@pytest.mark.parametrize("helper", [True, False])
def test_a_scanning_vm_and_its_neighbour_pass_different_miss_meters(helper: bool) -> None:
    e = _engine(helper)
    for make in (lambda s: P.arp_request(s[0], s[1], "10.10.1.99"),
                 lambda s: P.icmp_frame(s[0], "f2:01:0a:0a:01:63", s[1], "10.10.1.99")):
        scanner = _miss_meter(e, _pkt(VM1, make(VM1)))
        neighbour = _miss_meter(e, _pkt(NEIGHBOUR, make(NEIGHBOUR)))
        assert scanner[0] != neighbour[0]
        assert scanner[1] == neighbour[1] == (not helper)  # paused only without a helper
