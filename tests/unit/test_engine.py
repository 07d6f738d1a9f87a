"""The incremental engine must always equal a full recompute of the same final view."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from topo_helpers import build_view, tutorial_facts

from tuplenet.agent.engine import Engine
from tuplenet.agent.flow import Flow, Output, ToGroup, match
from tuplenet.agent.openflow.meters import MeterSpec, meter_id
from tuplenet.agent.outputs import Bucket, DerivedKind, Group, group_id
from tuplenet.agent.pipeline import DERIVED
from tuplenet.agent.view import PATCH_IP, View, route_group
from tuplenet.model import LNAT, LR, LRP, LS, LSP, LSR, Chassis


def _rgroup_of(key: tuple, obj: object) -> list[tuple]:
    """Test-only derived kind: every route (static or connected) to one prefix on one router."""
    return [("rgroup", key[1], *route_group(obj.ip, obj.prefix))]


def _rgroup_outputs(r, owner: tuple, members: list[tuple]) -> list:
    """A select group per prefix plus a flow using it and a meter sized by the member count. Ids are
    deliberately narrow (low byte of the network, member count) so different owners collide and the
    conflict rule is exercised for every output type."""
    buckets = []
    for k in members:
        obj = r.get(k)
        if obj is not None:
            buckets.append(Bucket((Output(len(buckets) + 1),), weight=10 + len(obj.name)))
    gid = group_id(owner[2] & 0xFF)
    return [Group(gid, "select", tuple(buckets)),
            Flow(200, 5, match(reg1=owner[2] & 0xFF), (ToGroup(gid),)),
            MeterSpec(meter_id(300 + len(members)), 10 * len(owner[1]), 5)]


RGROUPS = DerivedKind("rgroup", ("lsr", "lrp"), _rgroup_of, _rgroup_outputs)
KINDS = (*DERIVED, RGROUPS)

BASE = tutorial_facts()

# Alternative values each key may take (None = deleted), chosen to hit the interesting interactions:
# moves between chassis, pinning routers, id clashes, duplicate MACs, rebinding, tunnels coming and going.
ALTERNATIVES: dict[tuple, list[object]] = {k: [v, None] for k, v in BASE.items()}
ALTERNATIVES[("LS", "LS-A")] += [LS("LS-A", 7), LS("LS-A", 2)]  # 2 clashes with LS-B
ALTERNATIVES[("LR", "LR-central")] += [LR("LR-central", 3, "hv2"), LR("LR-central", 3, "hv1")]
ALTERNATIVES[("lsp", "LS-A", "vm1")] += [LSP("LS-A", "vm1", "10.10.1.2", "f2:01:0a:0a:01:02", None, "hv2"),
                                          LSP("LS-A", "vm1", "10.10.1.9", "f2:01:0a:0a:01:03", None, "hv1")]
ALTERNATIVES[("lsp", "LS-A", "vm2")] += [LSP("LS-A", "vm2", "10.10.1.3", "f2:01:0a:0a:01:03", None, "hv1")]
ALTERNATIVES[("lsp", "LS-B", "vm1")] = [None, LSP("LS-B", "vm1", "10.10.2.9", "f2:01:0a:0a:02:09", None, "hv1")]
ALTERNATIVES[("lrp", "LR-central", "LR-central_to_LS-B")] += [
    LRP("LR-central", "LR-central_to_LS-B", "10.10.2.1", 16, "f2:01:0a:0a:02:01", "LS-B_to_LR-central")]
ALTERNATIVES[("lsr", "LR-central", "r2")] = [None, LSR("LR-central", "r2", "0.0.0.0", 0, "10.10.1.3",
                                                       "LR-central_to_LS-A")]
ALTERNATIVES[("lsr", "LR-central", "r3")] = [None, LSR("LR-central", "r3", "192.168.0.0", 16, "10.10.2.2",
                                                       "LR-central_to_LS-B")]
ALTERNATIVES[("lnat", "LR-central", "snat1")] = [None, LNAT("LR-central", "snat1", "10.10.1.0", 24, "snat",
                                                             "172.20.0.5")]
# Floating IP pairs forming and breaking (a rule reads its partner), SNAT to the router's own address.
ALTERNATIVES[("lnat", "LR-central", "fip-s")] = [None, LNAT("LR-central", "fip-s", "10.10.1.2", 32, "snat", "172.20.0.9"),
                                                 LNAT("LR-central", "fip-s", "10.10.1.0", 24, "snat", "10.10.2.1")]
ALTERNATIVES[("lnat", "LR-central", "fip-d")] = [None, LNAT("LR-central", "fip-d", "10.10.1.2", 32, "dnat", "172.20.0.9")]
# Gateway facts: learned next hops (one shadowed by a port that has its address), the gateway flag, a patch ofport.
ALTERNATIVES[("neigh", "LR-central", "LR-central_to_LS-B", "10.10.2.254")] = [None, "02:00:00:00:00:01",
                                                                              "02:00:00:00:00:02"]
ALTERNATIVES[("neigh", "LR-central", "LR-central_to_LS-B", "10.10.2.2")] = [None, "02:00:00:00:00:03"]
ALTERNATIVES[("gateway",)] = [None, True]
ALTERNATIVES[("patchport", "patch1")] = [None, 8]
ALTERNATIVES[("bind", "vm1")] += [5]
ALTERNATIVES[("bind", "vm2")] = [None, 6]
ALTERNATIVES[("tun", "hv2")] += [11]
ALTERNATIVES[("chassis", "hv3")] = [None, Chassis("hv3", "192.168.100.4", 1)]
ALTERNATIVES[("self",)] = ["hv1", "hv2"]
# Tunnel wishes: chassis sharing an IP (newest tick wins), our own IP, a chassis moving to another IP.
ALTERNATIVES[("selfip",)] = [None, "192.168.100.2", "192.168.100.3"]
ALTERNATIVES[("chassis", "hv2")] += [Chassis("hv2", "192.168.100.4", 5)]
ALTERNATIVES[("chassis", "hv4")] = [None, Chassis("hv4", "192.168.100.3", 2), Chassis("hv4", "192.168.100.4", 9)]
# Patch-port wishes, one name in two switches (the wish identity clashes).
ALTERNATIVES[("lsp", "LS-A", "patch1")] = [None, LSP("LS-A", "patch1", PATCH_IP, "f2:01:0a:0a:01:50", "br-ex", "hv1"),
                                           LSP("LS-A", "patch1", PATCH_IP, "f2:01:0a:0a:01:50", "br-ex", "hv2")]
ALTERNATIVES[("lsp", "LS-B", "patch1")] = [None, LSP("LS-B", "patch1", PATCH_IP, "f2:01:0a:0a:02:50", "br-ph", "hv1")]
# Route groups (the derived kind): equal-cost routes joining and leaving one prefix.
ALTERNATIVES[("lsr", "LR-central", "r4")] = [None, LSR("LR-central", "r4", "0.0.0.0", 0, "10.10.1.4",
                                                       "LR-central_to_LS-A"),
                                             LSR("LR-central", "r4", "192.168.0.0", 16, "10.10.1.5",
                                                 "LR-central_to_LS-A")]
KEYS = sorted(ALTERNATIVES, key=repr)

step = st.tuples(st.sampled_from(KEYS), st.integers(min_value=0, max_value=3))


def snapshot(engine: Engine) -> dict:
    return {k: f.cookie for k, f in engine.active.items()}


def outputs(engine: Engine) -> dict:
    return {kind: engine.desired_outputs(kind) for kind in ("group", "meter", "wish")}


@settings(max_examples=300, deadline=None, derandomize=True)  # same examples every run: CI stays deterministic
@given(st.lists(step, min_size=1, max_size=25))
def test_incremental_equals_full(steps: list[tuple[tuple, int]]) -> None:
    view = build_view(BASE)
    engine = Engine(view, derived=KINDS)
    engine.full()
    installed = {f.cookie for f in engine.active.values()}
    installed_outs = dict(engine.outs.active)
    for rev, (key, choice) in enumerate(steps, start=100):
        alts = ALTERNATIVES[key]
        changed: set = set()
        value = alts[choice % len(alts)]
        # etcd semantics: a record keeps its create revision across updates and gets a new one when
        # re-created, which re-ranks it among duplicates (MAC/IP/id clashes are in the alternatives).
        created = 0 if key[0] in ("bind", "tun", "self", "selfip") else view.created.get(key) or rev
        view.apply(key, value, changed, created if value is not None else 0)
        delta = engine.process(changed)
        deletes, adds = delta
        # The deltas must be applicable to what is installed: delete only what is there.
        assert set(deletes) <= installed
        installed -= set(deletes)
        installed |= {f.cookie for f in adds}
        for ident, old, new in delta.changes:  # every other output: old is what we installed before
            assert installed_outs.get(ident) == old
            if new is None:
                del installed_outs[ident]
            else:
                installed_outs[ident] = new
    fresh_view = View()
    for k, v in view.facts.items():
        fresh_view.apply(k, v, set(), view.created.get(k, 0))
    fresh = Engine(fresh_view, derived=KINDS)
    fresh.full()
    assert snapshot(engine) == snapshot(fresh)
    assert {t: n for t, n in engine.per_table.items() if n} == fresh.per_table  # the metrics' flow counts
    assert installed == {f.cookie for f in fresh.active.values()}
    assert outputs(engine) == outputs(fresh)
    assert installed_outs == fresh.outs.active
    assert engine.members == fresh.members
    again = engine.full()  # a resync of an up-to-date engine changes nothing
    assert not again.deletes and not again.adds and not again.changes


def test_delete_and_recreate_gives_same_flows() -> None:
    view = build_view(BASE)
    engine = Engine(view)
    engine.full()
    before = snapshot(engine)
    changed: set = set()
    for k in [k for k in BASE if k[0] in ("LS", "LR", "lsp", "lrp", "lsr")]:
        view.apply(k, None, changed)
    engine.process(changed)
    local_only = Engine(build_view({k: v for k, v in BASE.items() if k[0] in ("self", "chassis", "bind", "tun",
                                                                                "tunfb")}))
    local_only.full()
    assert snapshot(engine) == snapshot(local_only)
    assert len(before) > len(snapshot(engine)) + 20
    changed = set()
    for k, v in BASE.items():
        view.apply(k, v, changed)
    engine.process(changed)
    assert snapshot(engine) == before


def test_duplicate_mac_conflict_is_order_independent() -> None:
    dup = LSP("LS-A", "vmX", "10.10.1.50", "f2:01:0a:0a:01:02", None, "hv1")  # same MAC as vm1
    facts = dict(BASE)
    facts[("lsp", "LS-A", "vmX")] = dup
    facts[("bind", "vmX")] = 7
    a = Engine(build_view(facts))
    a.full()
    view = build_view(BASE)
    b = Engine(view)
    b.full()
    changed: set = set()
    view.apply(("lsp", "LS-A", "vmX"), dup, changed)
    view.apply(("bind", "vmX"), 7, changed)
    b.process(changed)
    assert snapshot(a) == snapshot(b)
    # The later port repeating vm1's MAC is shadowed: no flow of its own, hence no conflict to resolve.
    assert a.stats.conflicts == 0
    assert not [f for f in a.active.values() if ("in_port", 7) in [(m.field, m.value) for m in f.match]]


def test_unrelated_change_recomputes_few_owners() -> None:
    view = build_view(BASE)
    engine = Engine(view)
    engine.full()
    n0 = engine.stats.owners_computed
    changed: set = set()
    view.apply(("lsp", "LS-B", "vm9"), LSP("LS-B", "vm9", "10.10.2.9", "f2:01:0a:0a:02:09", None, "hv2"), changed)
    deletes, adds = engine.process(changed)
    assert engine.stats.owners_computed - n0 == 1
    assert not deletes and len(adds) >= 2


def test_empty_view_has_only_constant_flows() -> None:
    engine = Engine(View())
    _, adds = engine.full()
    assert adds and all(f.table != 6 or f.priority == 0 for f in adds)


def _reference_tunnels(view: View, self_id: str, self_ip: str | None) -> dict[str, str]:
    """The daemon's former scan of the whole view: one tunnel per remote IP, newest tick wins."""
    by_ip: dict[str, tuple[int, str]] = {}
    for k in view.members(("I", "chassis")):
        ch = view.facts[k]
        if k[1] == self_id or ch.ip == self_ip:
            continue
        cur = by_ip.get(ch.ip)
        if cur is None or (ch.tick, k[1]) > cur:
            by_ip[ch.ip] = (ch.tick, k[1])
    return {name: ip for ip, (_, name) in by_ip.items()}


