"""The offline trace interpreter on pure views: the agent's engine computes each chassis's flows from a
small topology, and the trace must walk them to the right place, say who produced every step, and give
the reason when a packet dies."""

from __future__ import annotations

from topo_helpers import tutorial_facts

from tuplenet.agent import tables as T
from tuplenet.agent.flow import Flow, Load, M, Output, OutputReg, Resubmit, fmt_mac, ip_int, mac_int, match
from tuplenet.model import LR, LRP, LS, LSP, LSR, Chassis
from tuplenet.trace import packet as P
from tuplenet.trace.compiled import compile_tables
from tuplenet.trace.fabric import Fabric, Model
from tuplenet.trace.interp import ChassisPipeline, Port
from tuplenet.trace.names import Names
from tuplenet.trace.report import document, to_text

VM1 = ("f2:01:0a:0a:01:02", "10.10.1.2")
ROUTER_A = "f2:01:0a:0a:01:01"


def tutorial(extra: dict[tuple, object] | None = None) -> Fabric:
    facts = tutorial_facts()
    facts[("lsp", "LS-A", "vm5")] = LSP("LS-A", "vm5", "10.10.1.5", "f2:01:0a:0a:01:05", None, "hv1")
    facts.update(extra or {})
    return Fabric(Model(facts))


def tables_of(trace, chassis: str | None = None) -> list[int]:
    return [s.table for h in trace.hops if chassis in (None, h.trace.chassis) for s in h.trace.steps]


def steps(trace):
    return [s for h in trace.hops for s in h.trace.steps]


def only(outcomes: list[dict]) -> dict:
    assert len(outcomes) == 1, outcomes
    return outcomes[0]


# ------------------------------------------------------------------------------------------ switching


def test_switching_on_one_host_delivers_with_owners_and_stages() -> None:
    fab = tutorial()
    t = fab.trace("LS-A", "vm1", P.icmp(*VM1[:1], "f2:01:0a:0a:01:05", VM1[1], "10.10.1.5"))
    out = only(t.outcomes)
    assert (out["result"], out["chassis"], out["switch"], out["port"]) == ("delivered", "hv1", "LS-A", "vm5")
    assert [h.trace.chassis for h in t.hops] == ["hv1"]
    owners = {s.table: s.owner for s in steps(t)}
    assert owners[T.CLASSIFY] == ("lsp", "LS-A", "vm1")
    assert owners[T.LS_IN_LOOKUP] == ("lsp", "LS-A", "vm5")
    assert owners[T.LS_OUT_PORT] == ("lsp", "LS-A", "vm5")
    assert owners[T.LS_IN_START] == ("const",)
    assert tables_of(t)[:2] == [T.CLASSIFY, T.LS_IN_START] and tables_of(t)[-1] == T.OUTPUT
    assert out["packet"]["dl_dst"] == mac_int("f2:01:0a:0a:01:05")


def test_switching_across_hosts_follows_the_tunnel_with_the_embedded_context() -> None:
    fab = tutorial()
    t = fab.trace("LS-A", "vm1", P.icmp(VM1[0], "f2:01:0a:0a:01:03", VM1[1], "10.10.1.3"))
    assert [(h.trace.chassis, h.came_from) for h in t.hops] == [("hv1", None), ("hv2", "hv1")]
    first = t.hops[0].trace
    tun = [e for e in first.events if e.kind == "tunnel"]
    assert len(tun) == 1 and tun[0].data["to_chassis"] == "hv2" and tun[0].data["vni"] == 1
    assert first.steps[tun[0].step].table == T.OUTPUT
    second = t.hops[1].trace
    assert second.entry["tun_id"] == 1 and second.entry["reg0"] == 0 and second.entry["metadata"] == 0
    assert second.entry["tun_metadata0"] & 0xFFFF == ip_int("10.10.1.2") & 0xFFFF  # source port id
    assert (second.entry["tun_metadata0"] >> 16) & 0xFFFF == ip_int("10.10.1.3") & 0xFFFF  # destination
    assert second.entry["tun_src"] == ip_int("192.168.100.2")
    # the live-trace clone (tracepoints.py) looks up trace_point (100): a quiet return for unmarked packets
    assert [s.table for s in second.steps][:4] == [T.CLASSIFY, T.EXTRACT, 100, T.FROM_TUNNEL]
    assert not [e for e in second.events if e.step == 2]
    assert second.steps[0].owner == ("tun", "hv1")
    out = only(t.outcomes)
    assert (out["result"], out["chassis"], out["port"]) == ("delivered", "hv2", "vm2")


