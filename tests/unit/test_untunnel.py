"""Untunnel / DSR flows (agent/pipeline/untunnel.py): with the local fact ("untunnel",) a VM's IPv4 to a
destination outside every known subnet is handed to br-int-dsrgw where its router would have taken it;
the offline trace reports that hand-off as the outcome "dsr"."""

from __future__ import annotations

import pytest
from topo_helpers import build_view, edge_facts, tutorial_facts

from tuplenet.agent import tables as T
from tuplenet.agent.engine import Engine
from tuplenet.agent.flow import Output, SetField, mac_int
from tuplenet.model import LNAT, LR, LRP, LS, LSP, LSR
from tuplenet.trace import packet as P
from tuplenet.trace.fabric import Fabric, Model, synth_local

DSR_MAC, DSR_OFPORT = "aa:55:aa:55:00:01", 77
ON = {("untunnel",): (DSR_MAC, DSR_OFPORT)}
VM1_MAC, VM1_IP = "f2:01:0a:0a:01:02", "10.10.1.2"
ROUTER_A = "f2:01:0a:0a:01:01"


def _engine(facts: dict) -> Engine:
    e = Engine(build_view(facts))
    e.full()
    return e


def _table(e: Engine, table: int) -> list:
    return sorted((f for f in e.active.values() if f.table == table), key=lambda f: (f.priority, f.body_text()))


def _fabric(facts: dict, dsr_on: tuple[str, ...] = ("hv1",)) -> Fabric:
    model = Model({k: v for k, v in facts.items()})
    local = {ch: {**synth_local(model, ch), **(ON if ch in dsr_on else {})} for ch in ("hv1", "hv2", "hv3")}
    return Fabric(model, local)


def _outcome(fab: Fabric, dst_ip: str, dst_mac: str = ROUTER_A, src: tuple[str, str] = ("LS-A", "vm1"),
             pkt: dict | None = None) -> dict:
    t = fab.trace(*src, pkt or P.icmp(VM1_MAC, dst_mac, VM1_IP, dst_ip))
    assert len(t.outcomes) == 1, t.outcomes
    return t.outcomes[0]


def test_off_means_no_flows_in_either_table() -> None:
    e = _engine(tutorial_facts())
    assert [f.priority for f in _table(e, T.LS_IN_UNTUNNEL)] == [0]  # the registry's pass-through only
    assert _table(e, T.LS_IN_UNTUNNEL_KNOWN) == []


def test_flows_are_one_per_subnet_plus_two_per_router_port() -> None:
    e = _engine({**tutorial_facts(), **ON})
    known = _table(e, T.LS_IN_UNTUNNEL_KNOWN)
    assert [f.body_text().split(",actions")[0] for f in known] == [
        f"table={T.LS_IN_UNTUNNEL_KNOWN},priority=0,dl_type=0x800",
        f"table={T.LS_IN_UNTUNNEL_KNOWN},priority=25,dl_type=0x800,nw_dst=10.10.1.0/24",
        f"table={T.LS_IN_UNTUNNEL_KNOWN},priority=25,dl_type=0x800,nw_dst=10.10.2.0/24"]
    assert known[0].actions == (SetField("dl_dst", mac_int(DSR_MAC)), Output(DSR_OFPORT))
    assert all("metadata" not in f.body_text() for f in known)  # shared by every switch
    hand = _table(e, T.LS_IN_UNTUNNEL)
    assert [f.priority for f in hand] == [0, 1, 1, 2, 2, 3, 3]  # 2 router ports x (check, pass) + 2 skips


