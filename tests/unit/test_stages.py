"""Every flow the pipeline generates obeys its stage's contract in the registry (agent/stages.py): known
table, a named priority band, continues only to declared stages, matches and sets only declared fields.
Reserved stages hold nothing but their pass-through. (Faucet checks its tables the same way.)"""

from __future__ import annotations

from dataclasses import replace

import pytest
from acl_helpers import acl_facts
from topo_helpers import build_view, edge_facts, tutorial_facts

from tuplenet.agent import stages as S
from tuplenet.agent.engine import Engine
from tuplenet.agent.flow import Ct, Load, Move, Resubmit, SetField
from tuplenet.model import LNAT, LR, LSP, Chassis


def _scenarios() -> dict[str, dict]:
    base = tutorial_facts()
    nat = {**base, ("lnat", "LR-central", "snat1"): LNAT("LR-central", "snat1", "10.10.1.0", 24, "snat",
                                                         "10.10.2.100")}
    nat_kinds = {**nat, **{("lnat", "LR-central", n): LNAT("LR-central", n, "10.10.1.2", 32, t, "10.10.2.50")
                           for n, t in (("fip-s", "snat"), ("fip-d", "dnat"))},
                 ("lnat", "LR-central", "dnat1"): LNAT("LR-central", "dnat1", "10.10.1.3", 32, "dnat", "10.10.2.60")}
    pinned_here = {**base, ("LR", "LR-central"): LR("LR-central", 3, "hv1")}
    pinned_away = {**base, ("LR", "LR-central"): LR("LR-central", 3, "hv2")}
    patch = {**base, ("lsp", "LS-A", "ext"): LSP("LS-A", "ext", "255.255.255.255", "ff:ff:ff:ff:ff:ee", "br-ext", "hv1"),
             ("bind", "ext"): 7}
    no_ps = {**base, ("lsp", "LS-A", "vm1"): replace(base[("lsp", "LS-A", "vm1")], port_security=False)}
    no_tunnel = {k: v for k, v in base.items() if k[0] != "tun"}
    more = {**base, ("chassis", "hv3"): Chassis("hv3", "192.168.100.4", 1)}
    acls = {**base, **acl_facts()}
    return {"tutorial": base, "nat": nat, "nat kinds": nat_kinds, "pinned here": pinned_here, "pinned away": pinned_away,
            "patch port": patch, "no port security": no_ps, "flow-based tunnel only": no_tunnel,
            "third chassis": more, "ecmp to two edges": edge_facts(),
            "redirect between edges": {**edge_facts(), ("redirect",): True, ("tundead", "hv3"): True}, "acls": acls, "load balancers": _lb_facts(base),
            "on-demand with a helper": {**pinned_away, ("ondemand",): True, ("live", "hv2"): True},
            "untunnel": {**nat_kinds, ("untunnel",): ("aa:55:aa:55:00:01", 77)}}


def _lb_facts(base: dict) -> dict:
    from tuplenet.model.lb import Backend, LoadBalancer

    bs = (Backend("10.10.1.2", 80), Backend("10.10.1.3", 80))
    lbs = [LoadBalancer("LS", "LS-A", "web", "10.10.1.100", 80, "tcp", bs, check="tcp"),
           LoadBalancer("LS", "LS-A", "aff", "10.10.1.101", 53, "udp", bs, affinity=30),
           LoadBalancer("LR", "LR-central", "r", "10.10.9.9", 80, "tcp", bs, check="http:/h")]
    return {**base, **{(lb.kind, lb.dp, lb.name): lb for lb in lbs}, ("lbh", "LS", "LS-A", "web", "10.10.1.3:80"): True}


SCENARIOS = _scenarios()


def _flows(facts: dict) -> list:
    e = Engine(build_view(facts))
    e.full()
    return list(e.active.values())


def _targets(actions) -> list[int]:
    out = []
    for a in actions:
        if isinstance(a, Resubmit):
            out.append(a.table)
        elif isinstance(a, Ct) and a.table is not None:
            out.append(a.table)
    return out


def _sets(actions) -> set[str]:
    return {a.dst if isinstance(a, Move) else a.field for a in actions if isinstance(a, Load | SetField | Move)}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_generated_flow_obeys_its_stage(scenario: str) -> None:
    flows = _flows(SCENARIOS[scenario])
    assert flows
    problems = []
    for f in flows:
        st = S.stage_of(f.table)
        if st is None:
            problems.append(f"unregistered table: {f.body_text()}")
            continue
        if st.band(f.priority) is None:
            problems.append(f"{st.name}: priority {f.priority} outside its bands {st.bands}: {f.body_text()}")
        allowed = {S.table(n) for n in st.next}
        for t in _targets(f.actions):
            stg = S.stage_of(t)
            if t not in allowed and not (stg and not stg.next):  # subroutines may be called from anywhere
                problems.append(f"{st.name}: continues to table {t} not in {st.next}: {f.body_text()}")
        bad_match = {m.field for m in f.match} - st.matches
        if bad_match:
            problems.append(f"{st.name}: matches undeclared {sorted(bad_match)}: {f.body_text()}")
        bad_set = _sets(f.actions) - st.sets
        if bad_set:
            problems.append(f"{st.name}: sets undeclared {sorted(bad_set)}: {f.body_text()}")
        if st.reserved and f.priority != 0:
            problems.append(f"reserved stage {st.name} has a rule: {f.body_text()}")
    assert not problems, "\n".join(problems)


def test_each_declared_default_is_generated_once() -> None:
    flows = _flows(SCENARIOS["tutorial"])
    for st in S.STAGES:
        if st.default is None:
            continue
        zero = [f for f in flows if f.table == st.table and f.priority == 0 and not f.match]
        want = (Resubmit(S.table(st.default)),) if st.default else ()
        assert [f.actions for f in zero] == [want], st.name


def test_registry_rejects_inconsistencies() -> None:
    assert len({s.table for s in S.STAGES}) == len(S.STAGES)
    broken = S.Stage("x", 250, ("nowhere",), "nowhere")
    saved = S.STAGES
    try:
        S.STAGES = (*saved, broken)
        S.BY_NAME["x"] = broken
        with pytest.raises(ValueError, match="unknown stage nowhere"):
            S.check()
    finally:
        S.STAGES = saved
        S.BY_NAME.pop("x", None)


def test_geneve_layout_fits_the_option() -> None:
    cls, typ, nbytes = S.GENEVE_OPTION
    used = sorted((ofs, ofs + bits) for _, ofs, bits in S.GENEVE_LAYOUT)
    assert all(a[1] <= b[0] for a, b in zip(used, used[1:], strict=False))
    assert used[-1][1] <= nbytes * 8


def test_architecture_doc_shows_the_current_layout() -> None:
    import pathlib

    doc = (pathlib.Path(__file__).parents[2] / "docs" / "architecture.md").read_text()
    assert S.markdown() in doc, "regenerate the stage table in docs/architecture.md from stages.markdown()"