def test_arp_request_is_answered_by_the_responder_back_to_the_asking_port() -> None:
    fab = tutorial()
    t = fab.trace("LS-A", "vm1", P.arp_request(VM1[0], VM1[1], "10.10.1.3"))
    out = only(t.outcomes)
    assert (out["result"], out["chassis"], out["port"]) == ("delivered", "hv1", "vm1")
    reply = out["packet"]
    assert reply["arp_op"] == 2 and reply["arp_sha"] == mac_int("f2:01:0a:0a:01:03")
    assert reply["arp_spa"] == ip_int("10.10.1.3") and reply["arp_tpa"] == ip_int(VM1[1])
    assert (reply["dl_src"], reply["dl_dst"]) == (mac_int("f2:01:0a:0a:01:03"), mac_int(VM1[0]))
    responder = [s for s in steps(t) if s.table == T.ARP_RESPOND]
    assert len(responder) == 1 and responder[0].owner == ("lsp", "LS-A", "vm2")
    assert [h.trace.chassis for h in t.hops] == ["hv1"]  # answered locally, never tunnelled


def test_arp_for_an_unknown_address_dies_in_the_lookup_with_a_reason() -> None:
    t = tutorial().trace("LS-A", "vm1", P.arp_request(VM1[0], VM1[1], "10.10.1.99"))
    out = only(t.outcomes)
    assert out["result"] == "drop"
    assert out["reason"] == "no port with destination MAC ff:ff:ff:ff:ff:ff in switch LS-A"
    # the responder had nothing: a miss in its table, then the lookup's default
    misses = [s for s in steps(t) if s.priority is None]
    assert [s.table for s in misses] == [T.ARP_RESPOND]


# ------------------------------------------------------------------------------------------- routing


def test_routed_packet_to_a_local_port_is_rewritten_by_the_router() -> None:
    t = tutorial().trace("LS-A", "vm1", P.icmp(VM1[0], ROUTER_A, VM1[1], "10.10.2.2", ttl=9))
    out = only(t.outcomes)
    assert (out["result"], out["chassis"], out["switch"], out["port"]) == ("delivered", "hv1", "LS-B", "vm3")
    pkt = out["packet"]
    assert pkt["nw_ttl"] == 8
    assert (fmt_mac(pkt["dl_src"]), fmt_mac(pkt["dl_dst"])) == ("f2:01:0a:0a:02:01", "f2:01:0a:0a:02:02")
    route = [s for s in steps(t) if s.table == T.LR_IN_ROUTE]
    assert len(route) == 1 and route[0].owner == ("lrp", "LR-central", "LR-central_to_LS-B")
    bind = [s for s in steps(t) if s.table == T.LS_MAC_BIND]
    assert bind[0].owner == ("lsp", "LS-B", "vm3")
    names = Names(tutorial().model.facts)
    assert names.datapath(route[0].dp) == ("router", "LR-central")


def _mac(ip: str) -> str:
    return "f2:01:" + ":".join(f"{int(b):02x}" for b in ip.split("."))


