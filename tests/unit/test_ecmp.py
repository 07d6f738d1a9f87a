"""ECMP to edges (agent/pipeline/ecmp.py): equal-cost routes to pinned edge routers become one bundle_load
over the edges' tunnels plus one lr_in_ecmp flow per edge; BFD is asked for on those tunnels; gateways
never ECMP; incremental results equal a full recompute."""

from __future__ import annotations

from topo_helpers import build_view, edge_facts

from tuplenet.agent import tables as T
from tuplenet.agent.engine import Engine
from tuplenet.agent.flow import BundleLoad, Load, Resubmit, SetField, ip_int
from tuplenet.agent.outputs import Wish
from tuplenet.model import LSR, Chassis


def _run(facts: dict) -> Engine:
    e = Engine(build_view(facts))
    e.full()
    return e


def _table(e: Engine, table: int) -> list:
    return sorted((f for f in e.active.values() if f.table == table), key=lambda f: (f.priority, f.body_text()))


def _bfd(e: Engine) -> dict:
    return {i[2]: w.value for i, w in e.desired_outputs("wish", "bfd").items()}


def test_two_edges_make_one_bundle_and_a_flow_per_edge() -> None:
    e = _run(edge_facts())
    ecmp_route = [f for f in _table(e, T.LR_IN_ROUTE) if f.priority == 2 << 6]
    assert len(ecmp_route) == 1
    pick = ecmp_route[0].actions[0]
    assert isinstance(pick, BundleLoad) and pick.fields == "nw_dst" and pick.algorithm == "hrw"
    assert pick.members == (10, 11) and pick.dst == T.R_OFPORT  # route-name order: to_edge1 (hv2), to_edge2 (hv3)
    assert ecmp_route[0].actions[1] == Resubmit(T.LR_IN_ECMP)
    judge = _table(e, T.LR_IN_ECMP)
    members = [f for f in judge if f.priority == 34]
    dead = [f for f in judge if f.priority == 1]
    assert len(members) == 2 and len(dead) == 1
    by_port = {next(m.value for m in f.match if m.field == T.R_OFPORT): f for f in members}
    m1 = by_port[10].actions
    assert Load(T.R_DST_PORT, ip_int("100.64.88.254") & 0xFFFF) in m1
    assert SetField("dl_src", 0xF2016440_58FE) in m1
    assert Load(T.R_NEXT_HOP, ip_int("100.64.88.100")) in m1 and m1[-1] == Resubmit(T.LR_OUT_START)
    assert Load(T.R_DST_PORT, ip_int("100.64.88.253") & 0xFFFF) in by_port[11].actions
    assert any(m.field == T.R_OFPORT and m.value == T.OFPORT_NONE for m in dead[0].match)
    assert dead[0].actions == (Resubmit(T.DROP),)
    assert _bfd(e) == {"hv2": (250, 250), "hv3": (250, 250)}


def test_hash_fn_and_bfd_timers_come_from_the_agent_settings() -> None:
    e = _run({**edge_facts(), ("hash_fn",): "symmetric_l4", ("bfd_cfg",): (300, 400)})
    pick = next(f for f in _table(e, T.LR_IN_ROUTE) if f.priority == 2 << 6).actions[0]
    assert pick.fields == "symmetric_l4"
    assert _bfd(e) == {"hv2": (300, 400), "hv3": (300, 400)}


def test_one_edge_with_a_tunnel_is_no_ecmp_but_keeps_bfd() -> None:
    facts = edge_facts()
    del facts[("tun", "hv3")]
    e = _run(facts)
    assert not [f for f in _table(e, T.LR_IN_ROUTE) if f.priority == 2 << 6]
    assert not [f for f in _table(e, T.LR_IN_ECMP) if f.priority]
    assert _bfd(e) == {"hv2": (250, 250), "hv3": (250, 250)}  # BFD comes with the tunnel once it exists


