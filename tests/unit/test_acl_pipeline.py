"""ACL flow generation (agent/pipeline/acl.py): conjunctive matches, per-switch conntrack flows, no cost for
switches without ACLs, verdict actions, and incremental == full recompute."""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from topo_helpers import build_view, tutorial_facts

from tuplenet.agent import tables as T
from tuplenet.agent.engine import Engine
from tuplenet.agent.flow import Conjunction, Ct, M, Resubmit
from tuplenet.agent.pipeline import acl as A
from tuplenet.model.acl import AddressSet, PortGroup, make_acl, parse_net


def _acl(parent: str, name: str, on_pg: bool = False, **kw: str):
    return make_acl(parent, name, kw, on_pg=on_pg)


def _aset(name: str, n: int, base: str = "10.20") -> AddressSet:
    return AddressSet(name, tuple(sorted(parse_net(f"{base}.{i // 250}.{i % 250 + 1}") for i in range(n))))


def _flows(facts: dict) -> list:
    e = Engine(build_view(facts))
    e.full()
    return list(e.active.values())


def _acl_flows(facts: dict) -> list:
    tabs = {T.LS_IN_ACL, T.LS_IN_ACL_EVAL, T.LS_OUT_ACL, T.LS_OUT_ACL_EVAL, T.ACL_DENY, T.ACL_REJECT}
    return [f for f in _flows(facts) if f.table in tabs and f.priority != 0]


def test_range_masks_cover_exactly_the_range() -> None:
    for lo, hi in [(0, 65535), (80, 80), (1000, 1999), (1, 65534), (1024, 65535), (22, 23)]:
        covered = set()
        for v, m in A.range_masks(lo, hi):
            size = (~m & 0xFFFF) + 1
            assert v & ~m & 0xFFFF == 0
            covered |= set(range(v, v + size))
        assert covered == set(range(lo, hi + 1))
    assert len(A.range_masks(1, 65534)) == 30


def test_switch_without_acls_pays_nothing() -> None:
    assert _acl_flows(tutorial_facts()) == []
    f = tutorial_facts()
    f[("acl", "LS-A", "r1")] = _acl("LS-A", "r1", direction="in", priority="10", action="drop", proto="udp")
    flows = _acl_flows(f)
    dps = {m.value for fl in flows for m in fl.match if m.field == "metadata"}
    assert dps == {1}  # LS-A only; LS-B (id 2) has no conntrack flow
    assert any(fl.table == T.LS_IN_ACL and any(isinstance(a, Ct) and a.zone == 1 for a in fl.actions)
               for fl in flows)


def test_address_set_times_port_range_is_a_conjunction_not_a_product() -> None:
    f = tutorial_facts()
    f[("address_set", "big")] = _aset("big", 1000)
    f[("acl", "LS-A", "r1")] = _acl("LS-A", "r1", direction="in", priority="100", action="allow-related",
                                     src="$big", proto="tcp", dport="1000-1999")
    rule = [fl for fl in _acl_flows(f) if fl.table == T.LS_IN_ACL_EVAL and fl.priority == A.RULE_BASE + 100]
    clauses = [fl for fl in rule if all(isinstance(a, Conjunction) for a in fl.actions)]
    conj = [fl for fl in rule if any(m.field == "conj_id" for m in fl.match)]
    n_ranges = len(A.range_masks(1000, 1999))
    assert len(clauses) == 1000 + n_ranges
    assert len(conj) == 1 and len(rule) == 1000 + n_ranges + 1
    assert any(isinstance(a, Ct) and a.commit for a in conj[0].actions)


def test_rules_sharing_an_address_set_share_its_flows() -> None:
    f = tutorial_facts()
    f[("address_set", "big")] = _aset("big", 500)
    for i in range(20):
        f[("acl", "LS-A", f"r{i}")] = _acl("LS-A", f"r{i}", direction="in", priority="100", action="allow",
                                            src="$big", proto="tcp", dport=f"{2000 + 10 * i}-{2005 + 10 * i}")
    rule = [fl for fl in _acl_flows(f) if fl.table == T.LS_IN_ACL_EVAL and fl.priority == A.RULE_BASE + 100]
    addr = [fl for fl in rule if any(m.field == "nw_src" for m in fl.match)]
    assert len(addr) == 500  # one per address, each with 20 conjunction actions
    assert all(len(fl.actions) == 20 for fl in addr)
    assert len(rule) < 500 + 20 * 4 + 20 + 1