def chain_facts(pinned: bool) -> dict[tuple, object]:
    """LS-A - LR-A - LS-B - LR-B - LS-C - LR-C - LS-D; vma on hv1, vmd on hv2; routers pinned alternately
    hv1/hv2/hv1 (or distributed)."""
    f: dict[tuple, object] = {("self",): "hv1"}
    for i, ls in enumerate(("LS-A", "LS-B", "LS-C", "LS-D"), 1):
        f[("LS", ls)] = LS(ls, i)
    for i, (lr, ch) in enumerate((("LR-A", "hv1"), ("LR-B", "hv2"), ("LR-C", "hv1")), 11):
        f[("LR", lr)] = LR(lr, i, ch if pinned else None)
    links = (("LR-A", "LS-A", "10.10.1.1"), ("LR-A", "LS-B", "10.10.2.1"), ("LR-B", "LS-B", "10.10.2.2"),
             ("LR-B", "LS-C", "10.10.3.2"), ("LR-C", "LS-C", "10.10.3.3"), ("LR-C", "LS-D", "10.10.4.3"))
    for lr, ls, ip in links:
        f[("lrp", lr, f"{lr}_to_{ls}")] = LRP(lr, f"{lr}_to_{ls}", ip, 24, _mac(ip), f"{ls}_to_{lr}")
        f[("lsp", ls, f"{ls}_to_{lr}")] = LSP(ls, f"{ls}_to_{lr}", ip, _mac(ip), f"{lr}_to_{ls}")
    f[("lsr", "LR-A", "fwd")] = LSR("LR-A", "fwd", "10.10.4.0", 24, "10.10.2.2", "LR-A_to_LS-B")
    f[("lsr", "LR-B", "fwd")] = LSR("LR-B", "fwd", "10.10.4.0", 24, "10.10.3.3", "LR-B_to_LS-C")
    f[("lsr", "LR-B", "back")] = LSR("LR-B", "back", "10.10.1.0", 24, "10.10.2.1", "LR-B_to_LS-B")
    f[("lsr", "LR-C", "back")] = LSR("LR-C", "back", "10.10.1.0", 24, "10.10.3.2", "LR-C_to_LS-C")
    f[("lsp", "LS-A", "vma")] = LSP("LS-A", "vma", "10.10.1.10", _mac("10.10.1.10"), None, "hv1")
    f[("lsp", "LS-D", "vmd")] = LSP("LS-D", "vmd", "10.10.4.10", _mac("10.10.4.10"), None, "hv2")
    f[("chassis", "hv1")] = Chassis("hv1", "192.168.100.2", 1)
    f[("chassis", "hv2")] = Chassis("hv2", "192.168.100.3", 1)
    return f


def _to_vmd(ttl: int = 64) -> dict[str, int]:
    return P.icmp(_mac("10.10.1.10"), _mac("10.10.1.1"), "10.10.1.10", "10.10.4.10", ttl=ttl)


def test_chain_of_three_routers_pinned_alternately_crosses_the_host_pair_three_times() -> None:
    fab = Fabric(Model(chain_facts(pinned=True)))
    t = fab.trace("LS-A", "vma", _to_vmd())
    assert [h.trace.chassis for h in t.hops] == ["hv1", "hv2", "hv1", "hv2"]
    out = only(t.outcomes)
    assert (out["result"], out["chassis"], out["port"]) == ("delivered", "hv2", "vmd")
    pkt = out["packet"]
    assert pkt["nw_ttl"] == 61
    assert (fmt_mac(pkt["dl_src"]), fmt_mac(pkt["dl_dst"])) == (_mac("10.10.4.3"), _mac("10.10.4.10"))
    routes = [s.owner for s in steps(t) if s.table == T.LR_IN_ROUTE]
    assert routes == [("lsr", "LR-A", "fwd"), ("lsr", "LR-B", "fwd"), ("lrp", "LR-C", "LR-C_to_LS-D")]
    routers = [Names(fab.model.facts).datapath(s.dp)[1] for s in steps(t) if s.table == T.LR_IN_START]
    assert routers == ["LR-A", "LR-B", "LR-C"]


def test_chain_of_distributed_routers_runs_on_the_source_host() -> None:
    t = Fabric(Model(chain_facts(pinned=False))).trace("LS-A", "vma", _to_vmd())
    assert [h.trace.chassis for h in t.hops] == ["hv1", "hv2"]
    out = only(t.outcomes)
    assert out["port"] == "vmd" and out["packet"]["nw_ttl"] == 61
    assert not [e for h in t.hops for e in h.trace.events if e.kind == "error"]


def test_ttl_expiry_goes_to_the_agent_with_its_opcode() -> None:
    t = tutorial().trace("LS-A", "vm1", P.icmp(VM1[0], ROUTER_A, VM1[1], "10.10.2.2", ttl=1))
    out = only(t.outcomes)
    assert out["result"] == "controller" and out["opcode"] == T.OP_TTL_EXCEEDED
    assert "TTL exceeded" in out["reason"]
    ttl_step = [s for s in steps(t) if s.table == T.LR_IN_TTL][0]
    assert ttl_step.priority == 2 and ttl_step.owner == ("const",)
    assert not any(s.table == T.LR_IN_ROUTE for s in steps(t))


def test_ttl_expiry_in_the_third_router_of_a_chain() -> None:
    t = Fabric(Model(chain_facts(pinned=True))).trace("LS-A", "vma", _to_vmd(ttl=3))
    out = only(t.outcomes)
    assert (out["result"], out["chassis"]) == ("controller", "hv1")  # LR-C is pinned to hv1
    assert out["packet"]["nw_ttl"] == 1


