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
