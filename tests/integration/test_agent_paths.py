"""Packet paths that 0.3's own scenarios exercise and wave 1 got wrong: a packet crossing the same pair of
hosts several times, duplicates inside a switch, peers resolved by name across tenants."""

from __future__ import annotations

import pytest

from agent_cluster import Cluster, router_chain
from agent_cluster import derived_mac as _mac
from tuplenet.model import LR, LS, LSP
from tuplenet.sandbox import packets as P


def icmp(src_mac, dst_mac, src_ip, dst_ip, ttl=64, type=8):
    return P.icmp_frame(src_mac, dst_mac, src_ip, dst_ip, ttl=ttl, type=type)


def test_chain_of_routers_pinned_alternately_to_two_hosts(cluster: Cluster) -> None:
    """The frame crosses hv1→hv2→hv1→hv2: each hop leaves through the tunnel it came in on, which OpenFlow
    silently refuses unless the pipeline says so."""
    c = cluster
    router_chain(c)
    a = c.vm("hv1", "LS-A", "vma", "10.10.1.10", _mac("10.10.1.10"))
    d = c.vm("hv2", "LS-D", "vmd", "10.10.4.10", _mac("10.10.4.10"))
    c.start_agents("hv1", "hv2")
    got = c.send_until("hv1", "vma", icmp(a.mac, _mac("10.10.1.1"), a.ip, d.ip, ttl=64), "hv2", "vmd")
    assert got.ip_ttl == 61  # three routers
    assert (got.eth_src, got.eth_dst) == (_mac("10.10.4.3"), d.mac)
    back = c.send_until("hv2", "vmd", icmp(d.mac, _mac("10.10.4.3"), d.ip, a.ip, ttl=64, type=0), "hv1", "vma")
    assert back.ip_ttl == 61 and back.eth_src == _mac("10.10.1.1")
    # LR-D's port answers a ping from LS-A (four routers out, four back, across the host pair each time).
    echo = c.send_until("hv1", "vma", icmp(a.mac, _mac("10.10.1.1"), a.ip, "10.10.4.4", ttl=64), "hv1", "vma")
    assert echo.icmp_type == 0 and echo.ip_src == "10.10.4.4" and echo.ip_dst == a.ip
    assert echo.ip_ttl == 255 - 4  # set by LR-D, then decremented by LR-D, LR-C, LR-B and LR-A


def test_later_port_repeating_a_mac_or_ip_is_ignored_until_the_original_goes(cluster: Cluster) -> None:
    """Records written straight to etcd (0.3 allowed it): the later duplicate must not steal the original's
    traffic; deleting the original lets it take effect. (Port ids are an IP's low 16 bits and must be unique
    per router, hence 10.10.x.)"""

    c = cluster
    c.put(LS("LS-A", 1), LS("LS-B", 2), LR("R", 3))
    c.link("R", "LS-A", "10.10.1.1", 24, "f2:01:0a:0a:01:01")
    c.link("R", "LS-B", "10.10.2.1", 24, "f2:01:0a:0a:02:01")
    src = c.vm("hv1", "LS-A", "src", "10.10.1.2", "f2:01:0a:01:00:02")
    orig = c.vm("hv2", "LS-B", "orig", "10.10.2.2", "f2:01:0a:02:00:02")
    c.start_agents("hv1", "hv2")
    to_orig = icmp(src.mac, "f2:01:0a:0a:01:01", src.ip, orig.ip)
    c.send_until("hv1", "src", to_orig, "hv2", "orig")
    # Same MAC as orig, another IP: a routed packet to the duplicate's IP must not reach orig.
    dup_mac = c.vm("hv2", "LS-B", "dupmac", "10.10.2.3", orig.mac)
    # Same IP as orig, another MAC.
    dup_ip = c.vm("hv2", "LS-B", "dupip", orig.ip, "f2:01:0a:02:00:04")
    c.wait_converged("hv1", "hv2")
    c.expect_none("hv1", "src", icmp(src.mac, "f2:01:0a:0a:01:01", src.ip, "10.10.2.3"), "hv2", "orig")
    c.expect_none("hv1", "src", icmp(src.mac, "f2:01:0a:0a:01:01", src.ip, "10.10.2.3"), "hv2", "dupmac")
    got = c.send_until("hv1", "src", to_orig, "hv2", "orig")  # the original keeps its IP and MAC
    assert got.eth_dst == orig.mac
    c.expect_none("hv1", "src", to_orig, "hv2", "dupip")
    st = c.status_until("hv2", lambda s: s["duplicates"]["shadowed"] == 2, "two shadowed ports")["duplicates"]
    assert st["shadowed"] == 2 and sorted(st["keys"]) == ["lsp LS-B/dupip", "lsp LS-B/dupmac"]
    # The original goes: both duplicates take effect (one had its MAC, the other its IP).
    c.delete(orig)
    c.send_until("hv1", "src", icmp(src.mac, "f2:01:0a:0a:01:01", src.ip, "10.10.2.3"), "hv2", "dupmac")
    got = c.send_until("hv1", "src", to_orig, "hv2", "dupip")
    assert got.eth_dst == dup_ip.mac and dup_mac.ip == "10.10.2.3"
    # The status is rewritten once the agent's events quieten (status.StatusPacer): wait for it, do not race it.
    c.status_until("hv2", lambda s: s["duplicates"]["shadowed"] == 0, "no shadowed port left")