def test_echo_request_to_a_router_port_is_answered_back_to_the_sender() -> None:
    t = tutorial().trace("LS-A", "vm1", P.icmp(VM1[0], ROUTER_A, VM1[1], "10.10.2.1"))
    out = only(t.outcomes)
    assert (out["result"], out["port"]) == ("delivered", "vm1")
    assert out["packet"]["icmp_type"] == 0 and out["packet"]["nw_src"] == ip_int("10.10.2.1")


# ---------------------------------------------------------------------------------------------- drops


def test_no_route_is_named() -> None:
    facts = tutorial_facts()
    del facts[("lsr", "LR-central", "default")]
    t = Fabric(Model(facts)).trace("LS-A", "vm1", P.icmp(VM1[0], ROUTER_A, VM1[1], "8.8.8.8"))
    assert only(t.outcomes) == {"result": "drop", "chassis": "hv1",
                                "reason": "no route to 8.8.8.8 in router LR-central"}


def test_unknown_next_hop_names_the_hop_and_the_switch() -> None:
    t = tutorial().trace("LS-A", "vm1", P.icmp(VM1[0], ROUTER_A, VM1[1], "8.8.8.8"))
    out = only(t.outcomes)
    assert out["reason"] == "no port with destination MAC 00:00:00:00:00:00 in switch LS-B"
    dead = [e.text for h in t.hops for e in h.trace.events if e.kind == "dead_end"]
    assert dead[0] == ("next hop 10.10.2.254 is unknown in switch LS-B: the destination MAC stays "
                       "00:00:00:00:00:00")


def test_port_security_drops_spoofed_mac_ip_and_arp() -> None:
    fab = tutorial()
    spoofs = [P.icmp("f2:01:0a:0a:01:99", "f2:01:0a:0a:01:05", VM1[1], "10.10.1.5"),
              P.icmp(VM1[0], "f2:01:0a:0a:01:05", "10.10.1.77", "10.10.1.5"),
              P.arp_request(VM1[0], "10.10.1.5", "10.10.1.3")]
    for pkt in spoofs:
        t = fab.trace("LS-A", "vm1", pkt)
        out = only(t.outcomes)
        assert out["result"] == "drop" and out["reason"].startswith("port security: LS-A/vm1 may send only")
        assert [s.table for s in steps(t)] == [T.CLASSIFY]
        assert steps(t)[0].owner == ("lsp", "LS-A", "vm1")


def test_port_security_off_lets_the_spoofed_source_through() -> None:
    fab = tutorial({("lsp", "LS-A", "vm1"): LSP("LS-A", "vm1", VM1[1], VM1[0], None, "hv1",
                                               port_security=False)})
    t = fab.trace("LS-A", "vm1", P.icmp("f2:01:0a:0a:01:99", "f2:01:0a:0a:01:05", "1.2.3.4", "10.10.1.5"))
    assert only(t.outcomes)["result"] == "delivered"


def test_pinned_router_on_an_unregistered_chassis_has_no_tunnel() -> None:
    fab = tutorial({("LR", "LR-central"): LR("LR-central", 3, "hv9")})
    t = fab.trace("LS-A", "vm1", P.icmp(VM1[0], ROUTER_A, VM1[1], "10.10.2.2"))
    out = only(t.outcomes)
    assert out["result"] == "drop" and out["reason"] == "no port with destination MAC f2:01:0a:0a:01:01 in switch LS-A"


def test_non_ip_at_a_router_is_dropped_with_the_reason() -> None:
    pkt = P.packet(dl_src=mac_int(VM1[0]), dl_dst=mac_int(ROUTER_A), dl_type=0x86DD)
    fab = tutorial({("lsp", "LS-A", "vm1"): LSP("LS-A", "vm1", VM1[1], VM1[0], None, "hv1",
                                               port_security=False)})
    out = only(fab.trace("LS-A", "vm1", pkt).outcomes)
    assert out["reason"] == "router LR-central forwards only IPv4"


# ------------------------------------------------------------------- OVS semantics on synthetic flows


def _pipeline(flows: list[Flow], ports: dict[int, Port] | None = None) -> ChassisPipeline:
    return ChassisPipeline("hv1", compile_tables(flows, {}), ports or {2: Port("vif", "p2", "S")}, Names({}), {})


