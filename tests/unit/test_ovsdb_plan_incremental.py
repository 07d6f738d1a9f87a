"""The planner's port memo (ovsdb_plan_memo.PortMemo): a long-lived Planner fed views the way TrackingIdl builds
them (unchanged ports are the very same objects) plans exactly what a fresh full walk plans, and a small change
costs a small amount of work."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz_settings import fuzz
from tuplenet.agent.ovsdb_mirror import ROLE_MIRROR
from tuplenet.agent.ovsdb_model import (
    D_MARKS,
    DSRGW_PORT,
    FLOWBASED_PORT,
    INSTALLED_KEY,
    OF_PROTOCOLS,
    ROLE_DSRGW,
    ROLE_FLOWBASED,
    ROLE_KEY,
    ROLE_PATCH,
    BridgeView,
    DbView,
    Desired,
    IfaceView,
    PortView,
    tunnel_port_name,
)
from tuplenet.agent.ovsdb_plan import FixIface, Plan, Planner, _deletions, _existing, _marks, plan

GOOD_BR = dict(fail_mode="secure", protocols=frozenset(OF_PROTOCOLS), other_config={"disable-in-band": "true"})


def _iface(name: str, ofport: int, typ: str = "", options: dict | None = None, **ext: str) -> IfaceView:
    return IfaceView(name, typ, options or {}, ext, ofport=ofport)


def _tunnel(ip: str, chassis: str | None, ofport: int) -> PortView:
    name = tunnel_port_name(ip)
    ext = {"chassis-id": chassis} if chassis else {}
    return PortView(name, (_iface(name, ofport, "geneve", {"remote_ip": ip, "key": "flow", "csum": "true"}, **ext),))


# Port templates: (ofport) -> PortView. Names repeat on purpose (replacing a port, one name on two bridges).
TEMPLATES = [
    lambda o: PortView("vm1", (_iface("vm1", o, **{"iface-id": "lsp1"}),)),
    lambda o: PortView("vm2", (_iface("vm2", o, **{"iface-id": "lsp1"}),)),  # two ports, one iface-id
    lambda o: PortView("vm3", (_iface("vm3", o, **{"iface-id": "lsp2"}),)),
    lambda o: PortView("vm4", (_iface("vm4", o),)),  # no iface-id
    lambda o: PortView("bond0", (_iface("bond0a", o, **{"iface-id": "lsp2"}),
                                 _iface("bond0b", o, **{"iface-id": "lsp3"}))),
    lambda o: _tunnel("10.0.0.2", "hv2", o),
    lambda o: _tunnel("10.0.0.3", "hv3", o),
    lambda o: _tunnel("10.0.0.2", None, o),  # someone else's port with a tunnel name
    lambda o: PortView(FLOWBASED_PORT, (_iface(FLOWBASED_PORT, o, "geneve",
                                               {"remote_ip": "flow", "key": "flow", "csum": "true"},
                                               **{ROLE_KEY: ROLE_FLOWBASED}),)),
    lambda o: PortView("p1", (_iface("p1", o, "patch", {"peer": "p1-peer"}, **{"iface-id": "p1", ROLE_KEY: ROLE_PATCH}),)),
    lambda o: PortView("p1-peer", (_iface("p1-peer", o, "patch", {"peer": "p1"},
                                          **{"iface-id": "p1-peer", ROLE_KEY: ROLE_PATCH}),)),
    lambda o: PortView("p1", (_iface("p1", o, "system", **{"iface-id": "p1"}),)),  # foreign port named like a patch
    lambda o: PortView("mon1", (_iface("mon1", o, "erspan", **{ROLE_KEY: ROLE_MIRROR}),)),
    lambda o: PortView(DSRGW_PORT, (_iface(DSRGW_PORT, o, "internal", **{ROLE_KEY: ROLE_DSRGW}),)),
    lambda o: PortView(DSRGW_PORT, (_iface(DSRGW_PORT, o, "internal"),)),
]
BRIDGES = ["br-int", "br-ext"]
IIDS = ["lsp1", "lsp2", "lsp3", "p1"]
OFPORTS = [-1, 3, 4]
WISHES = {
    "tunnels": [None, {}, {"hv2": "10.0.0.2"}, {"hv2": "10.0.0.2", "hv3": "10.0.0.3"}],
    "patch_ports": [None, {}, {"p1": "br-ext"}],
    "mirrors": [None, {}],
    "dsrgw": [None, True, False],
    "ensure_bridge": [False, True],
}


class World:
    """Bridges of ports, turned into DbViews the way TrackingIdl does: a bridge nobody touched keeps its
    BridgeView and ports tuple, a port nobody touched keeps its PortView."""

    def __init__(self) -> None:
        self.ports: dict[str, list[PortView]] = {"br-int": [TEMPLATES[0](3), TEMPLATES[5](5)], "br-ext": []}
        self.order = list(BRIDGES)  # IDL row order; a bridge that comes back comes last
        self.built: dict[str, BridgeView] = {}
        self.dirty = set(BRIDGES)
        self.view = DbView()

    def touch(self, b: str) -> None:
        self.dirty.add(b)

    def rebridge(self, b: str, seed: int) -> None:
        """A change of the bridge row alone: a new BridgeView (and DbView) around the very same ports tuple."""
        if b in self.built and b in self.order:
            self.built[b] = replace(self.built[b], external_ids={"k": str(seed)})
            self.view = DbView(system_id="hv1", bridges={b: self.built[b] for b in self.order})

    def build(self) -> DbView:
        if self.dirty:
            for b in self.dirty:
                self.built[b] = BridgeView(b, ports=tuple(self.ports[b]), **GOOD_BR)  # type: ignore[arg-type]
            self.dirty.clear()
            self.view = DbView(system_id="hv1", bridges={b: self.built[b] for b in self.order})
        return self.view


def _at(ports: list[PortView], i: int) -> int | None:
    return i % len(ports) if ports else None


def _apply(w: World, d: Desired, op: tuple) -> bool:
    """Apply one step; True when the wish's wanted ports changed (the generation must move)."""
    kind, *args = op
    if kind == "put":
        b, t, ofport, pos = args
        port = TEMPLATES[t](ofport)
        ports = w.ports[b]
        same = next((i for i, p in enumerate(ports) if p.name == port.name), None)
        if same is None:
            ports.insert(pos % (len(ports) + 1), port)
        else:
            ports[same] = port
        w.touch(b)
    elif kind in ("del", "ofport", "mark", "clone", "dup"):
        b, i, arg = args
        ports = w.ports[b]
        at = _at(ports, i)
        if at is None:
            return False
        p = ports[at]
        if kind == "del":
            del ports[at]
        elif kind == "ofport":
            ports[at] = replace(p, ifaces=tuple(replace(f, ofport=OFPORTS[arg % 3]) for f in p.ifaces))
        elif kind == "mark":
            f = p.ifaces[arg % len(p.ifaces)]
            ext = {k: v for k, v in f.external_ids.items() if k != INSTALLED_KEY}
            if arg % 3:
                ext[INSTALLED_KEY] = "true" if arg % 3 == 1 else "false"
            ports[at] = replace(p, ifaces=tuple(replace(x, external_ids=ext) if x is f else x for x in p.ifaces))
        elif kind == "clone":  # equal but new objects (a row rewritten with the same values)
            ports[at] = PortView(p.name, tuple(replace(f) for f in p.ifaces) if arg % 2 else p.ifaces)
        else:  # two ports of one name on a bridge: only a broken database has that
            ports.insert(arg % (len(ports) + 1), replace(p))
        w.touch(b)
    elif kind == "shuffle":
        b, seed = args
        random.Random(seed).shuffle(w.ports[b])
        w.touch(b)
    elif kind == "rebridge":
        w.rebridge(*args)
    elif kind == "bridge":
        b, present = args
        if present and b not in w.order:
            w.order.append(b)
            w.touch(b)
        elif not present and b in w.order:
            w.order.remove(b)
            w.touch(b)
        return False  # the set of bridges is part of the planner's own key
    elif kind == "installed":
        iid, ofport, how, bump = args
        if how == 2 or d.installed is None:
            d.installed = {}
        if how == 0:  # set_installed: a new dict
            d.installed = dict(d.installed)
        if ofport is None:
            d.installed.pop(iid, None)
        else:
            d.installed[iid] = ofport  # how 1: changed in place
        return bump
    elif kind == "uninstalled":
        d.installed = None
        return args[0]
    elif kind == "wish":
        field, i = args
        values = WISHES[field]
        setattr(d, field, values[i % len(values)])
        return True
    return False


