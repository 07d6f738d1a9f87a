"""NAT translation flows (pipeline/nat_xlate.py): SNAT by longest prefix in the router's conntrack zone,
DNAT to a /32, floating IPs as stateless rewrites, only where the router runs."""

from __future__ import annotations

from topo_helpers import build_view, tutorial_facts

from tuplenet.agent import tables as T
from tuplenet.agent.engine import Engine
from tuplenet.agent.flow import Ct, Nat, SetField, ip_int
from tuplenet.agent.pipeline.ctzone import zone
from tuplenet.agent.pipeline.nat import nat_mac
from tuplenet.model import LNAT, LR

LR_ID = 3  # LR-central in the tutorial topology


def _flows(extra: dict, over: dict | None = None) -> list:
    facts = {**tutorial_facts(), **extra, **(over or {})}
    e = Engine(build_view(facts))
    e.full()
    return list(e.active.values())


def _nat(name: str, cidr: str, kind: str, xlate: str) -> dict:
    ip, prefix = cidr.split("/")
    return {("lnat", "LR-central", name): LNAT("LR-central", name, ip, int(prefix), kind, xlate)}


def _in(flows: list, table: int) -> list:
    return sorted((f for f in flows if f.table == table and f.priority > 0), key=lambda f: -f.priority)


def test_snat_commits_in_the_router_zone_and_longest_prefix_wins() -> None:
    fl = _flows({**_nat("wide", "10.10.0.0/16", "snat", "172.16.0.10"),
                 **_nat("narrow", "10.10.1.0/24", "snat", "172.16.0.11")})
    snat = _in(fl, T.LR_OUT_SNAT)
    assert [f.priority for f in snat] == [25, 17]
    assert snat[0].actions == (Ct(True, T.LR_OUT_SNAT_CT, zone(LR_ID), Nat("src", ip_int("172.16.0.11"))),)
    assert "nw_src=10.10.1.0/24" in snat[0].body_text() and "reg10=0x0/0x8" in snat[0].body_text()
    unsnat = _in(fl, T.LR_IN_UNSNAT)
    assert {f.body_text() for f in unsnat} == {
        f"table={T.LR_IN_UNSNAT},priority=1,metadata=0x3,dl_type=0x800,nw_dst=172.16.0.{n},"
        f"actions=load:0x1->reg10[3],ct(zone=3,table={T.LR_IN_UNSNAT_CT},nat)" for n in (10, 11)}
    mac = [f for f in _in(fl, T.LR_OUT_SNAT_CT) if "172.16.0.11" in f.body_text()][0]
    assert SetField("dl_src", nat_mac("172.16.0.11")) in mac.actions
    # What conntrack leaves addressed to an SNAT address is no reply: dropped, not routed back out.
    assert sorted(f.body_text() for f in _in(fl, T.LR_IN_UNSNAT_CT)) == [
        f"table={T.LR_IN_UNSNAT_CT},priority=1,metadata=0x3,dl_type=0x800,nw_dst=172.16.0.{n},actions=drop"
        for n in (10, 11)]


def test_an_snat_address_that_is_also_dnat_keeps_going_to_dnat() -> None:
    fl = _flows({**_nat("s", "10.10.0.0/16", "snat", "172.16.0.10"), **_nat("d", "10.10.1.2/32", "dnat", "172.16.0.10")})
    assert not _in(fl, T.LR_IN_UNSNAT_CT) and _in(fl, T.LR_IN_DNAT)


def test_dnat_needs_a_32_and_translates_replies_back() -> None:
    fl = _flows(_nat("web", "10.10.1.2/32", "dnat", "172.16.0.20"))
    (dnat,) = _in(fl, T.LR_IN_DNAT)
    assert dnat.actions[-1] == Ct(True, T.LR_IN_DNAT_CT, 3, Nat("dst", ip_int("10.10.1.2")))
    (undnat,) = _in(fl, T.LR_OUT_UNDNAT)
    assert "nw_src=10.10.1.2" in undnat.body_text() and undnat.actions == (Ct(False, T.LR_OUT_UNDNAT_CT, 3, Nat()),)
    assert not _in(_flows(_nat("bad", "10.10.1.0/24", "dnat", "172.16.0.20")), T.LR_IN_DNAT)


def test_snat_dnat_pair_is_a_stateless_floating_ip() -> None:
    fl = _flows({**_nat("fip-s", "10.10.1.2/32", "snat", "172.16.0.30"),
                 **_nat("fip-d", "10.10.1.2/32", "dnat", "172.16.0.30")})
    assert not any(isinstance(a, Ct) for f in fl for a in f.actions)
    (inb,) = _in(fl, T.LR_IN_UNSNAT)
    assert inb.priority == 2 and SetField("nw_dst", ip_int("10.10.1.2")) in inb.actions
    (out,) = _in(fl, T.LR_OUT_UNDNAT)
    assert SetField("nw_src", ip_int("172.16.0.30")) in out.actions
    # Half of the pair gone: the other rule falls back to conntrack.
    fl = _flows(_nat("fip-s", "10.10.1.2/32", "snat", "172.16.0.30"))
    assert any(isinstance(a, Ct) for f in _in(fl, T.LR_OUT_SNAT) for a in f.actions)


def test_translation_only_where_the_router_runs() -> None:
    nat = _nat("s", "10.10.0.0/16", "snat", "172.16.0.10")
    away = _flows(nat, {("LR", "LR-central"): LR("LR-central", 3, "hv2")})
    assert not _in(away, T.LR_OUT_SNAT) and not _in(away, T.LR_IN_UNSNAT)
    here = _flows(nat, {("LR", "LR-central"): LR("LR-central", 3, "hv1")})
    assert _in(here, T.LR_OUT_SNAT) and _in(here, T.LR_IN_UNSNAT)


def test_snat_to_a_router_port_address_keeps_the_port_mac() -> None:
    fl = _flows(_nat("vip", "10.10.1.0/24", "snat", "10.10.2.1"))
    assert not [f for f in fl if f.table == T.ARP_RESPOND and "arp_tpa=10.10.2.1" in f.body_text()
                and "f2:01:0a:0a:02:01" not in f.body_text()]
    (after,) = _in(fl, T.LR_OUT_SNAT_CT)
    assert SetField("dl_src", 0xF2010A0A0201) in after.actions
