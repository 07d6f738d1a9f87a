"""On-demand hosts (ONDEMAND=1) on simulated hosts with real agents, etcd and ovs-vswitchd: the first packet
to a destination the host never talked to goes through the fully programmed helper (a host of a pinned
router, ONDEMAND=0) and arrives; later ones go direct; learned flows appear only after traffic and age out;
a frame the helper cannot deliver either dies there instead of looping. Every frame is injected once: a
lost first packet fails the test."""

from __future__ import annotations

import re

import pytest

from agent_cluster import Cluster
from tuplenet.agent import tables as T
from tuplenet.agent.openflow.meters import meter_id
from tuplenet.agent.pipeline.ondemand import SOURCE_METER_INDEX
from tuplenet.model import LR, LRP, LS, LSP
from tuplenet.sandbox import packets as P
from tuplenet.sandbox.procs import wait_for

ON = {"ONDEMAND": "1", "TUPLENET_ONDEMAND_IDLE": "2"}
VM1 = ("f2:01:0a:0a:01:02", "10.10.1.2")
VM2 = ("f2:01:0a:0a:01:03", "10.10.1.3")
VM4 = ("f2:01:0a:0a:02:03", "10.10.2.3")


def start(c: Cluster, name: str, env: dict[str, str]) -> None:
    c.host(name).start_agent(c.endpoint, c.prefix, extra_env=env)
    wait_for(lambda: c.status(name), timeout=20, what=f"agent on {name} ready")


def topology(c: Cluster) -> None:
    """vm1 on hv1 (on-demand), vm2 on hv2 (on-demand) in LS-A; vm4 on hv2 in LS-B behind the distributed
    LR-central; LR-edge pinned to hv3 makes hv3 (full mode) the helper."""
    c.put(LS("LS-A", 1), LS("LS-B", 2), LR("LR-central", 3), LR("LR-edge", 9, "hv3"), LS("LS-X", 8))
    c.link("LR-central", "LS-A", "10.10.1.1", 24, "f2:01:0a:0a:01:01")
    c.link("LR-central", "LS-B", "10.10.2.1", 24, "f2:01:0a:0a:02:01")
    c.put(LRP("LR-edge", "LR-edge_to_LS-X", "10.99.0.1", 24, "f2:01:0a:63:00:01", "LS-X_to_LR-edge"),
          LSP("LS-X", "LS-X_to_LR-edge", "10.99.0.1", "f2:01:0a:63:00:01", "LR-edge_to_LS-X"))
    c.vm("hv1", "LS-A", "vm1", VM1[1], VM1[0])
    c.vm("hv2", "LS-A", "vm2", VM2[1], VM2[0])
    c.vm("hv2", "LS-B", "vm4", VM4[1], VM4[0])
    start(c, "hv3", {"ONDEMAND": "0"})
    start(c, "hv1", ON)
    start(c, "hv2", ON)
    c.wait_converged("hv1", "hv2", "hv3")


def packets(c: Cluster, host: str, table: int, priority: int, needle: str = "") -> int:
    """n_packets summed over our flows of one table and priority whose text contains `needle` (after a
    revalidation round: datapath hits reach OpenFlow counters only then)."""
    c.host(host).appctl("revalidator/wait")
    out = c.host(host).ofctl("-O", "OpenFlow15", "dump-flows", "br-int", f"table={table}")
    total = 0
    for line in out.splitlines():
        if re.search(rf"priority={priority}[, ]", line) and needle in line and "cookie=0x7470" in line:
            m = re.search(r"n_packets=(\d+)", line)
            total += int(m.group(1)) if m else 0
    return total


def lookup_flows(c: Cluster, host: str, mac: str) -> list[str]:
    return [f for f in c.flows(host) if f"table={T.LS_IN_LOOKUP}," in f and f"dl_dst={mac}" in f]


def once(c: Cluster, src: tuple[str, str], frame: bytes, dst: tuple[str, str], timeout: float = 5.0) -> P.Frame:
    """Inject `frame` once and return it as the destination port received it."""
    h = c.host(dst[0])
    mark = h.tx_mark(dst[1])
    c.host(src[0]).inject(src[1], frame)
    return P.parse(h.wait_tx_after(dst[1], mark, 1, timeout=timeout)[-1])


def ping(src: tuple[str, str], dst_mac: str, dst_ip: str, seq: int = 1) -> bytes:
    return P.icmp_frame(src[0], dst_mac, src[1], dst_ip, seq=seq)


