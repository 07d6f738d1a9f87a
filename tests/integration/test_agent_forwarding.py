"""Packet-level behaviour of the agent on simulated hosts: switching, routing, ARP, ICMP, TTL."""

from __future__ import annotations

from agent_cluster import Cluster, tutorial
from tuplenet.model import LR, LS, LSP
from tuplenet.sandbox import packets as P

A_MAC, B_MAC = "f2:01:0a:0a:01:01", "f2:01:0a:0a:02:01"


def icmp(src_mac, dst_mac, src_ip, dst_ip, ttl=64, type=8):
    return P.icmp_frame(src_mac, dst_mac, src_ip, dst_ip, ttl=ttl, type=type)


def test_same_switch_local_and_across_hosts_bytes_unchanged(cluster: Cluster) -> None:
    vms = tutorial(cluster)
    cluster.vm("hv1", "LS-A", "vm5", "10.10.1.5", "f2:01:0a:0a:01:05")
    cluster.start_agents()
    f = icmp(vms["vm1"].mac, vms["vm2"].mac, "10.10.1.2", "10.10.1.3")
    got = cluster.send_until("hv1", "vm1", f, "hv2", "vm2")
    assert got.raw == f
    f = icmp(vms["vm1"].mac, "f2:01:0a:0a:01:05", "10.10.1.2", "10.10.1.5")
    assert cluster.send_until("hv1", "vm1", f, "hv1", "vm5").raw == f
    # Unknown destination MAC: dropped, not flooded.
    cluster.expect_none("hv1", "vm1", icmp(vms["vm1"].mac, "f2:01:0a:0a:01:99", "10.10.1.2", "10.10.1.9"),
                        "hv2", "vm2")


def test_routing_one_router_ttl_macs_checksums(cluster: Cluster) -> None:
    vms = tutorial(cluster)
    cluster.start_agents()
    f = icmp(vms["vm1"].mac, A_MAC, "10.10.1.2", "10.10.2.3", ttl=64)
    got = cluster.send_until("hv1", "vm1", f, "hv3", "vm4")
    assert (got.eth_src, got.eth_dst) == (B_MAC, vms["vm4"].mac)
    assert got.ip_ttl == 63
    assert P.ip_checksum(got.ip_header) == 0  # valid after OVS's incremental update
    sent = P.parse(f)
    # RFC 1624: TTL 64 → 63 raises the checksum by exactly 0x0100 (one's complement).
    assert got.ip_checksum == P.ones_sum(sent.ip_checksum.to_bytes(2, "big") + b"\x01\x00")
    assert got.l4 == sent.l4  # ICMP untouched


def test_routing_two_routers_across_hosts(cluster: Cluster) -> None:
    """Port ids are the low 16 bits of the IP and must be unique per router (0.3 rule), hence the
    transit subnet's .9.x addresses."""
    c = cluster
    c.put(LS("LS-A", 1), LS("LS-T", 2), LS("LS-C", 3), LR("R1", 4), LR("R2", 5))
    c.link("R1", "LS-A", "10.1.0.1", 24, "f2:01:0a:01:00:01")
    c.link("R1", "LS-T", "10.99.9.1", 24, "f2:01:0a:63:09:01")
    c.link("R2", "LS-T", "10.99.9.2", 24, "f2:01:0a:63:09:02")
    c.link("R2", "LS-C", "10.3.0.1", 24, "f2:01:0a:03:00:01")
    from tuplenet.model import LSR
    c.put(LSR("R1", "to-c", "10.3.0.0", 24, "10.99.9.2", "R1_to_LS-T"),
          LSR("R2", "to-a", "10.1.0.0", 24, "10.99.9.1", "R2_to_LS-T"))
    a = c.vm("hv1", "LS-A", "a1", "10.1.0.2", "f2:01:0a:01:00:02")
    z = c.vm("hv3", "LS-C", "c1", "10.3.0.2", "f2:01:0a:03:00:02")
    c.start_agents()
    got = c.send_until("hv1", "a1", icmp(a.mac, "f2:01:0a:01:00:01", a.ip, z.ip, ttl=10), "hv3", "c1")
    assert got.ip_ttl == 8  # once per router
    assert (got.eth_src, got.eth_dst) == ("f2:01:0a:03:00:01", z.mac)
    back = c.send_until("hv3", "c1", icmp(z.mac, "f2:01:0a:03:00:01", z.ip, a.ip, ttl=10, type=0), "hv1", "a1")
    assert back.ip_ttl == 8 and back.eth_src == "f2:01:0a:01:00:01"