def _wishes(engine: Engine, kind: str) -> dict:
    return {w.key[0]: w.value for w in engine.desired_outputs("wish", kind).values()}


chassis_step = st.tuples(st.sampled_from(["hv1", "hv2", "hv3", "hv4", "hv5"]),
                         st.one_of(st.none(), st.tuples(st.sampled_from(["10.0.0.1", "10.0.0.2", "10.0.0.3"]),
                                                        st.integers(0, 3))))


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(chassis_step, max_size=20), st.sampled_from([None, "10.0.0.1", "10.0.0.9"]))
def test_tunnel_wishes_equal_the_former_view_scan(steps: list, self_ip: str | None) -> None:
    view = build_view({("self",): "hv1", ("selfip",): self_ip} if self_ip else {("self",): "hv1"})
    engine = Engine(view)
    engine.full()
    for name, val in steps:
        changed: set = set()
        view.apply(("chassis", name), Chassis(name, val[0], val[1]) if val else None, changed)
        engine.process(changed)
        assert _wishes(engine, "tunnel") == _reference_tunnels(view, "hv1", self_ip)


def test_patch_wishes_follow_the_local_patch_ports() -> None:
    view = build_view(BASE)
    engine = Engine(view)
    engine.full()
    assert _wishes(engine, "patch") == {}
    changed: set = set()
    view.apply(("lsp", "LS-A", "p1"), LSP("LS-A", "p1", PATCH_IP, "f2:01:0a:0a:01:60", "br-ex", "hv1"), changed)
    view.apply(("lsp", "LS-A", "p2"), LSP("LS-A", "p2", PATCH_IP, "f2:01:0a:0a:01:61", "br-ex", "hv2"), changed)
    delta = engine.process(changed)
    assert _wishes(engine, "patch") == {"p1": "br-ex"}
    assert [(c[0], c[1]) for c in delta.of("wish", "patch")] == [(("wish", "patch", "p1"), None)]
    changed = set()
    view.apply(("self",), "hv2", changed)
    engine.process(changed)
    assert _wishes(engine, "patch") == {"p2": "br-ex"}
    n0 = engine.stats.owners_computed
    changed = set()
    view.apply(("lsp", "LS-B", "vm7"), LSP("LS-B", "vm7", "10.10.2.7", "f2:01:0a:0a:02:07", None, "hv2"), changed)
    engine.process(changed)
    assert engine.stats.owners_computed - n0 == 1  # a new VM port recomputes itself, not every patch or tunnel


