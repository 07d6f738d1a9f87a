"""Load balancers on simulated hosts, packet bytes: VIP ARP, new connections spread over the backends (DNAT
to backend ip:port and MAC), replies un-DNATed on the client's chassis, a health verdict taking a backend out
of service and back, affinity keeping a client on one backend, UDP, and hairpin (a backend reaching its own
VIP is SNATed to the VIP and its reply comes back through conntrack)."""

from __future__ import annotations

import time

from agent_cluster import Cluster, tutorial
from tuplenet.model.lb import LoadBalancer, parse_backends
from tuplenet.sandbox import packets as P
from tuplenet.sandbox.procs import wait_for

VM1 = ("f2:01:0a:0a:01:02", "10.10.1.2")  # hv1, the client
VM2 = ("f2:01:0a:0a:01:03", "10.10.1.3")  # hv2, backend
VM5 = ("f2:01:0a:0a:01:05", "10.10.1.5")  # hv2, backend
BACKENDS = {"vm2": VM2, "vm5": VM5}


def _lb(name: str, vip: str, port: int, backends: str, **kw) -> LoadBalancer:
    return LoadBalancer("LS", "LS-A", name, vip, port, kw.pop("protocol", "tcp"), parse_backends(backends), **kw)


def _vip_mac(vip: str) -> str:
    return "f2:0b:" + ":".join(f"{int(o):02x}" for o in vip.split("."))


def _tcp(src: tuple, dst: tuple, sport: int, dport: int, flags: int = P.TCP_SYN, seq: int = 1000, ack: int = 0) -> bytes:
    seg = P.tcp(sport, dport, seq=seq, ack=ack, flags=flags, src=src[1], dst=dst[1])
    return P.eth(dst[0], src[0], P.ETH_IP, P.ipv4(src[1], dst[1], P.PROTO_TCP, seg))


def _udp(src: tuple, dst: tuple, sport: int, dport: int) -> bytes:
    dgram = P.udp(sport, dport, b"query", src=src[1], dst=dst[1])
    return P.eth(dst[0], src[0], P.ETH_IP, P.ipv4(src[1], dst[1], P.PROTO_UDP, dgram))


def _setup(c: Cluster, *lbs: LoadBalancer) -> None:
    tutorial(c)
    c.vm("hv2", "LS-A", "vm5", VM5[1], VM5[0])
    c.put(*lbs)
    c.start_agents("hv1", "hv2")
    for h in ("hv1", "hv2"):  # every VIP's selection flow installed (packets below are retried until they pass)
        wait_for(lambda h=h: all(any("table=13," in ln and f"nw_dst={lb.vip}," in ln for ln in c.flows(h))
                                 for lb in lbs if isinstance(lb, LoadBalancer)), timeout=20, what=f"load balancer flows on {h}")


def _to_backend(c: Cluster, frame: bytes, timeout: float = 10.0) -> tuple[str, P.Frame]:
    """Inject from vm1 until the frame shows up at one of the backends; (backend port, frame)."""
    h2 = c.host("hv2")

    def attempt():
        marks = {p: h2.tx_mark(p) for p in BACKENDS}
        c.host("hv1").inject("vm1", frame)
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            for p, m in marks.items():
                got = h2.tx_packets(p)[m:]
                if got:
                    return p, P.parse(got[-1])
            time.sleep(0.02)
        return None

    return wait_for(attempt, timeout=timeout, interval=0.0, what="frame at a backend")


def test_spread_reply_un_dnat_and_health_verdict(cluster: Cluster) -> None:
    c = cluster
    vip = ("f2:0b:0a:0a:01:64", "10.10.1.100")
    _setup(c, _lb("web", vip[1], 80, "10.10.1.3:8080;10.10.1.5:8080"))
    rep = c.send_until("hv1", "vm1", P.arp_request(VM1[0], VM1[1], vip[1]), "hv1", "vm1")
    assert (rep.arp_op, rep.arp_spa, rep.arp_sha) == (2, vip[1], _vip_mac(vip[1]))
    seen: dict[str, list[int]] = {"vm2": [], "vm5": []}
    for sport in range(40000, 40016):
        port, got = _to_backend(c, _tcp(VM1, vip, sport, 80))
        b = BACKENDS[port]
        assert (got.eth_dst, got.ip_dst, got.dport, got.sport, got.ip_src) == (b[0], b[1], 8080, sport, VM1[1])
        assert got.checksum_ok()
        seen[port].append(sport)
    assert seen["vm2"] and seen["vm5"], seen  # spread over both backends
    # The reply leaves the backend as itself and reaches the client as the VIP (un-DNAT on hv1's egress).
    port, sport = ("vm2", seen["vm2"][0])
    back = c.send_until("hv2", port, _tcp(VM2, VM1, 8080, sport, P.TCP_SYN | P.TCP_ACK, 5000, 1001), "hv1", "vm1")
    assert (back.ip_src, back.sport, back.ip_dst, back.dport) == (vip[1], 80, VM1[1], sport)
    assert back.tcp_flags == P.TCP_SYN | P.TCP_ACK and back.checksum_ok()
    # The established connection keeps its backend (conntrack, not the group) for the next segment.
    port2, got = _to_backend(c, _tcp(VM1, vip, sport, 80, P.TCP_ACK, 1001, 5001))
    assert port2 == "vm2" and got.tcp_flags == P.TCP_ACK
    # vm2 out of service: new connections all go to vm5; the verdict gone: vm2 is back.
    key = "communicate/lb_health/LS/LS-A/web/10.10.1.3:8080"
    c.store.put(key, "state=down,chassis=hv2")
    fresh = iter(range(41000, 60000))  # a new source port per attempt: a committed connection keeps its backend

    def backends_of(n: int) -> set[str]:
        return {_to_backend(c, _tcp(VM1, vip, next(fresh), 80))[0] for _ in range(n)}

    wait_for(lambda: backends_of(4) == {"vm5"}, timeout=10, what="vm2 out of service")
    assert backends_of(16) == {"vm5"}
    c.store.delete(key)
    wait_for(lambda: "vm2" in backends_of(16), timeout=10, what="vm2 back in service")
    # All out of service: new connections are dropped (counted on the selection flow).
    c.store.put(key, "state=down,chassis=hv2")
    c.store.put("communicate/lb_health/LS/LS-A/web/10.10.1.5:8080", "state=down,chassis=hv2")
    time.sleep(0)  # the drop is polled for below
    wait_for(lambda: any("actions=resubmit(,101)" in ln and "nw_dst=10.10.1.100" in ln for ln in c.flows("hv1")),
             timeout=10, what="drop flow for the VIP")
    c.expect_none("hv1", "vm1", _tcp(VM1, vip, 42000, 80), "hv2", "vm2")
    c.expect_none("hv1", "vm1", _tcp(VM1, vip, 42001, 80), "hv2", "vm5")


