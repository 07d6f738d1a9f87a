"""Pure pipeline checks that packet tests cannot reach deterministically."""

from __future__ import annotations

from topo_helpers import build_view, tutorial_facts

from tuplenet.agent import tables as T
from tuplenet.agent.engine import Engine
from tuplenet.agent.flow import Load, SetField, ip_int


def to_chassis_flows(facts: dict) -> list:
    e = Engine(build_view(facts))
    e.full()
    return [f for f in e.active.values() if f.table == T.TO_CHASSIS and f.priority == 1]


def test_chassis_reached_through_its_own_tunnel_port() -> None:
    (f,) = to_chassis_flows(tutorial_facts())
    assert f.match[0].value == ip_int("192.168.100.3")
    assert f.actions == (Load(T.R_OFPORT, 10), Load(T.R_DECIDED, 1), Load("in_port", 0))


def test_chassis_without_port_yet_reached_through_flow_based_port() -> None:
    facts = tutorial_facts()
    del facts[("tun", "hv2")]
    (f,) = to_chassis_flows(facts)
    assert f.actions == (SetField("tun_dst", ip_int("192.168.100.3")), Load(T.R_OFPORT, 9), Load(T.R_DECIDED, 1),
                         Load("in_port", 0))


def test_unknown_next_hop_keeps_zero_mac() -> None:
    e = Engine(build_view(tutorial_facts()))
    e.full()
    into_switch = [f for f in e.active.values() if f.table == T.LR_OUT_TO_SWITCH and f.priority == 1]
    assert into_switch and all(f.actions[0] == SetField("dl_dst", 0) for f in into_switch)
    binds = {f.match[1].value for f in e.active.values() if f.table == T.LS_MAC_BIND and f.priority == 1}
    assert ip_int("10.10.2.254") not in binds  # the static route's next hop is nobody: no binding


def _lookups(facts: dict, lsp_key: tuple) -> list:
    e = Engine(build_view(facts))
    e.full()
    return [f for f in e.owner_flows.get(lsp_key, ()) if f.table == T.LS_IN_LOOKUP]


def test_an_unbound_port_requested_on_a_chassis_is_reached_there_before_its_claim() -> None:
    from tuplenet.model import LSP

    key = ("lsp", "LS-A", "vm9")
    port = LSP("LS-A", "vm9", "10.10.1.9", "f2:01:0a:0a:01:09", None, None, "hv2")
    facts = tutorial_facts("hv1")
    facts[key] = port
    (f,) = _lookups(facts, key)
    assert Load(T.R_CHASSIS, ip_int("192.168.100.3")) in f.actions  # tunnelled to hv2, the requested chassis
    # On the requested chassis itself nothing is local before the interface is there and claimed.
    facts = tutorial_facts("hv2")
    facts[key] = port
    assert _lookups(facts, key) == []
    # A chassis nobody knows: nowhere to send it.
    facts = tutorial_facts("hv1")
    facts[key] = LSP("LS-A", "vm9", "10.10.1.9", "f2:01:0a:0a:01:09", None, None, "hv9")
    assert _lookups(facts, key) == []
    # Bound: where it is bound wins over where it is requested (a move is done by the claim, not before).
    facts[key] = LSP("LS-A", "vm9", "10.10.1.9", "f2:01:0a:0a:01:09", None, "hv2", "hv9")
    (f,) = _lookups(facts, key)
    assert Load(T.R_CHASSIS, ip_int("192.168.100.3")) in f.actions
    # Unbound and not requested anywhere: no lookup (nobody knows where it is).
    facts[key] = LSP("LS-A", "vm9", "10.10.1.9", "f2:01:0a:0a:01:09")
    assert _lookups(facts, key) == []