def test_later_switch_repeating_an_id_is_ignored_until_the_original_goes(cluster: Cluster) -> None:
    c = cluster
    c.put(LS("LS-A", 5))
    a1 = c.vm("hv1", "LS-A", "a1", "10.1.0.2", "f2:01:0a:01:00:02")
    a2 = c.vm("hv2", "LS-A", "a2", "10.1.0.3", "f2:01:0a:01:00:03")
    c.start_agents("hv1", "hv2")
    fa = icmp(a1.mac, a2.mac, a1.ip, a2.ip)
    c.send_until("hv1", "a1", fa, "hv2", "a2")
    # "LS-0" sorts before "LS-A": under wave 1's smallest-key rule it would win and black-hole LS-A.
    c.put(LS("LS-0", 5))
    b1 = c.vm("hv1", "LS-0", "b1", "10.9.0.2", "f2:01:0a:09:00:02")
    b2 = c.vm("hv2", "LS-0", "b2", "10.9.0.3", "f2:01:0a:09:00:03")
    c.wait_converged("hv1", "hv2")
    c.send_until("hv1", "a1", fa, "hv2", "a2")
    fb = icmp(b1.mac, b2.mac, b1.ip, b2.ip)
    c.expect_none("hv1", "b1", fb, "hv2", "b2")
    c.status_until("hv1", lambda s: "LS LS-0" in s["duplicates"]["keys"], "LS-0 reported shadowed")
    c.delete(LSP("LS-A", "a1", a1.ip, a1.mac), LSP("LS-A", "a2", a2.ip, a2.mac), LS("LS-A", 5))
    c.send_until("hv1", "b1", fb, "hv2", "b2")


def _respoof(frame: bytes, src_ip: str, src_mac: str) -> bytes:
    """A captured Geneve frame re-sent from another underlay address (IP checksum fixed, UDP's zeroed)."""
    b = bytearray(frame)
    b[6:12] = P.mac_bytes(src_mac)
    b[26:30] = P.ip_bytes(src_ip)
    b[24:26] = bytes(2)
    b[24:26] = P.ip_checksum(bytes(b[14:34])).to_bytes(2, "big")
    b[40:42] = bytes(2)
    return bytes(b)


def test_geneve_from_an_unknown_underlay_address_is_not_accepted(cluster: Cluster) -> None:
    """The flow-based tunnel port receives from any address: only known chassis IPs may enter the pipeline,
    whatever VNI and port ids the frame claims."""
    c = cluster
    c.put(LS("LS-A", 1))
    v1 = c.vm("hv1", "LS-A", "v1", "10.10.1.2", "f2:01:0a:0a:01:02")
    v2 = c.vm("hv2", "LS-A", "v2", "10.10.1.3", "f2:01:0a:0a:01:03")
    c.start_agents("hv1", "hv2")
    f = icmp(v2.mac, v1.mac, v2.ip, v1.ip)
    mark = len(c.net.phy_frames_to("hv1"))
    c.send_until("hv2", "v2", f, "hv1", "v1")
    geneve = next(g for g in c.net.phy_frames_to("hv1")[mark:] if P.parse(g).geneve_vni == 1)
    rogue_mac = "0a:00:c0:a8:64:63"
    hv1 = c.host("hv1")
    # Control: the captured frame re-sent from hv2's own address arrives (the replay itself works).
    mark = hv1.tx_mark("v1")
    c.net.main.appctl("netdev-dummy/receive", "hv3", _respoof(geneve, "192.168.100.3", rogue_mac).hex())
    hv1.wait_tx_after("v1", mark, 1, timeout=5)
    # The same frame from an address no chassis has dies at classification.
    mark = hv1.tx_mark("v1")
    for _ in range(3):
        c.net.main.appctl("netdev-dummy/receive", "hv3", _respoof(geneve, "192.168.100.99", rogue_mac).hex())
    with pytest.raises(TimeoutError):
        hv1.wait_tx_after("v1", mark, 1, timeout=0.7)