def test_affinity_udp_and_hairpin(cluster: Cluster) -> None:
    c = cluster
    dns = ("f2:0b:0a:0a:01:65", "10.10.1.101")
    web = ("f2:0b:0a:0a:01:66", "10.10.1.102")
    _setup(c, _lb("dns", dns[1], 53, "10.10.1.3:5353;10.10.1.5:5353", protocol="udp", affinity=60),
           _lb("solo", web[1], 80, "10.10.1.3:8080"))
    # Affinity: one client, many source ports, one backend; UDP translated to the backend's port.
    chosen = set()
    for sport in range(50000, 50012):
        port, got = _to_backend(c, _udp(VM1, dns, sport, 53))
        assert (got.ip_proto, got.ip_dst, got.dport, got.sport) == (P.PROTO_UDP, BACKENDS[port][1], 5353, sport)
        assert got.checksum_ok()
        chosen.add(port)
    assert len(chosen) == 1, chosen
    b = BACKENDS[chosen.pop()]
    back = c.send_until("hv2", [p for p, v in BACKENDS.items() if v == b][0],
                        _udp(b, VM1, 5353, 50000), "hv1", "vm1")
    assert (back.ip_src, back.sport, back.dport) == (dns[1], 53, 50000)
    # Hairpin: vm2 reaches its own VIP; the request arrives from the VIP, the reply goes back as the VIP.
    got = c.send_until("hv2", "vm2", _tcp(VM2, web, 43000, 80), "hv2", "vm2")
    assert (got.ip_src, got.ip_dst, got.dport) == (web[1], VM2[1], 8080) and got.eth_dst == VM2[0]
    assert got.checksum_ok()
    hp_sport = got.sport
    reply = c.send_until("hv2", "vm2", _tcp(VM2, (web[0], web[1]), 8080, hp_sport, P.TCP_SYN | P.TCP_ACK, 9000, 1001),
                         "hv2", "vm2")
    assert (reply.ip_src, reply.sport, reply.ip_dst, reply.dport) == (web[1], 80, VM2[1], 43000)
    assert reply.tcp_flags == P.TCP_SYN | P.TCP_ACK and reply.checksum_ok()


def test_with_an_allow_related_acl_on_the_switch(cluster: Cluster) -> None:
    """The DNAT commits before the ACLs look (ls_in_lb precedes ls_in_acl): an allow-related rule on the
    load balancer's switch commits the same connection, and the reply passes as its reply."""
    from tuplenet.model.acl import make_acl

    c = cluster
    vip = ("f2:0b:0a:0a:01:64", "10.10.1.100")
    _setup(c, _lb("web", vip[1], 80, "10.10.1.3:8080"),
           make_acl("LS-A", "deny", {"direction": "out", "priority": "1", "action": "drop", "dst": VM1[1]}),
           make_acl("LS-A", "web", {"direction": "in", "priority": "100", "action": "allow-related", "proto": "tcp"}))
    port, got = _to_backend(c, _tcp(VM1, vip, 40000, 80))
    assert (port, got.ip_dst, got.dport) == ("vm2", VM2[1], 8080)
    back = c.send_until("hv2", "vm2", _tcp(VM2, VM1, 8080, 40000, P.TCP_SYN | P.TCP_ACK, 5000, 1001), "hv1", "vm1")
    assert (back.ip_src, back.sport, back.tcp_flags) == (vip[1], 80, P.TCP_SYN | P.TCP_ACK)
    # Not a reply: vm2 opening a connection to vm1 is dropped by the default-deny egress rule.
    c.expect_none("hv2", "vm2", _tcp(VM2, VM1, 8081, 40001), "hv1", "vm1")
