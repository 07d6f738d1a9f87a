"""Gateway agents (GATEWAY=1) on simulated hosts: the edge resolves its outside next hop by ARP it sends
itself, learns only the answer to its own request and only for the asking router, ages entries, keeps them
across a restart, and announces its addresses with gratuitous ARP."""

from __future__ import annotations

from agent_cluster import Cluster, derived_mac
from edge_topo import EDGE, EXT_GW, EXT_GW_MAC, INTERNET, VIP, edge, nat
from tuplenet.agent import tables as T
from tuplenet.sandbox import packets as P
from tuplenet.sandbox.procs import wait_for

VIP_MAC = derived_mac(VIP)
ATTACKER = "02:66:66:66:66:66"


def _start(c: Cluster, aging: int = 300) -> None:
    edge(c, static_gw=False)
    c.host(EDGE).env.update({"GATEWAY": "1", "TUPLENET_ARP_AGING": str(aging)})  # agent and check alike
    c.start_agents()
    c.wait_converged()


def _arps(c: Cluster, mark: int) -> list[P.Frame]:
    return [f for f in map(P.parse, c.host(EDGE)._follower("ext").since(mark)) if f.arp_op is not None]


def _syn(sport: int) -> bytes:
    src, gw = "10.10.1.2", derived_mac("10.10.1.1")
    seg = P.tcp(sport, 80, src=src, dst=INTERNET)
    return P.eth(gw, derived_mac(src), P.ETH_IP, P.ipv4(src, INTERNET, P.PROTO_TCP, seg))


def _resolve(c: Cluster) -> None:
    """vm1's traffic makes the edge ask for the outside gateway; the gateway answers."""
    mark = c.host(EDGE).tx_mark("ext")

    def asked() -> list[P.Frame]:
        c.host("hv1").inject("vm1", _syn(40000))
        return [f for f in _arps(c, mark) if f.arp_op == 1 and f.arp_tpa == EXT_GW]

    req = wait_for(asked, timeout=10, interval=0.3, what="ARP request for the outside gateway")[0]
    assert (req.eth_dst, req.eth_src, req.arp_sha, req.arp_spa) == ("ff:ff:ff:ff:ff:ff", VIP_MAC, VIP_MAC, VIP)
    c.host(EDGE).inject("ext", P.arp_reply(EXT_GW_MAC, EXT_GW, VIP_MAC, VIP))


def _learned_flow(c: Cluster) -> list[str]:
    return [f for f in c.flows(EDGE) if f"table={T.LS_MAC_BIND}," in f and "reg3=" in f]


def test_edge_resolves_its_next_hop_and_forwards_to_the_learned_mac(cluster: Cluster) -> None:
    c = cluster
    _start(c)
    _resolve(c)
    out = c.send_until("hv1", "vm1", _syn(40001), EDGE, "ext")
    assert (out.eth_dst, out.eth_src, out.ip_dst) == (EXT_GW_MAC, VIP_MAC, INTERNET)
    st = wait_for(lambda: (s := c.status(EDGE)["gateway_arp"])["learned"] == 1 and s, timeout=5,
                  what="the learned entry counted in status")  # written after the batch that installed it
    assert st["entries"] == 1


def test_nothing_on_the_outside_can_poison_or_plant_entries(cluster: Cluster) -> None:
    c = cluster
    _start(c)
    _resolve(c)
    wait_for(lambda: _learned_flow(c), timeout=10, what="learned binding installed")
    h = c.host(EDGE)
    h.inject("ext", P.arp_reply(ATTACKER, EXT_GW, VIP_MAC, VIP))  # unsolicited override
    h.inject("ext", P.arp_request(ATTACKER, EXT_GW, EXT_GW))  # gratuitous ARP
    h.inject("ext", P.arp_reply(ATTACKER, "172.16.0.77", VIP_MAC, VIP))  # plant a new entry
    wait_for(lambda: c.status(EDGE)["gateway_arp"]["rejected"].get("unsolicited", 0) >= 2, timeout=10,
             what="forged replies rejected")
    out = c.send_until("hv1", "vm1", _syn(40002), EDGE, "ext")
    assert out.eth_dst == EXT_GW_MAC
    assert len(_learned_flow(c)) == 1 and "172.16.0.77" not in c.host(EDGE).dump_flows()


def test_learned_entries_survive_an_agent_restart(cluster: Cluster) -> None:
    c = cluster
    _start(c)
    _resolve(c)
    before = wait_for(lambda: _learned_flow(c), timeout=10, what="learned binding installed")
    h = c.host(EDGE)
    h.agent.stop()
    h.start_agent(c.endpoint, c.prefix)
    wait_for(lambda: (s := c.status(EDGE)) and s["pid"] == h.agent.pid, timeout=20, what="restarted agent")
    c.wait_converged(EDGE)  # check computes the saved entry too: nothing missing, nothing extra
    assert _learned_flow(c) == before
    mark = h.tx_mark("ext")
    out = c.send_until("hv1", "vm1", _syn(40003), EDGE, "ext")
    assert out.eth_dst == EXT_GW_MAC
    assert not [f for f in _arps(c, mark) if f.arp_tpa == EXT_GW and f.arp_op == 1]  # no new request needed