def test_flow_count_grows_with_subnets_plus_switches_not_their_product() -> None:
    """0.3 wrote one flow per (switch, router port anywhere): 40 switches behind one router = 1600 flows."""
    n = 40
    facts = {("self",): "hv1", ("LR", "R"): LR("R", 1000), **ON,
             ("lsr", "R", "default"): LSR("R", "default", "0.0.0.0", 0, "10.0.0.254", "R_to_LS0")}
    for i in range(n):
        ip, mac = f"10.0.{i}.1", f"f2:01:0a:00:{i:02x}:01"
        facts[("LS", f"LS{i}")] = LS(f"LS{i}", i + 1)
        facts[("lrp", "R", f"R_to_LS{i}")] = LRP("R", f"R_to_LS{i}", ip, 24, mac, f"LS{i}_to_R")
        facts[("lsp", f"LS{i}", f"LS{i}_to_R")] = LSP(f"LS{i}", f"LS{i}_to_R", ip, mac, f"R_to_LS{i}")
    # A second router reusing a subnet adds no known-subnet flow.
    facts[("LR", "R2")] = LR("R2", 2000)
    facts[("lrp", "R2", "R2_x")] = LRP("R2", "R2_x", "10.0.3.100", 24, "f2:01:0a:00:03:64", None)
    e = _engine(facts)
    assert len(_table(e, T.LS_IN_UNTUNNEL_KNOWN)) == n + 1
    assert len(_table(e, T.LS_IN_UNTUNNEL)) == 2 * n + 3


def test_a_vm_to_the_outside_leaves_on_the_dsr_port_unchanged_but_the_mac() -> None:
    out = _outcome(_fabric(tutorial_facts()), "8.8.8.8")
    assert (out["result"], out["chassis"], out["ofport"], out["port"]) == ("dsr", "hv1", DSR_OFPORT, "br-int-dsrgw")
    pkt = out["packet"]
    assert pkt["dl_dst"] == mac_int(DSR_MAC) and pkt["dl_src"] == mac_int(VM1_MAC)
    assert pkt["nw_ttl"] == 64 and pkt["nw_dst"] == 0x08080808  # not routed here: the host's stack routes it


@pytest.mark.parametrize(("what", "dst_ip", "dst_mac", "result"), [
    ("a known subnet", "10.10.2.2", ROUTER_A, "delivered"),
    ("the router's own address", "10.10.1.1", ROUTER_A, "delivered"),  # its echo reply comes back to vm1
    ("a neighbour on the switch", "10.10.1.5", "f2:01:0a:0a:01:05", "delivered"),
])
def test_inside_destinations_are_untouched(what: str, dst_ip: str, dst_mac: str, result: str) -> None:
    facts = {**tutorial_facts(), ("lsp", "LS-A", "vm5"): LSP("LS-A", "vm5", "10.10.1.5", "f2:01:0a:0a:01:05", None, "hv1")}
    assert _outcome(_fabric(facts), dst_ip, dst_mac)["result"] == result, what


def test_arp_and_non_ipv4_are_untouched() -> None:
    fab = _fabric(tutorial_facts())
    arp = _outcome(fab, "", pkt=P.arp_request(VM1_MAC, VM1_IP, "10.10.1.1"))
    assert arp["result"] == "delivered" and arp["port"] == "vm1"  # the responder answers
    v6 = fab.trace("LS-A", "vm1", {**P.icmp(VM1_MAC, ROUTER_A, VM1_IP, "8.8.8.8"), "dl_type": 0x86DD})
    assert all(o["result"] != "dsr" for o in v6.outcomes)


def test_a_host_without_the_option_still_routes_to_the_edge() -> None:
    facts = edge_facts(edges=1)
    out = _outcome(_fabric(facts, dsr_on=()), "8.8.8.8")
    assert out["result"] != "dsr"
    t = _fabric(facts, dsr_on=()).trace("LS-A", "vm1", P.icmp(VM1_MAC, ROUTER_A, VM1_IP, "8.8.8.8"))
    assert "hv2" in [h.trace.chassis for h in t.hops]  # tunnelled to the edge
    assert _outcome(_fabric(facts), "8.8.8.8")["result"] == "dsr"  # with it: no tunnel at all
    t = _fabric(facts).trace("LS-A", "vm1", P.icmp(VM1_MAC, ROUTER_A, VM1_IP, "8.8.8.8"))
    assert [h.trace.chassis for h in t.hops] == ["hv1"]


def test_a_router_without_a_default_route_keeps_its_traffic() -> None:
    facts = {k: v for k, v in tutorial_facts().items() if k[0] != "lsr"}
    e = _engine({**facts, **ON})
    assert not [f for f in _table(e, T.LS_IN_UNTUNNEL) if f.priority == 1]
    assert _outcome(_fabric(facts), "8.8.8.8")["result"] == "drop"