def test_a_look_alike_link_in_another_switch_does_not_take_over_a_router(cluster: Cluster) -> None:
    """Peers are bare names: another tenant creates switch LS-0 (sorting first) with a port named like the
    victim's router link, pointing back at the victim's router port, and a VM with the victim VM's
    addresses. The victim router's traffic must still go to the victim's switch."""
    from tuplenet.model import LSP

    c = cluster
    c.put(LS("LS-v", 1), LS("LS-w", 2), LR("LR-v", 3))
    lrp, lsp = c.link("LR-v", "LS-v", "10.10.1.1", 24, "f2:01:0a:0a:01:01")
    c.link("LR-v", "LS-w", "10.10.2.1", 24, "f2:01:0a:0a:02:01")
    victim = c.vm("hv1", "LS-v", "victim", "10.10.1.2", "f2:01:0a:0a:01:02")
    src = c.vm("hv2", "LS-w", "src", "10.10.2.2", "f2:01:0a:0a:02:02")
    c.start_agents("hv1", "hv2")
    f = icmp(src.mac, "f2:01:0a:0a:02:01", src.ip, victim.ip)
    c.send_until("hv2", "src", f, "hv1", "victim")
    c.put(LS("LS-0", 9), LSP("LS-0", lsp.name, lsp.ip, lsp.mac, lrp.name))
    c.vm("hv1", "LS-0", "spy", victim.ip, victim.mac)
    c.wait_converged("hv1", "hv2")
    c.expect_none("hv2", "src", f, "hv1", "spy")
    got = c.send_until("hv2", "src", f, "hv1", "victim")
    assert got.eth_src == "f2:01:0a:0a:01:01" and got.ip_ttl == 63


def test_port_security_drops_spoofed_mac_ip_and_arp(cluster: Cluster) -> None:
    """On by default: a VM port sends only from its own MAC and IP (ARP sender addresses too);
    `port_security=false` on the port turns it off (routers in VMs)."""
    from dataclasses import replace

    c = cluster
    c.put(LS("LS-A", 1))
    a = c.vm("hv1", "LS-A", "a", "10.10.1.2", "f2:01:0a:0a:01:02")
    b = c.vm("hv2", "LS-A", "b", "10.10.1.3", "f2:01:0a:0a:01:03")
    c.start_agents("hv1", "hv2")
    good = icmp(a.mac, b.mac, a.ip, b.ip)
    assert c.send_until("hv1", "a", good, "hv2", "b").raw == good
    c.expect_none("hv1", "a", icmp("f2:01:0a:0a:01:09", b.mac, a.ip, b.ip), "hv2", "b")  # spoofed MAC
    spoofed_ip = icmp(a.mac, b.mac, "10.10.1.9", b.ip)
    c.expect_none("hv1", "a", spoofed_ip, "hv2", "b")
    # A gratuitous ARP reply claiming someone else's IP, and one with a forged sender MAC.
    c.expect_none("hv1", "a", P.arp_reply(a.mac, "10.10.1.9", b.mac, b.ip), "hv2", "b")
    c.expect_none("hv1", "a", P.eth(b.mac, a.mac, P.ETH_ARP, P.arp(2, "f2:01:0a:0a:01:09", a.ip, b.mac, b.ip)),
                  "hv2", "b")
    # The ARP responder answers a's honest request, not a spoofed one.
    assert c.send_until("hv1", "a", P.arp_request(a.mac, a.ip, b.ip), "hv1", "a").arp_spa == b.ip
    c.expect_none("hv1", "a", P.arp_request(a.mac, "10.10.1.9", b.ip), "hv1", "a")
    c.put(replace(a, port_security=False))
    got = c.send_until("hv1", "a", spoofed_ip, "hv2", "b")
    assert got.raw == spoofed_ip