def test_highest_priority_wins_and_masks_give_longest_prefix() -> None:
    routes = [Flow(0, (plen << 10), match(M("nw_dst", ip_int(net), ((1 << 32) - 1) ^ ((1 << (32 - plen)) - 1)),
                                          dl_type=0x800), (Load("reg1", plen), Output(2)))
              for net, plen in (("10.0.0.0", 8), ("10.1.0.0", 16), ("10.1.2.0", 24))]
    cp = _pipeline([*routes, Flow(0, 0, (), ())])
    for dst, plen in (("10.1.2.3", 24), ("10.1.9.9", 16), ("10.9.9.9", 8)):
        hop = cp.walk(P.packet(dl_type=0x800, nw_dst=ip_int(dst)), 1)
        assert hop.events[-1].pkt["reg1"] == plen
    hop = cp.walk(P.packet(dl_type=0x800, nw_dst=ip_int("11.0.0.1")), 1)
    assert hop.steps[0].priority == 0 and hop.events[0].kind == "dead_end"


def test_output_to_the_input_port_is_skipped_unless_in_port_is_cleared() -> None:
    cp = _pipeline([Flow(0, 0, (), (OutputReg("reg4", 0, 16),)), Flow(0, 1, match(reg5=1), (Load("in_port", 0),
                                                                                             Output(2)))],)
    hop = cp.walk(P.packet(reg4=2), 2)
    assert [e.kind for e in hop.events] == ["skip"] and "skipped" in hop.events[0].text
    hop = cp.walk(P.packet(reg5=1), 2)
    assert [e.kind for e in hop.events] == ["deliver"]


def test_resubmit_returns_to_the_rest_of_the_action_list_with_the_packet_as_modified() -> None:
    cp = _pipeline([Flow(0, 0, (), (Resubmit(5), Resubmit(6))),
                    Flow(5, 0, (), (Load("reg3", 7),)),
                    Flow(6, 1, match(reg3=7), (Output(2),))])
    hop = cp.walk(P.packet(), 1)
    assert [(s.table, s.depth) for s in hop.steps] == [(0, 0), (5, 1), (6, 1)]
    assert hop.events[0].kind == "deliver"


def test_translation_depth_counts_only_resubmits_to_the_same_or_an_earlier_table() -> None:
    """As measured on ovs-vswitchd 3.1: 200 resubmits to later tables are fine; 64 backward ones are the
    limit, the 65th drops the whole packet (tests/integration/test_trace_ofproto.py checks the same)."""
    fwd = [Flow(i, 0, (), (Resubmit(i + 1),)) for i in range(200)] + [Flow(200, 0, (), (Output(2),))]
    assert _pipeline(fwd).walk(P.packet(), 1).events[-1].kind == "deliver"
    for n, ok in ((65, True), (66, False)):
        back = [Flow(0, 0, (), (Resubmit(n),)), *(Flow(i, 0, (), (Resubmit(i - 1),)) for i in range(2, n + 1)),
                Flow(1, 0, (), (Output(2),))]
        hop = _pipeline(back).walk(P.packet(), 1)
        kinds = [e.kind for e in hop.events]
        assert kinds == (["deliver"] if ok else ["error"]), (n, kinds)


# --------------------------------------------------------------------------------------------- report


def test_text_report_names_hosts_datapaths_stages_owners_and_rules() -> None:
    fab = tutorial()
    doc = document(fab, fab.trace("LS-A", "vm1", P.icmp(VM1[0], "f2:01:0a:0a:01:03", VM1[1], "10.10.1.3")))
    assert doc["result"] == "delivered" and [h["chassis"] for h in doc["hops"]] == ["hv1", "hv2"]
    assert doc["hops"][1]["in_port_name"] == "tunnel port of hv1" and doc["hops"][1]["from_chassis"] == "hv1"
    lookup = [s for s in doc["hops"][0]["steps"] if s["table"] == T.LS_IN_LOOKUP][0]
    assert (lookup["stage"], lookup["owner"], lookup["datapath"], lookup["band"]) == \
        ("ls_in_lookup", "lsp LS-A/vm2", "LS-A", "remote")
    assert lookup["rule"].startswith("table=6,priority=3,metadata=0x1,dl_dst=f2:01:0a:0a:01:03,actions=")
    text = to_text(doc)
    assert "hv1: in LS-A/vm1" in text and "hv2: in tunnel port of hv1 (Geneve from hv1)" in text
    assert "  switch LS-A" in text and "lsp LS-A/vm2" in text and "=> delivered to LS-A/vm2 on hv2" in text
    assert text.rstrip().endswith("result: delivered")
    brief = to_text(doc, brief=True)
    assert "ls_in_hook" in text and "ls_in_hook" not in brief and "ls_in_lookup" in brief