@pytest.mark.timeout(120)
def test_first_packet_goes_through_the_helper_later_ones_direct_and_idle_flows_age_out(cluster: Cluster) -> None:
    c = cluster
    topology(c)
    assert lookup_flows(c, "hv1", VM2[0]) == []  # on-demand: nothing for a port hv1 never talked to
    assert len(lookup_flows(c, "hv3", VM2[0])) == 1  # the full-mode helper has it
    redirected = (T.FROM_TUNNEL, 1)

    got = once(c, ("hv1", "vm1"), ping(VM1, VM2[0], VM2[1]), ("hv2", "vm2"))
    assert (got.eth_dst, got.ip_dst, got.ip_ttl) == (VM2[0], VM2[1], 64)  # unchanged: a switch, not a router
    assert packets(c, "hv3", *redirected) == 1  # it went through the helper
    assert packets(c, "hv1", T.LS_IN_LOOKUP, 1) == 1  # hv1's miss flow saw it once
    wait_for(lambda: lookup_flows(c, "hv1", VM2[0]), timeout=5, what="hv1 to learn vm2")
    for seq in range(2, 5):
        once(c, ("hv1", "vm1"), ping(VM1, VM2[0], VM2[1], seq), ("hv2", "vm2"))
    assert packets(c, "hv3", *redirected) == 1  # later packets went direct
    assert packets(c, "hv1", T.LS_IN_LOOKUP, 3, VM2[0]) == 3
    st = c.status_until("hv1", lambda s: s["ondemand"]["learned"] >= 1, "vm2 learned")["ondemand"]
    assert st["learned"] == 1 and ["LS-A", "vm2"] in st["wanted"]
    c.wait_converged("hv1")  # `tuplenet check` agrees, demand set included

    # Idle for TUPLENET_ONDEMAND_IDLE (2 s): the flows go; the next packet brings them back.
    wait_for(lambda: not lookup_flows(c, "hv1", VM2[0]), timeout=15, what="vm2's flows on hv1 to age out")
    c.status_until("hv1", lambda s: s["ondemand"]["aged"] >= 1, "the ageing counted")
    once(c, ("hv1", "vm1"), ping(VM1, VM2[0], VM2[1], 9), ("hv2", "vm2"))
    assert packets(c, "hv3", *redirected) == 2
    wait_for(lambda: lookup_flows(c, "hv1", VM2[0]), timeout=5, what="hv1 to learn vm2 again")


@pytest.mark.timeout(120)
def test_first_arp_is_answered_and_a_routed_first_packet_arrives(cluster: Cluster) -> None:
    c = cluster
    topology(c)
    # ARP for a port hv1 does not know: the helper's responder answers, through the tunnels.
    reply = once(c, ("hv1", "vm1"), P.arp_request(VM1[0], VM1[1], VM2[1]), ("hv1", "vm1"))
    assert (reply.arp_op, reply.arp_spa, reply.arp_sha) == (2, VM2[1], VM2[0])
    # Routed: hv1 runs LR-central but cannot resolve vm4 (zero MAC); the helper resolves and delivers it.
    got = once(c, ("hv1", "vm1"), ping(VM1, "f2:01:0a:0a:01:01", VM4[1]), ("hv2", "vm4"))
    assert (got.eth_src, got.eth_dst, got.ip_ttl) == ("f2:01:0a:0a:02:01", VM4[0], 63)  # one router, once
    assert packets(c, "hv3", T.FROM_TUNNEL, 2) == 1
    wait_for(lambda: lookup_flows(c, "hv1", VM4[0]), timeout=5, what="hv1 to learn vm4")
    got = once(c, ("hv1", "vm1"), ping(VM1, "f2:01:0a:0a:01:01", VM4[1], 2), ("hv2", "vm4"))
    assert got.ip_ttl == 63 and packets(c, "hv3", T.FROM_TUNNEL, 2) == 1
    # hv2 (on-demand too) answers vm1: its first reply goes through the helper as well, and arrives.
    back = once(c, ("hv2", "vm4"), P.icmp_frame(VM4[0], "f2:01:0a:0a:02:01", VM4[1], VM1[1], type=0),
                ("hv1", "vm1"))
    assert (back.eth_dst, back.ip_ttl) == (VM1[0], 63)


def meter_drops(c: Cluster, host: str, mid: int) -> int:
    """Packets meter `mid` has dropped on `host` (its one drop band's count)."""
    out = c.host(host).ofctl("-O", "OpenFlow15", "meter-stats", "br-int", f"meter={mid}")
    m = re.search(r"bands:\s*0: packet_count:(\d+)", out)
    assert m, out
    return int(m.group(1))