def test_router_answers_echo_on_near_and_far_interface(cluster: Cluster) -> None:
    vms = tutorial(cluster)
    cluster.start_agents()
    for target in ("10.10.1.1", "10.10.2.1"):
        got = cluster.send_until("hv1", "vm1", icmp(vms["vm1"].mac, A_MAC, "10.10.1.2", target), "hv1", "vm1")
        assert got.icmp_type == 0 and got.ip_src == target and got.ip_dst == "10.10.1.2"
        assert (got.eth_src, got.eth_dst) == (A_MAC, vms["vm1"].mac)
        assert got.ip_ttl == 254
        assert P.ip_checksum(got.ip_header) == 0
        assert P.ones_sum(got.l4) == 0xFFFF  # ICMP checksum valid


def test_arp_responder_reply_bytes(cluster: Cluster) -> None:
    vms = tutorial(cluster)
    cluster.start_agents()
    for tpa, mac in (("10.10.1.3", vms["vm2"].mac), ("10.10.1.1", A_MAC)):
        req = P.arp_request(vms["vm1"].mac, "10.10.1.2", tpa)
        got = cluster.send_until("hv1", "vm1", req, "hv1", "vm1")
        assert got.raw == P.eth(vms["vm1"].mac, mac, P.ETH_ARP,
                                P.arp(2, mac, tpa, vms["vm1"].mac, "10.10.1.2"))
    # Nobody has 10.10.1.77: no answer.
    cluster.expect_none("hv1", "vm1", P.arp_request(vms["vm1"].mac, "10.10.1.2", "10.10.1.77"), "hv1", "vm1")


def test_arp_answered_for_router_nat_address_on_every_attached_switch(cluster: Cluster) -> None:
    from tuplenet.model import LNAT

    vms = tutorial(cluster)
    cluster.put(LNAT("LR-central", "snat1", "10.10.1.0", 24, "snat", "10.10.2.100"))
    cluster.start_agents("hv1")
    nat_mac = "f2:01:0a:0a:02:64"
    for vm, ip in (("vm1", "10.10.1.2"), ("vm3", "10.10.2.2")):
        req = P.arp_request(vms[vm].mac, ip, "10.10.2.100")
        got = cluster.send_until("hv1", vm, req, "hv1", vm)
        assert got.raw == P.eth(vms[vm].mac, nat_mac, P.ETH_ARP, P.arp(2, nat_mac, "10.10.2.100", vms[vm].mac, ip))


def test_ttl_expiry_answered_with_time_exceeded(cluster: Cluster) -> None:
    vms = tutorial(cluster)
    cluster.start_agents()
    f = icmp(vms["vm1"].mac, A_MAC, "10.10.1.2", "10.10.2.3", ttl=1)
    got = cluster.send_until("hv1", "vm1", f, "hv1", "vm1")
    assert got.icmp_type == 11 and got.icmp_code == 0
    assert got.ip_src == "10.10.1.1" and got.ip_dst == "10.10.1.2"
    assert got.l4[8:8 + 20] == P.parse(f).ip_header  # quotes the expired packet's header
    assert P.ip_checksum(got.ip_header) == 0 and P.ones_sum(got.l4) == 0xFFFF
    cluster.expect_none("hv1", "vm1", f, "hv3", "vm4")


