"""Load-balancer health checks on simulated hosts: each agent probes the backends bound on its chassis by
packet-out to the VM port, the VM's answers come back through the switch's monitor flows, and verdicts
appear / vanish as leased etcd keys (`communicate/lb_health/...`).

The "VMs" are dummy ports, so the test plays the guest's TCP stack: a responder thread reads the probes
off the port's pcap and injects SYN-ACK (listening), RST (service killed) or nothing (VM hung).
"""

from __future__ import annotations

import threading
import time

from agent_cluster import Cluster, tutorial
from tuplenet.agent import healthprobe as hp
from tuplenet.agent.healthprobe import ACK, RST, SYN, Segment
from tuplenet.model import LS
from tuplenet.model.lb import decode_lb
from tuplenet.sandbox import packets as P
from tuplenet.sandbox.procs import wait_for

VM1 = ("vm1", "10.10.1.2", "f2:01:0a:0a:01:02")
VM2 = ("vm2", "10.10.1.3", "f2:01:0a:0a:01:03")
INTERVAL = 1.0
KEY1 = "communicate/lb_health/LS/LS-A/web/10.10.1.2:80"
KEY2 = "communicate/lb_health/LS/LS-A/web/10.10.1.3:80"


class Guest:
    """Answers the agent's probes on one dummy VM port, the way a guest kernel would."""

    def __init__(self, c: Cluster, host: str, vm: tuple[str, str, str], mode: str = "listen",
                 next_hop_mac: str = hp.MONITOR_MAC) -> None:
        self.c, self.host, (self.port, self.ip, self.mac) = c, host, vm
        self.next_hop_mac = next_hop_mac  # the monitor MAC (on-link route) or the gateway's (default route)
        self.mode = mode
        self.probes = 0
        self._stop = threading.Event()
        self._seen = c.host(host).tx_mark(self.port)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        h = self.c.host(self.host)
        while not self._stop.is_set():
            frames = h.tx_packets(self.port)[self._seen:]
            self._seen += len(frames)
            for frame in frames:
                seg = hp.parse(frame)
                if seg is None or seg.src_ip != hp.MONITOR_IP or seg.dst_ip != self.ip or not seg.flags & SYN:
                    continue
                self.probes += 1
                if self.mode == "silent":
                    continue
                flags, seq = (SYN | ACK, 5000) if self.mode == "listen" else (RST | ACK, 0)
                reply = Segment(self.ip, hp.MONITOR_IP, seg.dst_port, seg.src_port, seq, seg.seq + 1, flags, b"")
                h.inject(self.port, hp.tcp_frame(self.mac, self.next_hop_mac, reply))
            self._stop.wait(0.01)


def _value(c: Cluster, key: str) -> str | None:
    kv = c.store.get(key)
    return kv.value if kv is not None else None


def _lb_health(c: Cluster, host: str) -> dict:
    return (c.status(host) or {}).get("lb_health", {})


def test_tcp_check_takes_a_dead_backend_out_and_brings_it_back(cluster: Cluster) -> None:
    c = cluster
    c.put(LS("LS-A", 1))
    c.vm("hv1", "LS-A", *VM1)
    c.vm("hv2", "LS-A", *VM2)
    c.put(decode_lb("ls_lb", ("LS-A", "web"), {"vip": "10.10.1.100", "port": "80",
                                                "backends": "10.10.1.2:80;10.10.1.3:80", "check": "tcp",
                                                "interval": "1", "rise": "1", "fall": "2"}))
    for h in ("hv1", "hv2"):
        c.host(h).start_agent(c.endpoint, c.prefix, {"TUPLENET_LIVENESS_TTL": "2"})
    g1, g2 = Guest(c, "hv1", VM1), Guest(c, "hv2", VM2)
    try:
        # Each agent checks only the backend bound on its chassis, and healthy backends have no key.
        for h in ("hv1", "hv2"):
            wait_for(lambda h=h: _lb_health(c, h).get("ok", 0) >= 2, timeout=20, what=f"probes answered on {h}")
            assert _lb_health(c, h)["targets"] == 1 and _lb_health(c, h)["down"] == 0
        assert _value(c, KEY1) is None and _value(c, KEY2) is None

        # The switch answers ARP for the monitor address (a backend with an on-link route asks).
        arp = P.arp_request(VM1[2], VM1[1], hp.MONITOR_IP)
        reply = c.send_until("hv1", "vm1", arp, "hv1", "vm1")
        assert reply.raw[6:12] == hp.mac_bytes(hp.MONITOR_MAC) and reply.raw[28:32] == hp.ip_bytes(hp.MONITOR_IP)

        # The service on vm1 dies (the guest resets): out of service within 2 x interval.
        g1.mode = "closed"
        t0 = time.monotonic()
        wait_for(lambda: _value(c, KEY1), timeout=10, interval=0.02, what="vm1 marked down")
        took = time.monotonic() - t0
        assert _value(c, KEY1) == "state=down,chassis=hv1"
        assert took <= 2 * INTERVAL + 0.5, f"down after {took:.2f}s"
        wait_for(lambda: _lb_health(c, "hv1").get("down_backends") == ["LS/LS-A/web/10.10.1.2:80"], timeout=5,
                 what="down backend in status")
        wait_for(lambda: c.store.get(KEY1) and c.store.get(KEY1).lease, timeout=2, what="leased key")

        # It comes back: the key goes.
        g1.mode = "listen"
        wait_for(lambda: _value(c, KEY1) is None, timeout=10, interval=0.02, what="vm1 back in service")
        assert _value(c, KEY2) is None

        # vm2 hangs (no answer at all): timeouts take it out, written by vm2's chassis.
        g2.mode = "silent"
        wait_for(lambda: _value(c, KEY2), timeout=10, interval=0.02, what="vm2 marked down")
        assert _value(c, KEY2) == "state=down,chassis=hv2"
        wait_for(lambda: _lb_health(c, "hv2").get("timeouts", 0) >= 2, timeout=5, what="timeouts in status")

        # hv2's agent dies: its verdicts vanish with its lease.
        c.host("hv2").agent.kill()
        wait_for(lambda: _value(c, KEY2) is None, timeout=15, what="dead agent's verdict expired")
    finally:
        g1.stop()
        g2.stop()


