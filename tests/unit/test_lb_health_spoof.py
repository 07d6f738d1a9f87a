"""Probe replies count only from the port the probe went to. Address spaces overlap between tenants: another
tenant's VM on this chassis may own the same IP as a backend (in its own switch, itself a checked backend),
and its segments to the monitor address reach the same agent. A reset from it must not take the other
tenant's backend out of service."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from tuplenet.agent import healthprobe as hp
from tuplenet.agent import tables as T
from tuplenet.agent.healthcheck import Target
from tuplenet.agent.healthcheck_service import HealthService
from tuplenet.agent.healthprobe import ACK, RST, SYN, Segment

VM_MAC = "f2:01:0a:0a:01:02"
BACKEND_OFPORT = 5
OTHER_TENANT_OFPORT = 9  # same IP 10.10.1.2, another switch, same chassis


@dataclass
class Conn:
    out: list = field(default_factory=list)

    def packet_out(self, data: bytes, actions: tuple, in_port: int = 0) -> None:
        self.out.append((data, actions))


@dataclass
class Pin:
    data: bytes
    metadata: dict
    userdata: bytes = T.OP_LB_HEALTH.to_bytes(4, "big")
    continuation: bytes | None = None


def _service() -> tuple[HealthService, Conn, Target, Segment]:
    conn = Conn()
    svc = HealthService(conn, None, clock=lambda: 1.0)  # not started: the test runs its steps
    svc.checker.rng = random.Random(7)
    t = Target("LS", "LS-A", "web", "10.10.1.2", 80, "tcp", 1.0, 1, 1, BACKEND_OFPORT, VM_MAC)
    svc.checker.set_targets({t.key: t}, 0.0)
    svc.checker.tick(1.0)
    (syn,) = [hp.parse(data) for data, _ in conn.out]
    assert syn is not None and syn.flags == SYN
    return svc, conn, t, syn


def _deliver(svc: HealthService, seg: Segment, in_port: int) -> None:
    pin = Pin(hp.tcp_frame(VM_MAC, hp.MONITOR_MAC, seg), {"in_port": in_port, "metadata": 1})
    assert svc.offer(pin)
    svc._handle(svc._q.get_nowait(), set())


def test_a_reset_from_another_port_with_the_backends_address_is_ignored() -> None:
    svc, _conn, t, syn = _service()
    rst = Segment(t.ip, hp.MONITOR_IP, t.port, syn.src_port, 0, syn.seq + 1, RST | ACK, b"")
    _deliver(svc, rst, OTHER_TENANT_OFPORT)
    assert svc.checker.is_up(t.key) and svc.checker.stats.ignored == 1 and svc.checker.stats.failed == 0
    assert len(svc.checker.probes) == 1  # the probe still waits for the backend's own answer
    _deliver(svc, rst, BACKEND_OFPORT)  # the backend's own reset counts (fall=1)
    assert not svc.checker.is_up(t.key) and svc.checker.stats.failed == 1


def test_a_syn_ack_from_another_port_does_not_keep_a_backend_up() -> None:
    svc, _conn, t, syn = _service()
    ok = Segment(t.ip, hp.MONITOR_IP, t.port, syn.src_port, 4000, syn.seq + 1, SYN | ACK, b"")
    _deliver(svc, ok, OTHER_TENANT_OFPORT)
    assert svc.checker.stats.ok == 0 and svc.checker.stats.ignored == 1
    _deliver(svc, ok, BACKEND_OFPORT)
    assert svc.checker.stats.ok == 1 and svc.checker.is_up(t.key)


# ------------------------------------------------------------------------------------------ monitor flows
def _lb(backends: str):
    from tuplenet.model.lb import decode_lb

    return decode_lb("lr_lb", ("LR-central", "web"), {"vip": "10.10.9.9", "port": "80", "backends": backends,
                                                       "check": "tcp", "interval": "2", "rise": "3", "fall": "4"})


def _catches(self_id: str, extra: dict | None = None) -> list:
    from topo_helpers import build_view, tutorial_facts

    from tuplenet.agent.pipeline.lbhealth import LS_IN_HC, health_flows
    from tuplenet.agent.view import Reader

    f = {**tutorial_facts(self_id), **(extra or {})}
    # vm1 10.10.1.2 (LS-A, ofport 1) and vm3 10.10.2.2 (LS-B, ofport 2) on hv1: same low address bits
    out = health_flows(Reader(build_view(f)), ("lr_lb", "LR-central", "web"), _lb("10.10.1.2:80;10.10.2.2:80"))
    return [fl for fl in out if getattr(fl, "table", None) == LS_IN_HC]


def test_each_local_backends_replies_pass_a_meter_of_their_own_port() -> None:
    """A tenant flooding the monitor address from its own (checked) backend exhausts only that port's meter:
    the catch flow matches the backend's port, and its meter is that port's, never one shared with another
    tenant's backend (the old buckets by address shared a meter between 10.10.1.2 and 10.10.2.2)."""
    from tuplenet.agent.flow import Meter

    catches = _catches("hv1")
    assert len(catches) == 2
    by_port = {}
    for fl in catches:
        (port,) = [m.value for m in fl.match if m.field == "in_port"]
        (meter,) = [a.meter_id for a in fl.actions if isinstance(a, Meter)]
        by_port[port] = meter
    assert set(by_port) == {1, 2} and by_port[1] != by_port[2]


def test_catch_flows_only_where_the_backend_is_bound() -> None:
    """Replies reach the agent that probes them, on the backend's chassis; other hosts carry no catch flow
    (and no meter) for it."""
    assert _catches("hv2") == []