@pytest.mark.timeout(120)
def test_a_miss_over_the_agents_rate_still_reaches_its_destination_through_the_helper(cluster: Cluster) -> None:
    """The packet-in meter may drop the agent's copy of a miss, never the frame: it goes to the helper first.
    (With the metered copy first, OVS's inline translation of the clone let a meter drop end the frame.)"""
    c = cluster
    dests = [(f"f2:01:0a:0a:01:{0x10 + i:02x}", f"10.10.1.{0x10 + i}") for i in range(4)]
    for i, (mac, ip) in enumerate(dests):
        c.vm("hv2", "LS-A", f"d{i}", ip, mac)
    topology(c)
    # vm1's source bucket (10.10.1.2 -> 2) down to one miss a second: three of these four are over the rate
    mid = meter_id(SOURCE_METER_INDEX + 2)
    c.host("hv1").ofctl("-O", "OpenFlow15", "mod-meter", "br-int",
                        f"meter={mid},pktps,burst,stats,bands=type=drop,rate=1,burst_size=1")
    before = meter_drops(c, "hv1", mid)
    for i, (mac, ip) in enumerate(dests):
        got = once(c, ("hv1", "vm1"), ping(VM1, mac, ip), ("hv2", f"d{i}"))
        assert (got.eth_dst, got.ip_dst) == (mac, ip)
    assert packets(c, "hv3", T.FROM_TUNNEL, 1) == 4  # all four through the helper
    assert meter_drops(c, "hv1", mid) - before >= 2  # and the meter did drop copies for the agent


@pytest.mark.timeout(120)
def test_a_destination_the_helper_lacks_too_dies_there_without_looping(cluster: Cluster) -> None:
    c = cluster
    topology(c)
    nobody = "f2:01:0a:0a:01:63"
    c.host("hv1").inject("vm1", ping(VM1, nobody, "10.10.1.99"))
    wait_for(lambda: packets(c, "hv3", T.FROM_TUNNEL, 1) == 1, timeout=5, what="the helper to get it")
    miss_before = packets(c, "hv1", T.LS_IN_LOOKUP, 1)
    # the helper has no flow for it and does not redirect a redirected frame: its lookup drops it
    wait_for(lambda: packets(c, "hv3", T.LS_IN_LOOKUP, 0) >= 1, timeout=5, what="the helper's lookup to drop it")
    c.host("hv1").inject("vm1", P.arp_request(VM1[0], VM1[1], "10.10.1.99"))
    wait_for(lambda: packets(c, "hv3", T.FROM_TUNNEL, 1) == 2, timeout=5, what="the helper to get the ARP")
    # nothing came back to hv1 and nothing went round again
    assert packets(c, "hv1", T.LS_IN_LOOKUP, 1) == miss_before + 1
    assert packets(c, "hv3", T.FROM_TUNNEL, 1) == 2
    assert packets(c, "hv1", T.FROM_TUNNEL, 1) == 0 and packets(c, "hv2", T.FROM_TUNNEL, 1) == 0
    st = c.status_until("hv1", lambda s: s["ondemand"]["unknown"] >= 2, "two unknown")["ondemand"]
    assert st["unknown"] == 2 and st["wanted"] == []


@pytest.mark.timeout(120)
def test_without_a_helper_the_first_packet_waits_for_its_flows_and_arrives(cluster: Cluster) -> None:
    """No pinned router anywhere, so no helper: the miss is paused (a continuation) while hv1 computes and
    installs the destination's flows, then resumed into them."""
    c = cluster
    c.put(LS("LS-A", 1), LS("LS-B", 2), LR("LR-central", 3))
    c.link("LR-central", "LS-A", "10.10.1.1", 24, "f2:01:0a:0a:01:01")
    c.link("LR-central", "LS-B", "10.10.2.1", 24, "f2:01:0a:0a:02:01")
    c.vm("hv1", "LS-A", "vm1", VM1[1], VM1[0])
    c.vm("hv2", "LS-A", "vm2", VM2[1], VM2[0])
    c.vm("hv2", "LS-B", "vm4", VM4[1], VM4[0])
    start(c, "hv2", {"ONDEMAND": "0"})
    start(c, "hv1", ON)
    c.wait_converged("hv1", "hv2")
    reply = once(c, ("hv1", "vm1"), P.arp_request(VM1[0], VM1[1], VM2[1]), ("hv1", "vm1"))
    assert (reply.arp_op, reply.arp_spa, reply.arp_sha) == (2, VM2[1], VM2[0])  # answered by hv1 itself
    got = once(c, ("hv1", "vm1"), ping(VM1, "f2:01:0a:0a:01:01", VM4[1]), ("hv2", "vm4"))  # routed
    assert (got.eth_dst, got.ip_ttl) == (VM4[0], 63)
    wait_for(lambda: c.status("hv1")["ondemand"]["resumed"] == 2, timeout=5, what="two resumed (status)")
    once(c, ("hv1", "vm1"), ping(VM1, "f2:01:0a:0a:01:01", VM4[1], 2), ("hv2", "vm4"))
    assert packets(c, "hv1", T.LS_IN_LOOKUP, 1) == 2  # the second one went direct
    # an address nobody has: resumed once, then dropped (flagged: no second pause, no loop)
    c.host("hv1").inject("vm1", ping(VM1, "f2:01:0a:0a:01:01", "10.10.2.99"))
    wait_for(lambda: c.status("hv1")["ondemand"]["resumed"] == 3, timeout=5, what="the unknown one resumed")
    assert packets(c, "hv1", T.LS_IN_LOOKUP, 1) == 3