def test_single_dimension_rule_is_plain_flows() -> None:
    f = tutorial_facts()
    f[("acl", "LS-A", "r1")] = _acl("LS-A", "r1", direction="out", priority="5", action="drop",
                                     dst="10.10.1.0/24", proto="tcp", dport="22")
    rule = [fl for fl in _acl_flows(f) if fl.table == T.LS_OUT_ACL_EVAL and fl.priority == A.RULE_BASE + 5]
    assert len(rule) == 1
    fl = rule[0]
    assert M("tcp_dst", 22) in fl.match and M("nw_dst", 0x0A0A0100, 0xFFFFFF00) in fl.match
    assert fl.actions == (Resubmit(T.ACL_DENY),)


def test_port_group_rule_matches_its_ports_on_each_switch() -> None:
    f = tutorial_facts()
    f[("port_group", "web")] = PortGroup("web", (("LS-A", "vm1"), ("LS-A", "vm2"), ("LS-B", "vm3")))
    f[("pg_acl", "web", "r1")] = _acl("web", "r1", True, direction="in", priority="7", action="reject",
                                       proto="udp")
    rule = [fl for fl in _acl_flows(f) if fl.table == T.LS_IN_ACL_EVAL and fl.priority == A.RULE_BASE + 7]
    got = sorted((dict((m.field, m.value) for m in fl.match)["metadata"],
                  dict((m.field, m.value) for m in fl.match)[T.R_SRC_PORT]) for fl in rule)
    assert got == [(1, 0x0102), (1, 0x0103), (2, 0x0202)]
    assert all(fl.actions == (Resubmit(T.ACL_DENY), Resubmit(T.ACL_REJECT)) for fl in rule)


def test_empty_address_set_matches_nothing() -> None:
    f = tutorial_facts()
    f[("address_set", "none")] = AddressSet("none", ())
    f[("acl", "LS-A", "r1")] = _acl("LS-A", "r1", direction="in", priority="1", action="drop", src="$none")
    assert [fl for fl in _acl_flows(f) if fl.table == T.LS_IN_ACL_EVAL and fl.priority == A.RULE_BASE + 1] == []


@pytest.mark.parametrize("step", range(4))
def test_incremental_equals_full_recompute(step: int) -> None:
    f = tutorial_facts()
    f[("address_set", "as1")] = _aset("as1", 30)
    f[("port_group", "pg")] = PortGroup("pg", (("LS-A", "vm1"),))
    f[("acl", "LS-A", "r1")] = _acl("LS-A", "r1", direction="in", priority="10", action="allow-related",
                                     src="$as1", proto="tcp", dport="80-90")
    f[("pg_acl", "pg", "r2")] = _acl("pg", "r2", True, direction="out", priority="10", action="drop",
                                      src="@pg", proto="tcp", dport="80-90")
    e = Engine(build_view(f))
    e.full()
    changes = [
        [(("address_set", "as1"), _aset("as1", 5))],
        [(("port_group", "pg"), PortGroup("pg", (("LS-A", "vm1"), ("LS-A", "vm2"))))],
        [(("acl", "LS-A", "r1"), None)],
        [(("acl", "LS-A", "r3"), _acl("LS-A", "r3", direction="in", priority="10", action="drop", src="$as1",
                                      proto="tcp", dport="80-90"))],
    ][step]
    changed: set = set()
    for k, o in changes:
        e.view.apply(k, o, changed)
        if o is None:
            f.pop(k, None)
        else:
            f[k] = o
    e.process(changed)
    want = Engine(build_view(f))
    want.full()
    assert {fl.cookie for fl in e.active.values()} == {fl.cookie for fl in want.active.values()}


# ---- the offline trace walks ACL flows (conntrack as a new connection, conjunctions as OVS evaluates them)

def _trace(extra: dict, sport: int, dport: int, src: str = "10.9.0.3"):
    from tuplenet.model import LSP
    from tuplenet.trace import packet as TP
    from tuplenet.trace.fabric import Fabric, Model

    f = tutorial_facts()
    f[("lsp", "LS-A", "vm5")] = LSP("LS-A", "vm5", "10.10.1.5", "f2:01:0a:0a:01:05", None, "hv1",
                                    port_security=False)
    f.update(extra)
    pkt = TP.packet(dl_src=0xF2010A0A0105, dl_dst=0xF2010A0A0102, dl_type=0x0800, nw_proto=6,
                    nw_src=int.from_bytes(bytes(int(x) for x in src.split(".")), "big"), nw_dst=0x0A0A0102,
                    nw_ttl=64, tcp_src=sport, tcp_dst=dport)
    t = Fabric(Model(f)).trace("LS-A", "vm5", pkt)
    return t, [s for h in t.hops for s in h.trace.steps]