def test_entries_are_refreshed_and_age_out_when_unanswered(cluster: Cluster) -> None:
    c = cluster
    _start(c, aging=4)
    _resolve(c)
    wait_for(lambda: _learned_flow(c), timeout=10, what="learned binding installed")
    mark = c.host(EDGE).tx_mark("ext")
    wait_for(lambda: [f for f in _arps(c, mark) if f.arp_op == 1 and f.arp_tpa == EXT_GW], timeout=6,
             what="refresh request at 3/4 of the aging")
    wait_for(lambda: not _learned_flow(c), timeout=6, what="unanswered entry aged out")
    # status.json is rewritten after the batch whose bundle removed the flow: poll it, do not race it
    wait_for(lambda: c.status(EDGE)["gateway_arp"]["expired"] == 1, timeout=5, what="the expiry counted")


def test_addresses_are_announced_by_gratuitous_arp(cluster: Cluster) -> None:
    c = cluster
    _start(c)
    mark0 = 0

    def garps(mark: int) -> set[str]:
        return {f.arp_spa for f in _arps(c, mark) if f.arp_op == 1 and f.arp_spa == f.arp_tpa}

    wait_for(lambda: VIP in garps(mark0), timeout=10, what="gratuitous ARP for the VIP")
    mark = c.host(EDGE).tx_mark("ext")
    c.put(nat("vms", "10.10.0.0/16", "snat", "172.16.0.100"))
    wait_for(lambda: "172.16.0.100" in garps(mark), timeout=10, what="gratuitous ARP for a new NAT address")
    g = [f for f in _arps(c, mark) if f.arp_spa == "172.16.0.100"][0]
    assert (g.eth_src, g.arp_sha, g.eth_dst) == (derived_mac("172.16.0.100"), derived_mac("172.16.0.100"),
                                                 "ff:ff:ff:ff:ff:ff")


def test_each_router_has_its_own_entries(cluster: Cluster) -> None:
    """A second edge router on the same outside switch asks for the same next hop itself and keeps its own
    answer: one router's replies never resolve (or overwrite) another router's next hop."""
    from tuplenet.model import LR, LS, LSR

    c = cluster
    edge(c, static_gw=False)
    c.put(LS("LS-X", 7), LR("LR-edge2", 8, EDGE),
          LSR("LR-edge2", "out", "0.0.0.0", 0, EXT_GW, "LR-edge2_to_LS-out"))
    c.link("LR-edge2", "LS-out", "172.16.0.3", 24, derived_mac("172.16.0.3"))
    c.link("LR-edge2", "LS-X", "10.20.1.1", 24, derived_mac("10.20.1.1"))
    c.vm(EDGE, "LS-X", "vm3", "10.20.1.2", derived_mac("10.20.1.2"))
    c.host(EDGE).env.update({"GATEWAY": "1"})
    c.start_agents()
    c.wait_converged()
    _resolve(c)  # LR-edge learns EXT_GW at EXT_GW_MAC
    wait_for(lambda: _learned_flow(c), timeout=10, what="LR-edge's binding")
    seg = P.tcp(41000, 80, src="10.20.1.2", dst=INTERNET)
    syn3 = P.eth(derived_mac("10.20.1.1"), derived_mac("10.20.1.2"), P.ETH_IP,
                 P.ipv4("10.20.1.2", INTERNET, P.PROTO_TCP, seg))
    h = c.host(EDGE)
    mark = h.tx_mark("ext")

    def asked() -> list[P.Frame]:
        h.inject("vm3", syn3)
        return [f for f in _arps(c, mark) if f.arp_op == 1 and f.arp_tpa == EXT_GW and f.arp_spa == "172.16.0.3"]

    wait_for(asked, timeout=10, interval=0.3, what="LR-edge2 asking for the gateway itself")
    other = "02:ee:00:00:00:02"  # the same address answers LR-edge2 from another MAC (a second router, say)
    h.inject("ext", P.arp_reply(other, EXT_GW, derived_mac("172.16.0.3"), "172.16.0.3"))
    assert c.send_until(EDGE, "vm3", syn3, EDGE, "ext").eth_dst == other
    assert c.send_until("hv1", "vm1", _syn(40004), EDGE, "ext").eth_dst == EXT_GW_MAC  # LR-edge's unchanged
    assert len(_learned_flow(c)) == 2
