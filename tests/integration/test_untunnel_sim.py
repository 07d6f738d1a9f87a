"""Untunnel / DSR on simulated hosts (ENABLE_UNTUNNEL=1 on hv1): the agent creates br-int-dsrgw, a VM's
frame to the outside leaves on it (destination MAC = the port's, IP and TTL unchanged, no Geneve), a frame
to a known subnet still crosses the tunnel to the edge, and new/removed subnets update the hand-off."""

from __future__ import annotations

from agent_cluster import Cluster, derived_mac
from edge_topo import EDGE, EXT_GW, INTERNET, edge
from tuplenet.agent.ovsdb_model import DSRGW_PORT
from tuplenet.model import LS
from tuplenet.sandbox import packets as P
from tuplenet.sandbox.procs import wait_for

VM1, GW1 = derived_mac("10.10.1.2"), derived_mac("10.10.1.1")


def _syn(dst: str, sport: int, ttl: int = 64) -> bytes:
    seg = P.tcp(sport, 80, src="10.10.1.2", dst=dst)
    return P.eth(GW1, VM1, P.ETH_IP, P.ipv4("10.10.1.2", dst, P.PROTO_TCP, seg, ttl))


def _start(c: Cluster) -> tuple[str, int]:
    edge(c)
    c.host(EDGE).env["GATEWAY"] = "1"
    c.host("hv1").env["ENABLE_UNTUNNEL"] = "1"  # agent and `tuplenet check` alike
    c.start_agents()
    st = wait_for(lambda: (s := c.status("hv1")) and s.get("untunnel", {}).get("ofport") and s["untunnel"],
                  timeout=20, what="br-int-dsrgw up in the agent's status")
    c.wait_converged()
    return st["mac"], st["ofport"]


def _trace(c: Cluster, frame: bytes) -> str:
    h = c.host("hv1")
    return h.appctl("ofproto/trace", "br-int", f"in_port={h.ofport('vm1')}", frame.hex())


def _dsr_actions(text: str) -> str:
    return next(ln for ln in text.splitlines() if ln.startswith("Datapath actions:"))


def _tx_packets(c: Cluster, ofport: int) -> int:
    out = c.host("hv1").ofctl("dump-ports", "br-int", str(ofport))
    return int(out.split("tx pkts=")[1].split(",")[0])


def test_a_vm_reaches_the_outside_through_the_dsr_port_not_geneve(cluster: Cluster) -> None:
    c = cluster
    mac, ofport = _start(c)
    h = c.host("hv1")
    assert h.vsctl("get", "Interface", DSRGW_PORT, "type").strip() == "internal"
    assert h.ofport(DSRGW_PORT) == ofport
    # The status names what the host lacks for DSR (a dummy datapath has no kernel interface at all).
    assert c.status_until("hv1", lambda s: "ok" in s["untunnel"], "untunnel status")["untunnel"]["ok"] is False
    # ofproto/trace with the frame's bytes: only the destination MAC changes, and it goes to the port.
    trace = _trace(c, _syn(INTERNET, 41000))
    acts = _dsr_actions(trace)
    assert f"set(eth(dst={mac}))" in acts and "tnl_push" not in acts
    final = next(ln for ln in trace.splitlines() if ln.startswith("Final flow:"))
    assert f"dl_src={VM1}" in final and f"nw_dst={INTERNET}" in final and "nw_ttl=64" in final
    # The real datapath: the frame is counted on br-int-dsrgw and nothing leaves hv1 for the underlay.
    before, underlay = _tx_packets(c, ofport), len(c.net.phy_frames_from("hv1"))
    for i in range(3):
        h.inject("vm1", _syn(INTERNET, 41001 + i))
    wait_for(lambda: _tx_packets(c, ofport) >= before + 3, timeout=10, what="3 frames out of br-int-dsrgw")
    assert len(c.net.phy_frames_from("hv1")) == underlay
    # A known subnet (the edge's outside network) still goes through the tunnel to the edge.
    out = c.send_until("hv1", "vm1", _syn(EXT_GW, 41010), EDGE, "ext")
    assert (out.ip_dst, out.ip_ttl) == (EXT_GW, 62)
    assert "tnl_push" in _dsr_actions(_trace(c, _syn(EXT_GW, 41011)))


def test_subnets_appearing_and_going_update_the_hand_off(cluster: Cluster) -> None:
    c = cluster
    mac, _ = _start(c)
    assert f"set(eth(dst={mac}))" in _dsr_actions(_trace(c, _syn(INTERNET, 42000)))
    # A router port in 8.8.8.0/24 anywhere in the topology makes 8.8.8.8 a known destination.
    c.put(LS("LS-X", 7))
    lrp, lsp = c.link("LR-edge", "LS-X", "8.8.8.1", 24, derived_mac("8.8.8.1"))
    wait_for(lambda: "tnl_push" in _dsr_actions(_trace(c, _syn(INTERNET, 42001))), timeout=10,
             what="8.8.8.8 routed to the edge once its subnet is known")
    c.wait_converged("hv1")
    c.delete(lsp, lrp)
    wait_for(lambda: f"set(eth(dst={mac}))" in _dsr_actions(_trace(c, _syn(INTERNET, 42002))), timeout=10,
             what="8.8.8.8 back to DSR once the subnet is gone")
    c.wait_converged("hv1")


def test_an_agent_started_without_the_option_removes_its_port_and_flows(cluster: Cluster) -> None:
    c = cluster
    _start(c)
    h = c.host("hv1")
    assert [f for f in c.flows("hv1") if "table=16," in f]
    h.agent.stop()
    h.env.pop("ENABLE_UNTUNNEL")
    h.start_agent(c.endpoint, c.prefix)
    wait_for(lambda: (s := c.status("hv1")) and s["pid"] == h.agent.pid, timeout=20, what="restarted agent")
    wait_for(lambda: DSRGW_PORT not in h.vsctl("list-ports", "br-int").split(), timeout=10,
             what="br-int-dsrgw removed")
    c.wait_converged("hv1")
    assert "tnl_push" in _dsr_actions(_trace(c, _syn(INTERNET, 43000)))  # to the edge again
    assert not [f for f in c.flows("hv1") if "table=16," in f]
