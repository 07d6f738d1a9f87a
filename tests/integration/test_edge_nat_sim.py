"""NAT on an edge router, packet bytes on simulated hosts: SNAT, DNAT and floating IP both ways, ARP
for NAT addresses and the VIP on the outside, translation in the edge router's own conntrack zone."""

from __future__ import annotations

from agent_cluster import Cluster, derived_mac
from edge_topo import EDGE, EXT_GW_MAC, INTERNET, LR_EDGE_ID, VIP, edge, nat
from tuplenet.sandbox import packets as P

OUT_MAC = "02:ee:00:00:00:99"  # a host on the outside network


def _setup(c: Cluster, *rules) -> dict:
    vms = edge(c)
    c.host(EDGE).env["GATEWAY"] = "1"  # an edge runs as a gateway (BFD on its tunnels answers the hosts')
    c.put(*rules)
    c.start_agents()
    c.wait_converged()
    return vms


def _syn(src_mac: str, dst_mac: str, src: str, dst: str, sport: int, dport: int, flags: int = P.TCP_SYN,
         ttl: int = 64) -> bytes:
    seg = P.tcp(sport, dport, seq=1000, flags=flags, src=src, dst=dst)
    return P.eth(dst_mac, src_mac, P.ETH_IP, P.ipv4(src, dst, P.PROTO_TCP, seg, ttl))


def test_snat_rewrites_the_source_and_the_reply_is_translated_back(cluster: Cluster) -> None:
    c = cluster
    _setup(c, nat("vms", "10.10.0.0/16", "snat", "172.16.0.100"), nat("vm1", "10.10.1.2/32", "snat", "172.16.0.101"))
    vm1, gw1 = derived_mac("10.10.1.2"), derived_mac("10.10.1.1")
    out = c.send_until("hv1", "vm1", _syn(vm1, gw1, "10.10.1.2", INTERNET, 40000, 80), EDGE, "ext")
    assert (out.ip_src, out.ip_dst, out.sport, out.dport) == ("172.16.0.101", INTERNET, 40000, 80)  # /32 wins
    assert (out.eth_src, out.eth_dst) == (derived_mac("172.16.0.101"), EXT_GW_MAC)
    assert out.ip_ttl == 62 and out.checksum_ok()
    # vm2's connection takes the /16 rule.
    vm2 = derived_mac("10.10.1.3")
    out2 = c.send_until("hv3", "vm2", _syn(vm2, gw1, "10.10.1.3", INTERNET, 40001, 80), EDGE, "ext")
    assert out2.ip_src == "172.16.0.100" and out2.checksum_ok()
    # The reply from the outside reaches vm1 with its own address restored.
    reply = _syn(EXT_GW_MAC, derived_mac("172.16.0.101"), INTERNET, "172.16.0.101", 80, 40000,
                 flags=P.TCP_SYN | P.TCP_ACK)
    back = c.send_until(EDGE, "ext", reply, "hv1", "vm1")
    assert (back.ip_src, back.ip_dst, back.sport, back.dport) == (INTERNET, "10.10.1.2", 80, 40000)
    assert back.eth_dst == vm1 and back.checksum_ok()
    # The entries live in the edge router's zone (one zone per router, not one for everything).
    ct = c.host(EDGE).appctl("dpctl/dump-conntrack")
    assert f"zone={LR_EDGE_ID}" in ct and "172.16.0.101" in ct


def test_unsolicited_packets_to_a_snat_address_reach_nobody(cluster: Cluster) -> None:
    c = cluster
    _setup(c, nat("vms", "10.10.0.0/16", "snat", "172.16.0.100"))
    probe = _syn(OUT_MAC, derived_mac("172.16.0.100"), INTERNET, "172.16.0.100", 80, 40000)
    mark = c.host(EDGE).tx_mark("ext")
    for vm, host in (("vm1", "hv1"), ("vm2", "hv3")):
        c.expect_none(EDGE, "ext", probe, host, vm)
    # Dropped at the edge router, not routed back out: no ARP request for our own address (a flood of such
    # probes used to eat the gateway's ARP meter).
    back = [P.parse(f) for f in c.host(EDGE)._follower("ext").since(mark)]
    assert not [f for f in back if f.arp_op == 1 and f.arp_tpa == "172.16.0.100"]


def test_dnat_reaches_the_internal_host_and_its_reply_leaves_from_the_public_address(cluster: Cluster) -> None:
    c = cluster
    _setup(c, nat("web", "10.10.1.2/32", "dnat", "172.16.0.200"))
    syn = _syn(OUT_MAC, derived_mac("172.16.0.200"), "198.51.100.7", "172.16.0.200", 50000, 80)
    got = c.send_until(EDGE, "ext", syn, "hv1", "vm1")
    assert (got.ip_src, got.ip_dst, got.dport) == ("198.51.100.7", "10.10.1.2", 80) and got.checksum_ok()
    synack = _syn(derived_mac("10.10.1.2"), derived_mac("10.10.1.1"), "10.10.1.2", "198.51.100.7", 80, 50000,
                  flags=P.TCP_SYN | P.TCP_ACK)
    out = c.send_until("hv1", "vm1", synack, EDGE, "ext")
    assert (out.ip_src, out.ip_dst, out.sport, out.dport) == ("172.16.0.200", "198.51.100.7", 80, 50000)
    assert out.eth_src == derived_mac("172.16.0.200") and out.checksum_ok()


def test_floating_ip_is_a_stateless_rewrite_both_ways(cluster: Cluster) -> None:
    c = cluster
    _setup(c, nat("fip-s", "10.10.1.3/32", "snat", "172.16.0.50"), nat("fip-d", "10.10.1.3/32", "dnat", "172.16.0.50"))
    ping = P.icmp_frame(OUT_MAC, derived_mac("172.16.0.50"), "198.51.100.7", "172.16.0.50")
    got = c.send_until(EDGE, "ext", ping, "hv3", "vm2")
    assert (got.ip_src, got.ip_dst, got.icmp_type) == ("198.51.100.7", "10.10.1.3", 8) and got.checksum_ok()
    pong = P.icmp_frame(derived_mac("10.10.1.3"), derived_mac("10.10.1.1"), "10.10.1.3", "198.51.100.7", type=0)
    out = c.send_until("hv3", "vm2", pong, EDGE, "ext")
    assert (out.ip_src, out.ip_dst, out.icmp_type) == ("172.16.0.50", "198.51.100.7", 0) and out.checksum_ok()
    assert "172.16.0.50" not in c.host(EDGE).appctl("dpctl/dump-conntrack")  # no conntrack involved


def test_the_outside_gets_arp_answers_for_the_vip_and_nat_addresses(cluster: Cluster) -> None:
    c = cluster
    _setup(c, nat("vms", "10.10.0.0/16", "snat", "172.16.0.100"), nat("web", "10.10.1.2/32", "dnat", "172.16.0.200"))
    for ip in (VIP, "172.16.0.100", "172.16.0.200"):
        req = P.arp_request(OUT_MAC, "172.16.0.9", ip)
        rep = c.send_until(EDGE, "ext", req, EDGE, "ext")
        assert (rep.arp_op, rep.arp_spa, rep.arp_sha, rep.arp_tpa, rep.eth_dst) == (
            2, ip, derived_mac(ip), "172.16.0.9", OUT_MAC)
