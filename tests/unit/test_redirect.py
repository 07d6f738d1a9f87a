"""Redirect between edges (agent/pipeline/redirect.py): with ENABLE_REDIRECT a chassis's tunnel is chosen
by a one-member bundle_load (BFD liveness) and a dead one goes to the redirect subroutine, which flags the
frame and picks another edge - once."""

from __future__ import annotations

from topo_helpers import build_view, edge_facts

from tuplenet.agent import tables as T
from tuplenet.agent.engine import Engine
from tuplenet.agent.flow import BundleLoad, Load, Resubmit


def _flows(facts: dict, table: int) -> list:
    e = Engine(build_view(facts))
    e.full()
    return sorted((f for f in e.active.values() if f.table == table), key=lambda f: (f.priority, f.body_text()))


def test_tunnels_are_chosen_by_bfd_liveness_and_dead_ones_redirect() -> None:
    facts = {**edge_facts(), ("redirect",): True}
    to_hv3 = next(f for f in _flows(facts, T.TO_CHASSIS) if f.priority == 1 and f.match[0].value == 0xC0A86404)
    assert isinstance(to_hv3.actions[0], BundleLoad) and to_hv3.actions[0].members == (11,)
    assert to_hv3.actions[-1] == Resubmit(T.REDIRECT)
    red = _flows(facts, T.REDIRECT)
    once = next(f for f in red if f.priority == 1)
    assert once.actions[0] == Load(T.R_FLAGS, 1, 2, 1)  # the REDIRECT flag travels in the Geneve option
    assert once.actions[1].members == (10, 11)  # every other edge, by BFD liveness
    twice = next(f for f in red if f.priority == 2)
    assert any(m.field == T.R_FLAGS and m.value == T.F_REDIRECT for m in twice.match) and twice.actions == ()


def test_without_redirect_tunnels_are_plain_loads() -> None:
    facts = edge_facts()
    to = [f for f in _flows(facts, T.TO_CHASSIS) if f.priority == 1]
    assert to and all(f.actions[0] == Load(T.R_OFPORT, f.actions[0].value) for f in to)
    assert not [f for f in _flows(facts, T.REDIRECT) if f.priority]


def test_an_edge_redirects_to_the_other_edges_only() -> None:
    facts = {**edge_facts(self_id="hv2", edges=2), ("redirect",): True, ("tun", "hv1"): 12}
    once = next(f for f in _flows(facts, T.REDIRECT) if f.priority == 1)
    assert once.actions[1].members == (11,)  # hv3; never itself, never a host without a pinned router