def test_derived_owner_is_recomputed_with_its_members_and_dropped_without_them() -> None:
    view = build_view(BASE)
    engine = Engine(view, derived=KINDS)
    engine.full()
    owner = ("rgroup", "LR-central", *route_group("0.0.0.0", 0))
    assert engine.members[owner] == {("lsr", "LR-central", "default")}
    gid = group_id(0)  # shared with the connected /24 routes' owners (conflicting on purpose)

    def group_of_owner() -> Group:
        return next(x for x in engine.owner_outs[owner] if isinstance(x, Group))

    assert len(group_of_owner().buckets) == 1
    changed: set = set()
    extra = LSR("LR-central", "r9", "0.0.0.0", 0, "10.10.1.9", "LR-central_to_LS-A")
    view.apply(("lsr", "LR-central", "r9"), extra, changed)
    engine.process(changed)
    assert len(group_of_owner().buckets) == 2
    changed = set()
    view.apply(("lsr", "LR-central", "r9"), None, changed)
    view.apply(("lsr", "LR-central", "default"), None, changed)
    delta = engine.process(changed)
    assert owner not in engine.members and owner not in engine.owner_outs and owner not in engine.owner_flows
    # Its two-member meter had no other candidate: withdrawn; the /24 owners' group candidates stay.
    assert [(c[0], c[2]) for c in delta.of("meter")] == [(("meter", meter_id(302)), None)]
    assert ("group", gid) in engine.outs.active


def test_const_owner_produces_the_meters() -> None:
    from tuplenet.agent.pipeline import const

    engine = Engine(View())
    delta = engine.full()
    deletes, adds = delta  # a Delta still unpacks as (deletes, adds)
    assert not deletes and adds
    assert {m.meter_id for m in engine.desired_outputs("meter").values()} == {m.meter_id for m in const.meters()}
    assert len(delta.of("meter")) == len(const.meters())


def test_a_record_the_derived_kind_cannot_read_is_left_out_not_fatal() -> None:
    view = build_view(BASE)
    engine = Engine(view, derived=KINDS)
    engine.full()
    changed: set = set()
    view.apply(("lsr", "LR-central", "bad"), LSR("LR-central", "bad", "10.1.0.0", 16, "10.10.1.7", "x"), changed)
    view.facts[("lsr", "LR-central", "bad")] = LSR("LR-central", "bad", "not-an-ip", 16, "10.10.1.7", "x")
    engine.process(changed)  # route_group() raises for this record: no exception escapes
    assert ("lsr", "LR-central", "bad") not in engine._member_of
    assert engine.full() is not None
