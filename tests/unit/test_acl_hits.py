"""ACL hit counters (agent/aclhits.py): verdict-flow counters mapped to rules through the engine's outputs,
summed per rule, exported as a metric."""

from __future__ import annotations

from acl_helpers import acl_facts
from topo_helpers import build_view, tutorial_facts

from tuplenet.agent.aclhits import rule_hits
from tuplenet.agent.engine import Engine
from tuplenet.agent.metrics import registry
from tuplenet.agent.pipeline.acl import HITS


def test_counters_map_to_their_rules() -> None:
    e = Engine(build_view({**tutorial_facts(), **acl_facts()}))
    e.full()
    wishes = e.desired_outputs("wish", HITS)
    by_rule: dict[tuple, list[int]] = {}
    for w in wishes.values():
        by_rule.setdefault(w.value, []).append(w.key[0])
    assert set(by_rule) == {("acl", "LS-A", "web"), ("acl", "LS-A", "ssh"), ("acl", "LS-B", "dns"),
                            ("pg_acl", "pg", "rej")}
    assert len(by_rule[("pg_acl", "pg", "rej")]) == 4  # 2 switches x 2 source addresses (plain flows)
    installed = {f.cookie for f in e.active.values()}
    assert all(c in installed for cs in by_rule.values() for c in cs)  # every counted flow is a real flow
    counters = {c: 3 for cs in by_rule.values() for c in cs} | {12345: 99}
    got = rule_hits(wishes, counters)
    assert got == {"entity_view/LS/LS-A/acl/web": 3, "entity_view/LS/LS-A/acl/ssh": 3,
                   "entity_view/LS/LS-B/acl/dns": 3, "entity_view/port_group/pg/acl/rej": 12}


def test_hits_are_a_metric() -> None:
    from prometheus_client import generate_latest

    text = generate_latest(registry(lambda: {"acl_hits": {"entity_view/LS/LS-A/acl/web": 7}})).decode()
    assert 'tuplenet_acl_hits_total{rule="entity_view/LS/LS-A/acl/web"} 7.0' in text
