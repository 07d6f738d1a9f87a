"""Mirrors in the agent without a switch: the owner's wish (only where the port is bound) and the planner
(Mirror rows and collector ports we own; foreign rows and ports untouched)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tuplenet.agent.engine import Engine
from tuplenet.agent.ovsdb_mirror import (
    D_MIRROR,
    AddMirror,
    DelMirror,
    FixMirror,
    MirrorView,
    collector_port,
)
from tuplenet.agent.ovsdb_model import OF_PROTOCOLS, BridgeView, DbView, Desired, IfaceView, PortView
from tuplenet.agent.ovsdb_plan import AddPort, DelPort, Planner, plan
from tuplenet.agent.pipeline import compute
from tuplenet.agent.pipeline.mirror import revalidation_flow
from tuplenet.agent.tables import LS_IN_MIRROR
from tuplenet.agent.view import Reader, View
from tuplenet.model import LS, LSP
from tuplenet.model.mirror import Mirror, Target

GOOD_BR = dict(fail_mode="secure", protocols=frozenset(OF_PROTOCOLS), other_config={"disable-in-band": "true"})
ERSPAN_PORT = "tpme-0a000009-7"


def port(name: str, ofport: int, iface_id: str | None = None, typ: str = "dummy", **ext: str) -> PortView:
    ids = dict(ext) | ({"iface-id": iface_id} if iface_id else {})
    return PortView(name, (IfaceView(name, typ, {}, ids, ofport=ofport),))


def dbview(*ports: PortView, mirrors: tuple[MirrorView, ...] = ()) -> DbView:
    br = BridgeView("br-int", ports=ports, mirrors=mirrors, **GOOD_BR)  # type: ignore[arg-type]
    return DbView(system_id="hv1", bridges={"br-int": br})


def want(**mirrors: tuple) -> Desired:
    return Desired(mirrors=dict(mirrors))


# ---- the owner ----

def _view(chassis: str | None = "hv1", bind: int | None = 3) -> View:
    v, ch = View(), set()
    v.apply(("self",), "hv1", ch)
    v.apply(("LS", "LS-A"), LS("LS-A", 1), ch)
    v.apply(("lsp", "LS-A", "vm1"), LSP("LS-A", "vm1", "10.0.0.2", "f2:01:0a:00:00:02", None, chassis), ch)
    if bind is not None:
        v.apply(("bind", "vm1"), bind, ch)
    v.apply(("mirror", "m1"), Mirror("m1", "LS-A", "vm1", "out", Target("erspan", ip="10.0.0.9", key=7)), ch)
    return v


def test_owner_wishes_only_where_the_port_is_bound() -> None:
    assert [tuple(w) for w in compute(Reader(_view()), ("mirror", "m1"))] == [
        ("mirror", ("m1",), ("vm1", 3, "out", "erspan", "10.0.0.9", 7))]
    assert compute(Reader(_view(chassis="hv2")), ("mirror", "m1")) == []  # bound elsewhere
    assert compute(Reader(_view(bind=None)), ("mirror", "m1")) == []  # no interface here (yet)


def test_revalidation_flow_is_the_mirror_stage_pass_through() -> None:
    f = revalidation_flow()
    assert (f.table, f.priority) == (LS_IN_MIRROR, 0)
    assert f.to_text().endswith("actions=resubmit(,4)")


# ---- the planner ----

def test_collector_port_names_and_options() -> None:
    assert collector_port("erspan", "10.0.0.9", 7) == (
        ERSPAN_PORT, "erspan", {"remote_ip": "10.0.0.9", "key": "7", "erspan_ver": "1", "erspan_idx": "1"})
    assert collector_port("geneve", "10.0.0.9", 42) == ("tpmg-0a000009-42", "geneve",
                                                        {"remote_ip": "10.0.0.9", "key": "42"})


def test_local_mirror_row_by_direction() -> None:
    v = dbview(port("vm1", 3, "vm1"), port("mon", 4))
    for direction, src, dst in (("in", ("vm1",), ()), ("out", (), ("vm1",)), ("both", ("vm1",), ("vm1",))):
        p = plan(v, want(m1=("vm1", 3, direction, "local", "mon", 0)))
        assert p.actions == [AddMirror("br-int", "m1", src, dst, "mon")]


def test_mirror_waits_for_vm_port_and_local_output() -> None:
    assert plan(dbview(port("mon", 4)), want(m1=("vm1", 3, "in", "local", "mon", 0))).actions == []
    assert plan(dbview(port("vm1", 3, "vm1")), want(m1=("vm1", 3, "in", "local", "mon", 0))).actions == []
    # the engine saw another ofport: the row waits for the state to agree
    assert plan(dbview(port("vm1", 5, "vm1"), port("mon", 4)),
                want(m1=("vm1", 3, "in", "local", "mon", 0))).actions == []


def test_local_target_never_takes_bridge_tunnel_or_a_vm_port() -> None:
    v = dbview(port("vm1", 3, "vm1"), port("vm5", 5, "vm5"), port("br-int", 65534),
               port("tupleNet-1", 7, typ="geneve", **{"chassis-id": "hv9"}))
    w = Desired(mirrors={}, tunnels={"hv9": "0.0.0.1"})
    for out in ("br-int", "vm1", "vm5", "tupleNet-1"):
        w.mirrors = {"m1": ("vm1", 3, "in", "local", out, 0)}
        assert [a for a in plan(v, w).actions if isinstance(a, AddMirror)] == [], out


def test_remote_mirror_creates_port_first_then_row() -> None:
    w = want(m1=("vm1", 3, "both", "erspan", "10.0.0.9", 7))
    p = plan(dbview(port("vm1", 3, "vm1")), w)
    assert [type(a) for a in p.actions] == [AddPort]
    spec = p.actions[0].spec  # type: ignore[union-attr]
    assert (spec.name, spec.type, spec.external_ids) == (ERSPAN_PORT, "erspan", {"tuplenet-role": "mirror"})
    assert not p.converged(D_MIRROR)
    opts = collector_port("erspan", "10.0.0.9", 7)[2]
    made = PortView(ERSPAN_PORT, (IfaceView(ERSPAN_PORT, "erspan", opts, {"tuplenet-role": "mirror"}, ofport=9),))
    p = plan(dbview(port("vm1", 3, "vm1"), made), w)
    assert p.actions == [AddMirror("br-int", "m1", ("vm1",), ("vm1",), ERSPAN_PORT)]
    assert p.converged(D_MIRROR) is False  # converges once the row is there
    mv = MirrorView("u1", "tuplenet-m1", frozenset({"vm1"}), frozenset({"vm1"}), ERSPAN_PORT,
                    {"tuplenet-mirror": "m1"})
    assert plan(dbview(port("vm1", 3, "vm1"), made, mirrors=(mv,)), w).converged(D_MIRROR)


def test_existing_row_fixed_in_place_duplicates_and_unwanted_deleted_foreign_kept() -> None:
    ours = MirrorView("u1", "tuplenet-m1", frozenset({"vm1"}), frozenset(), "mon", {"tuplenet-mirror": "m1"})
    dup = MirrorView("u2", "tuplenet-m1", frozenset({"vm1"}), frozenset(), "mon", {"tuplenet-mirror": "m1"})
    stale = MirrorView("u3", "tuplenet-old", frozenset(), frozenset(), "mon", {"tuplenet-mirror": "old"})
    foreign = MirrorView("u4", "m1", frozenset({"vm1"}), frozenset(), "mon", {})
    v = dbview(port("vm1", 3, "vm1"), port("mon", 4), mirrors=(ours, dup, stale, foreign))
    p = plan(v, want(m1=("vm1", 3, "out", "local", "mon", 0)))
    assert p.actions == [FixMirror("u1", (), ("vm1",), "mon"), DelMirror("br-int", "u2"), DelMirror("br-int", "u3")]
    # unchanged: nothing to do
    assert plan(dbview(port("vm1", 3, "vm1"), port("mon", 4), mirrors=(ours, foreign)),
                want(m1=("vm1", 3, "in", "local", "mon", 0))).actions == []


def test_unmanaged_touches_nothing_and_empty_wish_removes_ours_only() -> None:
    ours = MirrorView("u1", "tuplenet-m1", frozenset({"vm1"}), frozenset(), ERSPAN_PORT, {"tuplenet-mirror": "m1"})
    foreign = MirrorView("u4", "x", frozenset({"vm1"}), frozenset(), "tpme-foreign", {})
    ports = (port("vm1", 3, "vm1"), port(ERSPAN_PORT, 9, typ="erspan", **{"tuplenet-role": "mirror"}),
             port("tpme-foreign", 10, typ="erspan"))
    assert plan(dbview(*ports, mirrors=(ours, foreign)), Desired()).actions == []  # mirrors None: not managed
    p = plan(dbview(*ports, mirrors=(ours, foreign)), want())
    assert sorted(map(repr, p.actions)) == sorted(map(repr, [DelMirror("br-int", "u1"),
                                                             DelPort("br-int", ERSPAN_PORT, D_MIRROR)]))


def test_collector_name_taken_by_a_foreign_port_is_left_alone() -> None:
    v = dbview(port("vm1", 3, "vm1"), port(ERSPAN_PORT, 9, typ="erspan"))  # no tuplenet-role mark
    p = plan(v, want(m1=("vm1", 3, "both", "erspan", "10.0.0.9", 7)))
    assert ERSPAN_PORT in p.foreign
    assert p.actions == []


def test_problems_name_what_an_operator_must_fix() -> None:
    v = dbview(port("vm1", 3, "vm1"), port("vm5", 5, "vm5"), port(ERSPAN_PORT, 9, typ="erspan"))
    planner = Planner()
    planner.plan(v, want(a=("vm1", 3, "in", "local", "vm5", 0), b=("vm1", 3, "in", "local", "nope", 0),
                         c=("vm1", 3, "in", "erspan", "10.0.0.9", 7), d=("vm1", 3, "in", "geneve", "10.0.0.9", 1)))
    assert planner.mirror_problems == {
        "a": "local target vm5 is a VM port",
        "b": "local target nope is not on br-int",
        "c": f"collector port name {ERSPAN_PORT} is taken by a port tuplenet did not create",
    }  # d: its collector port is being made, nothing to fix


def test_geneve_collector_at_a_chassis_tunnel_ip_is_refused() -> None:
    """A Geneve port with a fixed VNI to a chassis would take that chassis's tunnel traffic for the datapath
    with that id (and OVS drops what arrives on a mirror output)."""
    planner = Planner()
    w = Desired(tunnels={"hv2": "10.0.0.2"},
                mirrors={"g": ("vm1", 3, "in", "geneve", "10.0.0.2", 1), "e": ("vm1", 3, "in", "erspan", "10.0.0.2", 1)})
    p = planner.plan(dbview(port("vm1", 3, "vm1")), w)
    made = {a.spec.name for a in p.actions if isinstance(a, AddPort)}
    assert "tpmg-0a000002-1" not in made and "tpme-0a000002-1" in made
    assert planner.mirror_problems == {"g": "collector 10.0.0.2 is a chassis tunnel IP (use ERSPAN or another address)"}


# ---- incremental == recomputed, for mirror wishes under random changes ----

_LSPS = [("LS-A", "vm1"), ("LS-A", "vm2"), ("LS-B", "vm1")]  # vm1 twice: one iface-id, two switches
_OPS = st.one_of(
    st.tuples(st.just("mirror"), st.sampled_from(["m1", "m2"]), st.sampled_from(_LSPS),
              st.sampled_from(["in", "out", "both"]), st.sampled_from([Target("local", iface="mon"),
                                                                     Target("erspan", ip="10.0.0.9", key=7)])),
    st.tuples(st.just("lsp"), st.sampled_from(_LSPS), st.sampled_from(["hv1", "hv2", None])),
    st.tuples(st.just("bind"), st.sampled_from(["vm1", "vm2"]), st.sampled_from([3, 4])),
    st.tuples(st.just("claiming"), st.sampled_from(_LSPS), st.booleans()),
    st.tuples(st.just("del"), st.sampled_from(["mirror", "lsp", "bind"]), st.sampled_from([0, 1, 2])),
)


def _apply_op(v: View, op: tuple, changed: set) -> None:
    kind = op[0]
    if kind == "mirror":
        ls, lsp = op[2]
        v.apply(("mirror", op[1]), Mirror(op[1], ls, lsp, op[3], op[4]), changed)
    elif kind == "lsp":
        (ls, name), chassis = op[1], op[2]
        v.apply(("lsp", ls, name), LSP(ls, name, f"10.0.0.{2 + _LSPS.index(op[1])}", "f2:01:0a:00:00:02",
                                       None, chassis), changed)
    elif kind == "bind":
        v.apply(("bind", op[1]), op[2], changed)
    elif kind == "claiming":
        v.apply(("claiming", *op[1]), True if op[2] else None, changed)
    else:
        keys = {"mirror": [("mirror", "m1"), ("mirror", "m2"), ("mirror", "m1")],
                "lsp": [("lsp", *x) for x in _LSPS], "bind": [("bind", "vm1"), ("bind", "vm2"), ("bind", "vm1")]}
        v.apply(keys[op[1]][op[2]], None, changed)


@settings(derandomize=True, max_examples=300, deadline=None, database=None)
@given(st.lists(_OPS, max_size=12))
def test_incremental_mirror_wishes_equal_recomputation(ops: list[tuple]) -> None:
    v, ch = View(), set()
    v.apply(("self",), "hv1", ch)
    v.apply(("LS", "LS-A"), LS("LS-A", 1), ch)
    v.apply(("LS", "LS-B"), LS("LS-B", 2), ch)
    engine = Engine(v)
    engine.full()
    for op in ops:
        changed: set = set()
        _apply_op(v, op, changed)
        engine.process(changed)
        got = {i: w.value for i, w in engine.desired_outputs("wish", "mirror").items()}
        fresh = {("wish", "mirror", *w.key): w.value for k in v.keys_of(["mirror"])
                 for w in compute(Reader(v), k)}
        assert got == fresh, op