KINDS = ["put", "put", "del", "ofport", "ofport", "mark", "clone", "dup", "shuffle", "rebridge", "bridge",
         "installed", "installed", "uninstalled", "wish", "wish", "noop"]


def _decode(x: int) -> tuple:
    """One step from one integer: far cheaper for hypothesis to draw than a tree of strategies."""
    def take(n: int) -> int:
        nonlocal x
        x, v = divmod(x, n)
        return v
    kind = KINDS[take(len(KINDS))]
    b = BRIDGES[take(3) // 2]  # br-int twice as often
    if kind == "put":
        return kind, b, take(len(TEMPLATES)), OFPORTS[take(3)], take(8)
    if kind in ("del", "ofport", "mark", "clone", "dup"):
        return kind, b, take(8), take(8)
    if kind in ("shuffle", "rebridge"):
        return kind, b, take(8)
    if kind == "bridge":
        return kind, b, bool(take(2))
    if kind == "installed":
        return kind, IIDS[take(4)], [None, 3, 4][take(3)], take(3), bool(take(2))
    if kind == "uninstalled":
        return kind, bool(take(2))
    if kind == "wish":
        return kind, sorted(WISHES)[take(len(WISHES))], take(8)
    return (kind,)


def _same(got: Plan, want: Plan) -> bool:
    return (got.actions == want.actions and got.blocked == want.blocked and got.errors == want.errors
            and got.foreign == want.foreign)


def _check_memo(planner: Planner, view: DbView, d: Desired) -> None:
    """The memo's parts against the full walks, beyond what one plan's actions show."""
    memo = planner._memo
    if d.bridge not in view.bridges:  # nothing planned, nothing updated
        return
    dups = any(len({p.name for p in b.ports}) != len(b.ports) for b in view.bridges.values())
    assert (memo._key is None) == dups  # the full walk only when the memo cannot give its order
    if dups:
        return
    assert memo.existing == _existing(view)
    assert memo.deletions(set(), set()) == _deletions(view, d, set(), set())
    assert memo.marks() == _marks(view.bridges[d.bridge], d.installed or {})


@pytest.mark.fuzz
@fuzz
@given(st.lists(st.integers(0, 1 << 24), max_size=8), st.lists(st.integers(0, len(TEMPLATES) - 1), max_size=4))
def test_incremental_plan_equals_full_plan(steps: list[int], start: list[int]) -> None:
    w = World()
    for t in start:
        _apply(w, Desired(), ("put", "br-int", t, 3, t))
    d = Desired(tunnels={"hv2": "10.0.0.2"}, installed={"lsp1": 3})
    planner, gen = Planner(), 1
    for n, x in enumerate([None, *steps]):
        if x is not None and _apply(w, d, _decode(x // 3)):
            gen += 1
        if x is not None and x % 3 == 1 and n < len(steps):
            continue  # changes that reach the planner in one view (the IDL coalesces updates)
        v = w.build()
        got = planner.plan(v, d, gen)
        assert _same(got, plan(v, d))
        _check_memo(planner, v, d)


# ---- examples ----

def _host(n: int) -> tuple[list[PortView], dict[str, int]]:
    """n ready VM ports, marked."""
    ports = [PortView(f"vm{i}", (_iface(f"vm{i}", 10 + i, **{"iface-id": f"lsp{i}", INSTALLED_KEY: "true"}),))
             for i in range(n)]
    return ports, {f"lsp{i}": 10 + i for i in range(n)}


def _bridge_view(ports: list[PortView]) -> DbView:
    return DbView(bridges={"br-int": BridgeView("br-int", ports=tuple(ports), **GOOD_BR)})  # type: ignore[arg-type]


def test_port_coming_up_gets_exactly_one_mark_and_loses_it_when_uninstalled() -> None:
    ports, installed = _host(50)
    d, planner = Desired(installed=installed), Planner()
    assert planner.plan(_bridge_view(ports), d, 1).actions == []
    memo = planner._memo
    examined, evaluated = memo.examined, memo.marks_evaluated
    # The port's row appears (no ofport yet), then gets its ofport, then its flows are in.
    ports.insert(17, PortView("new", (_iface("new", -1, **{"iface-id": "lsp-new"}),)))
    assert planner.plan(_bridge_view(ports), d, 1).actions == []
    ports[17] = PortView("new", (_iface("new", 99, **{"iface-id": "lsp-new"}),))
    assert planner.plan(_bridge_view(ports), d, 1).actions == []
    d.installed = {**installed, "lsp-new": 99}  # set_installed: a new dict, same generation
    v = _bridge_view(ports)
    assert planner.plan(v, d, 1).actions == [FixIface("new", D_MARKS, external_ids={INSTALLED_KEY: "true"})]
    assert memo.examined - examined == 2  # the new port's two versions, nothing else
    assert memo.marks_evaluated - evaluated == 3  # those two, and the port whose installed entry changed
    # Once marked, nothing to do; its installed entry gone, the mark goes.
    ports[17] = PortView("new", (_iface("new", 99, **{"iface-id": "lsp-new", INSTALLED_KEY: "true"}),))
    assert planner.plan(_bridge_view(ports), d, 1).actions == []
    d.installed = dict(installed)
    assert planner.plan(_bridge_view(ports), d, 1).actions == [FixIface("new", D_MARKS, external_ids={INSTALLED_KEY: None})]


def test_unchanged_ports_are_not_reexamined() -> None:
    ports, installed = _host(200)
    d, planner = Desired(installed=installed), Planner()
    planner.plan(_bridge_view(ports), d, 1)
    memo = planner._memo
    examined, evaluated = memo.examined, memo.marks_evaluated
    ports[5] = replace(ports[5], ifaces=(replace(ports[5].ifaces[0], ofport=-1),))  # vm5 lost its ofport
    assert planner.plan(_bridge_view(ports), d, 1).actions == [FixIface("vm5", D_MARKS, external_ids={INSTALLED_KEY: None})]
    assert (memo.examined - examined, memo.marks_evaluated - evaluated) == (1, 1)
    d.installed = {**installed, "lsp7": 1}  # in place or not, only lsp7's port is looked at again
    assert planner.plan(_bridge_view(ports), d, 1).actions == [
        FixIface("vm5", D_MARKS, external_ids={INSTALLED_KEY: None}), FixIface("vm7", D_MARKS, external_ids={INSTALLED_KEY: None})]
    assert (memo.examined - examined, memo.marks_evaluated - evaluated) == (1, 2)
    d.installed["lsp7"] = 17
    planner.plan(_bridge_view(ports), d, 1)
    assert (memo.examined - examined, memo.marks_evaluated - evaluated) == (1, 3)
    # No generation: the full walk, and the memo starts over afterwards.
    assert planner.plan(_bridge_view(ports), d).actions == plan(_bridge_view(ports), d).actions
    assert memo._key is None


def test_duplicate_port_names_fall_back_to_the_full_walk() -> None:
    ports, installed = _host(3)
    d, planner = Desired(installed={}), Planner()
    ports.append(replace(ports[0]))
    v = _bridge_view(ports)
    assert planner.plan(v, d, 1).actions == plan(v, d).actions
    assert len(planner.plan(v, d, 1).actions) == 4 and planner._memo._key is None