def test_nat_addresses_and_router_vips_are_known() -> None:
    from tuplenet.model.lb import Backend, LoadBalancer

    lb = LoadBalancer("LR", "LR-central", "web", "198.51.100.7", 80, "tcp", (Backend("10.10.1.5", 80),))
    facts = {**tutorial_facts(), ("lnat", "LR-central", "fip"): LNAT("LR-central", "fip", "10.10.1.2", 32, "dnat",
                                                                      "203.0.113.50"),
             ("lr_lb", "LR-central", "web"): lb}
    known = [f.body_text() for f in _table(_engine({**facts, **ON}), T.LS_IN_UNTUNNEL_KNOWN)]
    assert any("nw_dst=203.0.113.50 " in t + " " or "nw_dst=203.0.113.50," in t for t in known)
    assert any("nw_dst=198.51.100.7," in t for t in known)


def test_frames_from_routers_patch_ports_and_tunnels_pass() -> None:
    e = _engine({**tutorial_facts(), **ON})
    hand = _table(e, T.LS_IN_UNTUNNEL)
    skip = [f.body_text() for f in hand if f.priority == 3]
    assert any("reg0=0xffff" in t for t in skip) and any("reg10=0x4/0x4" in t for t in skip)
    from_router = [f.body_text() for f in hand if f.priority == 2]
    assert any("metadata=0x1" in t and "reg0=0x101" in t for t in from_router)  # 10.10.1.1 on LS-A


def test_incremental_subnets_and_default_route() -> None:
    facts = {**tutorial_facts(), **ON}
    e = _engine(facts)
    view = e.view
    changed: set = set()
    lrp = LRP("LR-central", "LR-central_to_LS-C", "10.10.3.1", 24, "f2:01:0a:0a:03:01", None)
    view.apply(("lrp", "LR-central", "LR-central_to_LS-C"), lrp, changed)
    e.process(changed)
    assert any("nw_dst=10.10.3.0/24" in f.body_text() for f in _table(e, T.LS_IN_UNTUNNEL_KNOWN))
    changed = set()
    view.apply(("lrp", "LR-central", "LR-central_to_LS-C"), None, changed)
    view.apply(("lsr", "LR-central", "default"), None, changed)
    e.process(changed)
    assert not any("10.10.3.0" in f.body_text() for f in _table(e, T.LS_IN_UNTUNNEL_KNOWN))
    assert not [f for f in _table(e, T.LS_IN_UNTUNNEL) if f.priority == 1]  # no default route: no hand-off
    changed = set()
    view.apply(("untunnel",), None, changed)
    e.process(changed)
    assert [f.priority for f in _table(e, T.LS_IN_UNTUNNEL)] == [0] and not _table(e, T.LS_IN_UNTUNNEL_KNOWN)


def test_a_bad_record_contributes_nothing_and_breaks_nothing() -> None:
    from tuplenet.model.lb import LoadBalancer

    facts = {**tutorial_facts(), **ON,
             ("lnat", "LR-central", "bad"): LNAT("LR-central", "bad", "10.10.1.2", 32, "dnat", "not-an-ip"),
             ("lr_lb", "LR-central", "bad"): LoadBalancer("LR", "LR-central", "bad", "999.1.1.1", 80, "tcp", ())}
    known = [f.body_text() for f in _table(_engine(facts), T.LS_IN_UNTUNNEL_KNOWN)]
    assert len(known) == 3  # the two subnets and the hand-off, as without the bad records


def test_port_security_and_ingress_acls_apply_before_the_hand_off() -> None:
    from tuplenet.model.acl import make_acl

    facts = {**tutorial_facts(), ("acl", "LS-A", "no-dns"): make_acl(
        "LS-A", "no-dns", dict(direction="in", priority="100", action="drop", dst="8.8.8.8/32"))}
    fab = _fabric(facts)
    assert _outcome(fab, "8.8.8.8")["result"] == "drop"  # the ingress ACL's verdict stands
    assert _outcome(fab, "8.8.4.4")["result"] == "dsr"  # (conntrack committed, then handed over)
    spoofed = P.icmp(VM1_MAC, ROUTER_A, "10.10.1.99", "8.8.4.4")
    assert _outcome(fab, "", pkt=spoofed)["result"] == "drop"  # port security: not its own address