def test_static_route_to_router_pinned_on_another_host(cluster: Cluster) -> None:
    c = cluster
    from tuplenet.model import LSR
    c.put(LS("LS-A", 1), LS("LS-T", 2), LS("LS-E", 3), LR("R1", 4), LR("edge", 5, "hv2"))
    c.link("R1", "LS-A", "10.1.0.1", 24, "f2:01:0a:01:00:01")
    c.link("R1", "LS-T", "100.64.7.1", 24, "f2:01:64:40:07:01")
    c.link("edge", "LS-T", "100.64.7.2", 24, "f2:01:64:40:07:02")
    c.link("edge", "LS-E", "172.20.8.1", 24, "f2:01:ac:14:08:01")
    c.put(LSR("R1", "default", "0.0.0.0", 0, "100.64.7.2", "R1_to_LS-T"),
          LSR("edge", "inside", "10.1.0.0", 16, "100.64.7.1", "edge_to_LS-T"))
    a = c.vm("hv1", "LS-A", "a1", "10.1.0.2", "f2:01:0a:01:00:02")
    e = c.vm("hv3", "LS-E", "e1", "172.20.8.5", "f2:01:ac:14:08:05")
    c.start_agents()
    got = c.send_until("hv1", "a1", icmp(a.mac, "f2:01:0a:01:00:01", a.ip, e.ip, ttl=20), "hv3", "e1")
    assert got.ip_ttl == 18 and got.eth_src == "f2:01:ac:14:08:01"
    # The pinned router's flows exist only on hv2.
    assert any("metadata=0x5" in f and "table=37" in f for f in c.flows("hv2"))
    assert not any("metadata=0x5" in f and "table=37" in f for f in c.flows("hv1"))


def test_two_switches_each_with_port_p1(cluster: Cluster) -> None:
    c = cluster
    c.put(LS("ls1", 1), LS("ls2", 2))
    c.put(LSP("ls1", "p1", "10.0.1.2", "f2:01:0a:00:01:02", None, "hv1"),
          LSP("ls1", "q1", "10.0.1.3", "f2:01:0a:00:01:03", None, "hv2"),
          LSP("ls2", "p1", "10.0.2.2", "f2:01:0a:00:02:02", None, "hv2"),
          LSP("ls2", "q2", "10.0.2.3", "f2:01:0a:00:02:03", None, "hv3"))
    c.host("hv1").add_vm_port("p1", "p1")
    c.host("hv2").add_vm_port("q1", "q1")
    c.host("hv2").add_vm_port("p1", "p1")
    c.host("hv3").add_vm_port("q2", "q2")
    c.start_agents()
    f1 = icmp("f2:01:0a:00:01:02", "f2:01:0a:00:01:03", "10.0.1.2", "10.0.1.3")
    assert c.send_until("hv1", "p1", f1, "hv2", "q1").raw == f1
    f2 = icmp("f2:01:0a:00:02:02", "f2:01:0a:00:02:03", "10.0.2.2", "10.0.2.3")
    assert c.send_until("hv2", "p1", f2, "hv3", "q2").raw == f2


def test_patch_port_bridges_switch_to_physical_bridge(cluster: Cluster) -> None:
    """`tpctl patchport add LS-A ext hv1 br-ext`: on hv1 the switch reaches a physical bridge; unknown
    destinations leave through it and frames from it enter the switch."""
    c = cluster
    vms = tutorial(c)
    hv1 = c.host("hv1")
    hv1.vsctl("add-br", "br-ext")
    hv1.add_vm_port("phy1", None, bridge="br-ext")
    hv1.ofctl("add-flow", "br-ext", "actions=NORMAL")
    c.put(LSP("LS-A", "ext", "255.255.255.255", "ff:ff:ff:ff:ff:ee", "br-ext", "hv1"))
    c.start_agents("hv1", "hv2")
    out = icmp(vms["vm1"].mac, "f2:01:ac:10:00:09", "10.10.1.2", "172.16.0.9")
    assert c.send_until("hv1", "vm1", out, "hv1", "phy1").raw == out
    back = icmp("f2:01:ac:10:00:09", vms["vm1"].mac, "172.16.0.9", "10.10.1.2", type=0)
    assert c.send_until("hv1", "phy1", back, "hv1", "vm1").raw == back
    # Elsewhere the switch has no way out: hv2 drops unknown destinations.
    c.expect_none("hv2", "vm2", icmp(vms["vm2"].mac, "f2:01:ac:10:00:09", "10.10.1.3", "172.16.0.9"), "hv1", "phy1")