def test_restarted_agent_keeps_its_down_verdict(cluster: Cluster) -> None:
    """A restart must not put a dead backend back into service: the new agent adopts its verdict."""
    c = cluster
    c.put(LS("LS-A", 1))
    c.vm("hv1", "LS-A", *VM1)
    c.put(decode_lb("ls_lb", ("LS-A", "web"), {"vip": "10.10.1.100", "port": "80", "backends": "10.10.1.2:80",
                                                "check": "tcp", "interval": "1", "rise": "2", "fall": "2"}))
    # The verdict's lease must outlive the restart: with 5 s, a restart slowed by a loaded CI host let the
    # verdict expire first, and the new agent rightly started the backend up (one verdict change).
    env = {"TUPLENET_LIVENESS_TTL": "60"}
    c.host("hv1").start_agent(c.endpoint, c.prefix, env)
    g1 = Guest(c, "hv1", VM1, mode="closed")
    try:
        wait_for(lambda: _value(c, KEY1), timeout=15, interval=0.05, what="vm1 marked down")
        first_lease = c.store.get(KEY1).lease
        c.host("hv1").agent.stop()
        assert c.store.get(KEY1).lease == first_lease  # still held for the new agent to adopt
        c.host("hv1").start_agent(c.endpoint, c.prefix, env)

        def new_lease() -> bool:
            kv = c.store.get(KEY1)
            return kv is not None and kv.lease not in (0, first_lease)

        wait_for(new_lease, timeout=15, interval=0.05, what="verdict re-put under the new agent's lease")
        assert _value(c, KEY1) == "state=down,chassis=hv1"
        probes = _lb_health(c, "hv1").get("probes", 0)
        wait_for(lambda: _lb_health(c, "hv1").get("probes", 0) >= probes + 3, timeout=10, what="more probes")
        assert _value(c, KEY1) == "state=down,chassis=hv1" and _lb_health(c, "hv1")["verdict_changes"] == 0
    finally:
        g1.stop()


def test_router_load_balancer_backends_checked_where_they_live(cluster: Cluster) -> None:
    """A router's load balancer: backends in the switches linked to it, each checked by its own chassis; the
    guest answers through its default gateway (the router port's MAC)."""
    c = cluster
    vms = tutorial(c)
    c.put(decode_lb("lr_lb", ("LR-central", "api"), {"vip": "172.16.0.10", "port": "443",
                                                      "backends": "10.10.2.2:443;10.10.1.3:443", "check": "tcp",
                                                      "interval": "1", "rise": "1", "fall": "2"}))
    for h in ("hv1", "hv2"):
        c.host(h).start_agent(c.endpoint, c.prefix, {"TUPLENET_LIVENESS_TTL": "2"})
    vm3 = ("vm3", vms["vm3"].ip, vms["vm3"].mac)
    vm2 = ("vm2", vms["vm2"].ip, vms["vm2"].mac)
    g3 = Guest(c, "hv1", vm3, mode="closed", next_hop_mac="f2:01:0a:0a:02:01")
    g2 = Guest(c, "hv2", vm2, next_hop_mac="f2:01:0a:0a:01:01")
    try:
        key3 = "communicate/lb_health/LR/LR-central/api/10.10.2.2:443"
        wait_for(lambda: _value(c, key3), timeout=20, interval=0.05, what="vm3 marked down")
        assert _value(c, key3) == "state=down,chassis=hv1"
        wait_for(lambda: _lb_health(c, "hv2").get("ok", 0) >= 2, timeout=10, what="vm2 answering hv2's probes")
        assert _value(c, "communicate/lb_health/LR/LR-central/api/10.10.1.3:443") is None
        assert g2.probes >= 2 and _lb_health(c, "hv1")["targets"] == 1  # vm1 is no backend of it
        g3.mode = "listen"
        wait_for(lambda: _value(c, key3) is None, timeout=10, interval=0.05, what="vm3 back in service")
    finally:
        g3.stop()
        g2.stop()