def test_trace_follows_a_conjunctive_rule() -> None:
    f = {("address_set", "clients"): _aset("clients", 8, "10.9"),
         ("acl", "LS-A", "deny"): _acl("LS-A", "deny", direction="in", priority="1", action="drop"),
         ("acl", "LS-A", "web"): _acl("LS-A", "web", direction="in", priority="100", action="allow",
                                      src="$clients", proto="tcp", dport="80-90")}
    t, steps = _trace(f, 40000, 85, "10.9.0.3")
    assert t.outcomes[0]["result"] == "delivered", t.outcomes
    hit = [s for s in steps if s.table == T.LS_IN_ACL_EVAL]
    assert hit and hit[0].priority == A.RULE_BASE + 100  # the conj_id flow of "web"
    t, steps = _trace(f, 40000, 91, "10.9.0.3")  # outside the port range: the low-priority drop
    assert t.outcomes[0]["result"] != "delivered"
    assert [s.priority for s in steps if s.table == T.LS_IN_ACL_EVAL] == [A.RULE_BASE + 1]
    t, _ = _trace(f, 40000, 85, "10.9.9.9")  # not in the address set
    assert t.outcomes[0]["result"] != "delivered"


# ---- property: incremental == full recompute under random ACL / set / group / port changes

_PORTS = [("LS-A", "vm1"), ("LS-A", "vm2"), ("LS-B", "vm3"), ("LS-A", "ghost")]


def _random_change(rnd, f: dict) -> tuple[tuple, object]:
    from tuplenet.model import LS, LSP

    kind = rnd.choice(["rule", "rule", "pgrule", "set", "group", "port", "switch", "delete"])
    if kind in ("rule", "pgrule"):
        on_pg = kind == "pgrule"
        parent = rnd.choice(["pg", "pg2"]) if on_pg else rnd.choice(["LS-A", "LS-B", "LS-X"])
        kw = {"direction": rnd.choice(["in", "out"]), "priority": str(rnd.choice([1, 5, 100])),
              "action": rnd.choice(["allow", "allow-related", "drop", "reject"])}
        if rnd.random() < 0.7:
            kw["src"] = rnd.choice(["$as1", "$as2", "@pg", "10.9.0.0/24", "10.10.1.2"])
        if rnd.random() < 0.4:
            kw["dst"] = rnd.choice(["$as2", "@pg2", "10.10.0.0/16"])
        if rnd.random() < 0.6:
            kw["proto"] = rnd.choice(["tcp", "udp", "icmp"])
            if kw["proto"] != "icmp" and rnd.random() < 0.7:
                kw["dport"] = rnd.choice(["80", "80-90", "1000-2000"])
        name = f"r{rnd.randint(0, 5)}"
        return ("pg_acl" if on_pg else "acl", parent, name), _acl(parent, name, on_pg, **kw)
    if kind == "set":
        name = rnd.choice(["as1", "as2"])
        return ("address_set", name), _aset(name, rnd.randint(0, 12), rnd.choice(["10.9", "10.10"]))
    if kind == "group":
        name = rnd.choice(["pg", "pg2"])
        return ("port_group", name), PortGroup(name, tuple(sorted(rnd.sample(_PORTS, rnd.randint(0, 3)))))
    if kind == "port":
        ls, name = rnd.choice(_PORTS)
        ip = f"10.10.{1 if ls == 'LS-A' else 2}.{rnd.randint(2, 9)}"
        return ("lsp", ls, name), LSP(ls, name, ip, f"f2:01:0a:0a:01:{rnd.randint(2, 250):02x}", None, "hv1")
    if kind == "switch":
        name = rnd.choice(["LS-A", "LS-B"])
        return ("LS", name), LS(name, rnd.choice([1, 2, 7]))
    keys = sorted((k for k in f if k[0] in ("acl", "pg_acl", "address_set", "port_group", "lsp")), key=repr)
    return (rnd.choice(keys), None) if keys else (("acl", "LS-A", "r0"), None)


@pytest.mark.fuzz
@given(seed=st.integers(0, 2**32))
@settings(max_examples=int(os.environ.get("TUPLENET_FUZZ_EXAMPLES", "10000")) // 50, derandomize=True,
          deadline=None, database=None)
def test_random_changes_incremental_equals_full(seed: int) -> None:
    rnd = random.Random(seed)
    f = {**tutorial_facts()}
    e = Engine(build_view(f))
    e.full()
    for _ in range(rnd.randint(1, 8)):
        k, o = _random_change(rnd, f)
        changed: set = set()
        e.view.apply(k, o, changed)
        if o is None:
            f.pop(k, None)
        else:
            f[k] = o
        e.process(changed)
    want = Engine(build_view(f))
    want.full()
    assert {fl.cookie for fl in e.active.values()} == {fl.cookie for fl in want.active.values()}
    assert e.desired_outputs("wish", A.HITS).keys() == want.desired_outputs("wish", A.HITS).keys()