def test_patch_port_is_the_default_destination_and_an_entry() -> None:
    from tuplenet.model import PATCH_PORT_IP, PATCH_PORT_MAC

    patch = LSP("LS-A", "to-phy", PATCH_PORT_IP, PATCH_PORT_MAC, "br-phy", "hv1")
    fab = tutorial({("lsp", "LS-A", "to-phy"): patch})
    out = only(fab.trace("LS-A", "vm1", P.icmp(VM1[0], "f2:01:0a:0a:01:63", VM1[1], "10.10.1.99")).outcomes)
    assert (out["result"], out["chassis"], out["port"]) == ("physical", "hv1", "to-phy")
    back = fab.trace("LS-A", "to-phy", P.icmp("f2:01:0a:0a:01:63", VM1[0], "10.10.1.99", VM1[1]))
    out = only(back.outcomes)
    assert (out["result"], out["port"]) == ("delivered", "vm1")
    assert back.hops[0].trace.steps[0].owner == ("lsp", "LS-A", "to-phy")


def test_clone_and_group_buckets_run_on_a_copy_of_the_packet() -> None:
    from tuplenet.agent.flow import Clone, ToGroup
    from tuplenet.agent.outputs import Bucket, Group
    from tuplenet.trace.compiled import compile_groups

    groups = compile_groups([Group(7, "all", (Bucket((Output(2),)), Bucket((Load("reg1", 5), Resubmit(1))))),
                             Group(9, "select", (Bucket((Output(3),)), Bucket((Output(2),))))])
    flows = [Flow(0, 5, match(dl_dst=1), (Clone((Load("reg1", 5), Resubmit(1))), Resubmit(1))),
             Flow(0, 5, match(dl_dst=2), (ToGroup(7), Resubmit(1))),
             Flow(0, 5, match(dl_dst=3), (ToGroup(9),)),
             Flow(0, 5, match(dl_dst=4), (ToGroup(99),)),
             Flow(1, 5, match(reg1=5), (Output(3),)), Flow(1, 0, (), (Output(2),))]
    ports = {2: Port("vif", "p2", "S"), 3: Port("vif", "p3", "S")}
    cp = ChassisPipeline("hv1", compile_tables(flows, {}), ports, Names({}), {}, groups)

    def outs(dst: int) -> list:
        return [e.data.get("ofport") for e in cp.walk(P.packet(dl_dst=dst), 1).events if e.kind == "deliver"]

    assert outs(1) == [3, 2]  # the clone saw reg1=5, the original did not
    assert outs(2) == [2, 3, 2]
    hop = cp.walk(P.packet(dl_dst=3), 1)
    assert [e.data.get("ofport") for e in hop.events if e.kind == "deliver"] == [3]
    assert "bucket 0 assumed" in [e.text for e in hop.events if e.kind == "note"][0]
    hop = cp.walk(P.packet(dl_dst=4), 1)
    assert [e.text for e in hop.events] == ["group 0x63 does not exist"]


def test_snat_is_applied_to_a_traced_new_connection() -> None:
    from tuplenet.model import LNAT

    extra = {("lsp", "LS-B", "gw"): LSP("LS-B", "gw", "10.10.2.254", "f2:01:0a:0a:02:fe", None, "hv1"),
             ("bind", "gw"): 3,
             ("lnat", "LR-central", "s"): LNAT("LR-central", "s", "10.10.1.0", 24, "snat", "10.10.2.100")}
    t = tutorial(extra).trace("LS-A", "vm1", P.icmp(VM1[0], ROUTER_A, VM1[1], "8.8.8.8"))
    out = only(t.outcomes)
    assert (out["result"], out["port"]) == ("delivered", "gw")
    assert out["packet"]["nw_src"] == ip_int("10.10.2.100") and out["packet"]["dl_src"] == mac_int("f2:01:0a:0a:02:64")
    notes = [e.text for h in t.hops for e in h.trace.events if e.kind == "note"]
    assert "conntrack: a new connection, nat(src=10.10.2.100) applied" in notes