def test_gateways_never_ecmp_and_run_bfd_on_every_tunnel() -> None:
    facts = {**edge_facts(self_id="hv4"), ("gateway",): True}
    facts[("chassis", "hv4")] = Chassis("hv4", "192.168.100.9", 1)
    facts[("tun", "hv1")] = 12
    e = _run(facts)
    assert not [f for f in _table(e, T.LR_IN_ROUTE) if f.priority == 2 << 6]
    assert set(_bfd(e)) == {"hv1", "hv2", "hv3"}
    del facts[("chassis", "hv4")]  # the gateway's own record deleted: BFD stops (it leaves every set)
    assert _bfd(_run(facts)) == {}


def test_a_route_whose_next_hop_is_not_a_pinned_router_is_not_an_edge() -> None:
    facts = edge_facts(edges=1)
    e = _run(facts)
    assert not [f for f in _table(e, T.LR_IN_ROUTE) if f.priority == 2 << 6]  # 'default' via 10.10.2.254 too
    assert _bfd(e) == {"hv2": (250, 250)}


def test_no_ecmp_on_the_edge_itself() -> None:
    e = _run(edge_facts(self_id="hv2"))  # the central router is distributed: it runs on the edge too
    assert not [f for f in _table(e, T.LR_IN_ROUTE) if f.priority == 2 << 6]  # one other edge: no ECMP
    assert set(_bfd(e)) == {"hv3"}


def test_incremental_changes_equal_a_full_recompute() -> None:
    facts = edge_facts(edges=3)
    e = Engine(build_view(facts))
    e.full()
    steps = [
        (("tun", "hv3"), None),  # a tunnel goes: its edge leaves the bundle
        (("tun", "hv3"), 11),
        (("lsr", "LR-central", "to_edge2"), None),  # a route removed (edge tpctl remove)
        (("lsr", "LR-central", "to_edge2"), LSR("LR-central", "to_edge2", "0.0.0.0", 0, "100.64.88.100",
                                                 "LR-central_to_tp_LS_m2")),
        (("hash_fn",), "symmetric_l3l4"),
        (("gateway",), True),
        (("gateway",), None),
    ]
    for key, value in steps:
        changed: set = set()
        e.view.apply(key, value, changed)
        e.process(changed)
        if value is None:
            facts.pop(key, None)
        else:
            facts[key] = value
        fresh = _run(facts)
        assert set(e.desired()) == set(fresh.desired()), key
        assert e.desired_outputs("wish") == fresh.desired_outputs("wish"), key


def test_bfd_wish_identity() -> None:
    assert Wish("bfd", ("hv2",), (250, 250)).ident == ("wish", "bfd", "hv2")


def test_members_are_chassis_a_second_road_on_one_waits_its_turn() -> None:
    from tuplenet.model import LR

    facts = edge_facts(edges=3)
    facts[("LR", "tp_LR_edge2")] = LR("tp_LR_edge2", 22, "hv2")  # a second road on hv2
    e = _run(facts)
    pick = next(f for f in _table(e, T.LR_IN_ROUTE) if f.priority == 2 << 6).actions[0]
    assert pick.members == (10, 12)  # hv2 once (its first road by name), hv4
    member = next(f for f in _table(e, T.LR_IN_ECMP) if f.priority == 34 and any(
        m.field == T.R_OFPORT and m.value == 10 for m in f.match))
    assert Load(T.R_DST_PORT, ip_int("100.64.88.254") & 0xFFFF) in member.actions  # road 1's central port
    del facts[("lsr", "LR-central", "to_edge1")]  # road 1 removed: road 2 carries hv2's share
    member = next(f for f in _table(_run(facts), T.LR_IN_ECMP) if f.priority == 34 and any(
        m.field == T.R_OFPORT and m.value == 10 for m in f.match))
    assert Load(T.R_DST_PORT, ip_int("100.64.88.253") & 0xFFFF) in member.actions
