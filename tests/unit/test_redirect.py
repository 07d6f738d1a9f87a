"""Redirect between edges (agent/pipeline/redirect.py): with ENABLE_REDIRECT a tunnel whose BFD session went
down (a ("tundead", chassis) fact from OVSDB's bfd_status) goes to the redirect subroutine, which flags the
frame and picks another edge by BFD liveness - once."""

from __future__ import annotations

import pytest
from topo_helpers import build_view, edge_facts

from tuplenet.agent import tables as T
from tuplenet.agent.engine import Engine
from tuplenet.agent.flow import BundleLoad, Load, Move, Resubmit
from tuplenet.agent.pipeline.redirect import dead_tunnel_facts


def _flows(facts: dict, table: int) -> list:
    e = Engine(build_view(facts))
    e.full()
    return sorted((f for f in e.active.values() if f.table == table), key=lambda f: (f.priority, f.body_text()))


def test_a_tunnel_bfd_declared_dead_redirects() -> None:
    facts = {**edge_facts(), ("redirect",): True, ("tundead", "hv3"): True}
    to = {f.match[0].value: f for f in _flows(facts, T.TO_CHASSIS) if f.priority == 1}
    to_hv3, to_hv2 = to[0xC0A86404], to[0xC0A86403]
    assert to_hv3.actions[0] == Load(T.R_OFPORT, 11) and to_hv3.actions[-1] == Resubmit(T.REDIRECT)
    assert to_hv2.actions[0] == Load(T.R_OFPORT, 10) and Resubmit(T.REDIRECT) not in to_hv2.actions  # alive
    red = _flows(facts, T.REDIRECT)
    once = next(f for f in red if f.priority == 1)
    assert isinstance(once.actions[0], BundleLoad) and once.actions[0].members == (10, 11)  # by BFD liveness
    assert once.actions[0].dst == T.R_SCRATCH and once.actions[1] == Resubmit(T.REDIRECT_PICK)
    twice = next(f for f in red if f.priority == 2)
    assert any(m.field == T.R_FLAGS and m.value == T.F_REDIRECT for m in twice.match)
    assert twice.actions == (Load(T.R_OFPORT, T.OFPORT_NONE),)  # a redirected frame is never redirected again
    picks = {f.priority: f for f in _flows(facts, T.REDIRECT_PICK)}
    assert picks[1].actions == (Load(T.R_FLAGS, 1, 2, 1), Move(T.R_SCRATCH, T.R_OFPORT))  # flagged, to the edge
    assert picks[2].match[0].value == T.OFPORT_NONE and picks[2].actions == ()  # none alive: its own tunnel
    # Redirect off: a dead tunnel is used as it is (0.3 with ENABLE_REDIRECT=0).
    off = {k: v for k, v in facts.items() if k != ("redirect",)}
    plain = next(f for f in _flows(off, T.TO_CHASSIS) if f.priority == 1 and f.match[0].value == 0xC0A86404)
    assert plain.actions[0] == Load(T.R_OFPORT, 11)


@pytest.mark.parametrize(("status", "dead"), [
    ({"forwarding": "false", "flap_count": "2", "state": "down"}, True),  # was up, went down
    ({"forwarding": "false", "flap_count": "0", "state": "init", "remote_state": "down"}, False),  # never up
    ({"forwarding": "false", "flap_count": "0", "state": "down", "remote_state": "down"}, False),  # one-sided
    ({"forwarding": "false", "flap_count": "0", "state": "up", "remote_state": "up"}, True),  # set-forwarding
    ({"forwarding": "true", "flap_count": "1", "state": "up"}, False),
    ({"forwarding": "false", "flap_count": "x"}, False), ({}, False)])
def test_dead_means_was_up_and_stopped_forwarding(status: dict, dead: bool) -> None:
    assert dead_tunnel_facts({"hv2": status}) == ({("tundead", "hv2"): True} if dead else {})


def test_without_redirect_tunnels_are_plain_loads() -> None:
    facts = edge_facts()
    to = [f for f in _flows(facts, T.TO_CHASSIS) if f.priority == 1]
    assert to and all(f.actions[0] == Load(T.R_OFPORT, f.actions[0].value) for f in to)
    assert not [f for f in _flows(facts, T.REDIRECT) if f.priority]


def test_an_edge_redirects_to_the_other_edges_only() -> None:
    facts = {**edge_facts(self_id="hv2", edges=2), ("redirect",): True, ("tun", "hv1"): 12}
    once = next(f for f in _flows(facts, T.REDIRECT) if f.priority == 1)
    assert once.actions[0].members == (11,)  # hv3; never itself, never a host without a pinned router
