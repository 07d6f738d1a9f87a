"""StateBuilder (agent/ovsdb_state.py): at every step the very state state_from_view gives, built from the changed
ports only, with the previous state's map objects kept wherever a map did not change."""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz_settings import fuzz
from tuplenet.agent.ovsdb_model import (
    CHASSIS_KEY,
    FLOWBASED_PORT,
    IFACE_ID_KEY,
    ROLE_FLOWBASED,
    ROLE_KEY,
    ROLE_PATCH,
    BridgeView,
    DbView,
    IfaceView,
    OvsState,
    PortView,
    state_from_view,
)
from tuplenet.agent.ovsdb_state import StateBuilder

BR = "br-int"
FIELDS = tuple(f.name for f in fields(OvsState))
MAPS = ("bindings", "tunnels", "tunnel_ips", "bridges", "bridge_external_ids", "tunnel_bfd", "ofports", "macs",
        "patch_ofports", "plugged")


def check(b: StateBuilder, v: DbView, prev: OvsState | None, connected: bool = True, seqno: int = 0) -> OvsState:
    """b's state for v equals state_from_view's, field by field; maps equal to prev's are prev's objects."""
    got = b.build(v, BR, connected, seqno)
    want = state_from_view(v, BR, connected, seqno)
    for f in FIELDS:
        assert getattr(got, f) == getattr(want, f), f
        assert type(getattr(got, f)) is type(getattr(want, f)), f
    if prev is not None:
        for m in MAPS:
            if getattr(got, m) == getattr(prev, m):
                assert getattr(got, m) is getattr(prev, m), m
    return got


def vm(name: str, iface_id: str | None, ofport: int = -1, mac: str | None = None) -> PortView:
    ext = {IFACE_ID_KEY: iface_id} if iface_id else {}
    return PortView(name, (IfaceView(name, "dummy", {}, ext, ofport=ofport, mac=mac),))


def tun(name: str, chassis: str, ofport: int = -1) -> PortView:
    return PortView(name, (IfaceView(name, "geneve", {"remote_ip": "10.0.0.2"}, {CHASSIS_KEY: chassis},
                                     ofport=ofport, bfd_status={"state": "up"}),))


def dbv(*ports: PortView, system_id: str = "hv1", **br: object) -> DbView:
    return DbView(system_id=system_id, bridges={BR: BridgeView(BR, ports=ports, **br)})  # type: ignore[arg-type]


def test_port_coming_up_touches_only_its_maps() -> None:
    b = StateBuilder()
    ports = tuple(vm(f"vm{i}", f"lsp{i}", i + 1, f"m{i}") for i in range(50))
    s0 = check(b, dbv(*ports), None)
    s1 = check(b, dbv(*ports, vm("new", "lsp-new")), s0)  # the row, no ofport yet: plugged, not bound
    assert "lsp-new" in s1.plugged and "lsp-new" not in s1.bindings
    assert s1.bindings is s0.bindings and s1.ofports is s0.ofports and s1.macs is s0.macs
    s2 = check(b, dbv(*ports, vm("new", "lsp-new", 77, "mm")), s1)  # its ofport and mac arrive
    assert s2.bindings["lsp-new"] == 77 and s2.ofports["new"] == 77 and s2.macs["new"] == "mm"
    assert s2.plugged is s1.plugged and s2.tunnels is s0.tunnels
    assert b.full_builds == 1
    assert "lsp-new" not in s0.bindings and "new" not in s1.ofports  # earlier states were not touched


def test_port_deleted() -> None:
    b = StateBuilder()
    ports = [vm(f"vm{i}", f"lsp{i}", i + 1, f"m{i}") for i in range(10)]
    s0 = check(b, dbv(*ports), None)
    s1 = check(b, dbv(*ports[:3], *ports[4:]), s0)
    assert "lsp3" not in s1.bindings and "lsp3" not in s1.plugged and "vm3" not in s1.ofports | s1.macs
    assert s0.bindings["lsp3"] == 4 and b.full_builds == 1


def test_two_ports_with_one_iface_id() -> None:
    b = StateBuilder()
    a, c = vm("a", "lsp", 5), vm("c", "lsp", 3)
    s = check(b, dbv(a, c), None)
    assert s.bindings == {"lsp": 3}
    s = check(b, dbv(a), s)  # the lower one goes: the other one binds again
    assert s.bindings == {"lsp": 5}
    s = check(b, dbv(vm("a", "lsp")), s)  # its ofport goes: still plugged, not bound
    assert s.bindings == {} and s.plugged == {"lsp"}
    s = check(b, dbv(vm("a", "lsp"), vm("c", "lsp", 9)), s)
    assert s.bindings == {"lsp": 9}
    s = check(b, dbv(), s)
    assert s.plugged == frozenset() and b.full_builds == 1


def test_tunnel_change_falls_back_and_keeps_unchanged_maps() -> None:
    b = StateBuilder()
    ports = (vm("vm1", "lsp1", 1), tun("tupleNet-1", "hv2"))
    s0 = check(b, dbv(*ports), None)
    tunnel = tun("tupleNet-1", "hv2", 4)
    s1 = check(b, dbv(ports[0], tunnel), s0)  # the tunnel's ofport: state_from_view
    assert b.full_builds == 2 and s1.tunnels == {"hv2": 4}
    assert s1.bindings is s0.bindings and s1.plugged is s0.plugged and s1.macs is s0.macs
    s2 = check(b, dbv(vm("vm1", "lsp1", 2), tunnel), s1)  # then a VM port: the fast path again
    assert b.full_builds == 2 and s2.bindings == {"lsp1": 2} and s2.tunnels is s1.tunnels


def test_same_bridge_view_gives_the_same_state() -> None:
    b = StateBuilder()
    v = dbv(vm("vm1", "lsp1", 1))
    s0 = check(b, v, None)
    assert b.build(v, BR, True, 0) is s0
    s1 = check(b, v, s0, connected=False)
    assert s1.bindings is s0.bindings and not s1.connected
    touched = DbView(system_id="hv1", bridges={BR: replace(v.bridges[BR], fail_mode="secure")})
    assert check(b, touched, s1, connected=False) is s1  # the ports tuple itself is shared
    assert b.full_builds == 1


def test_resync_and_bridge_changes_rebuild_fully() -> None:
    b = StateBuilder()
    ports = [vm(f"vm{i}", f"lsp{i}", i + 1) for i in range(100)]
    s = check(b, dbv(*ports), None)
    s = check(b, dbv(*(vm(f"vm{i}", f"lsp{i}", i + 1) for i in range(100))), s)  # a reconnect's new objects
    assert b.full_builds == 2
    s = check(b, dbv(*ports, external_ids={"k": "v"}), s)
    s = check(b, dbv(*ports, external_ids={"k": "v"}, system_id="hv2"), s)
    s = check(b, DbView(system_id="hv2"), s)
    assert not s.bridge_exists and b.full_builds == 5


def test_duplicate_names_fall_back() -> None:
    """Never in OVSDB (unique name indexes), yet still the state state_from_view gives."""
    b = StateBuilder()
    s = check(b, dbv(vm("a", "l1", 1), vm("b", "l2", 2)), None)
    dup_iface = PortView("c", (IfaceView("a", ofport=5, external_ids={IFACE_ID_KEY: "l3"}),))
    s = check(b, dbv(vm("a", "l1", 1), vm("b", "l2", 2), dup_iface), s)
    s = check(b, dbv(vm("a", "l1", 1), vm("b", "l2", 2)), s)
    s = check(b, dbv(vm("a", "l1", 1), vm("a", "l2", 2)), s)
    s = check(b, dbv(vm("a", "l1", 1), vm("a", "l2", 3)), s)


# ------------------------------------------------------------------------------------------ fuzz
class Choices:
    """Decodes drawn bytes into choices, one byte each: one draw per example keeps 10,000 examples fast
    (hypothesis' own per-choice draws cost 3x the test itself), and bytes still shrink well."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def more(self) -> bool:
        return self.at < len(self.data)

    def pick(self, options: tuple | range) -> Any:
        self.at += 1
        return options[self.data[self.at - 1] % len(options) if self.at <= len(self.data) else 0]


NAMES = ("a", "b", "c", "d", "e", "f", "g", FLOWBASED_PORT)
KINDS = ("vm",) * 12 + ("tunnel", "flowbased", "patch")
OPS = ("add",) * 4 + ("set",) * 2 + ("ofport",) * 4 + ("del",) * 2 + (
    "ext", "sysid", "bridge", "other", "noop", "fresh", "touch", "reorder")


def make_port(c: Choices, name: str | None = None) -> PortView:
    name = name or c.pick(NAMES)
    ifaces = []
    for k in range(c.pick((1, 1, 2))):
        kind, iid = c.pick(KINDS), c.pick((None, "l0", "l1", "l2"))
        ofport, mac = c.pick((-1, 1, 2, 3, 4)), c.pick((None, "", "m0", "m1"))
        ext: dict[str, str] = {IFACE_ID_KEY: iid} if iid else {}
        opts: dict[str, str] = {}
        if kind == "tunnel":
            ext[CHASSIS_KEY] = c.pick(("hv1", "hv2"))
            opts["remote_ip"] = f"10.0.0.{ofport + 2}"
        elif kind in ("flowbased", "patch"):
            ext[ROLE_KEY] = ROLE_FLOWBASED if kind == "flowbased" else ROLE_PATCH
        iname = "shared" if c.pick(range(32)) == 0 else name if k == 0 else f"{name}-{k}"
        ifaces.append(IfaceView(iname, "dummy", opts, ext, ofport=ofport, mac=mac,
                                bfd_status={"state": "up"} if kind == "tunnel" else {}))
    return PortView(name, tuple(ifaces))


def copy_port(p: PortView) -> PortView:
    """An equal port made of new objects (a reconnect's replica)."""
    return PortView(p.name, tuple(replace(i, options=dict(i.options), external_ids=dict(i.external_ids),
                                          bfd_status=dict(i.bfd_status)) for i in p.ifaces))


def snapshot(s: OvsState) -> tuple:
    return tuple(dict(v) if isinstance(v, dict) else v for v in map(s.__getattribute__, FIELDS))


@pytest.mark.fuzz
@fuzz
@given(st.binary(min_size=32, max_size=120))
def test_fuzz_builder_equals_state_from_view(data: bytes) -> None:
    """Random edits of a bridge (VM ports with shared iface-ids, ofports and MACs coming and going, tunnel,
    flow-based and patch ports, the bridge's ids, the bridge itself, system-id, other bridges); unchanged ports
    keep their PortView objects as TrackingIdl's do, or all are rebuilt equal (a reconnect)."""
    c = Choices(data)
    ports = list({p.name: p for p in (make_port(c) for _ in range(c.pick(range(5))))}.values())
    ext: dict[str, str] = {}
    sysid, present, other = "hv1", True, False
    br = BridgeView(BR, ports=tuple(ports), external_ids=ext)
    b = StateBuilder()
    s = check(b, DbView(system_id=sysid, bridges={BR: br}), None)
    seen = [(s, snapshot(s))]
    while c.more():
        connected, seqno, rebuild = c.pick((True, False)), c.pick((0, 1)), False
        for _ in range(c.pick((1, 1, 1, 2, 3))):  # several edits in one update (TrackingIdl's are coalesced)
            kind, k = c.pick(OPS), c.pick(range(10))
            rebuild |= kind not in ("sysid", "bridge", "other", "noop", "touch")
            if kind == "add":
                p = make_port(c)
                at = next((j for j, q in enumerate(ports) if q.name == p.name), None)
                if at is None or c.pick(range(8)) == 0:  # sometimes even if a port of that name exists
                    ports.insert(k % (len(ports) + 1), p)
                else:
                    ports[at] = p
            elif kind == "set" and ports:
                ports[k % len(ports)] = make_port(c, ports[k % len(ports)].name)
            elif kind == "ofport" and ports:
                ifaces = ports[k % len(ports)].ifaces
                ports[k % len(ports)] = PortView(ports[k % len(ports)].name,
                                                 (replace(ifaces[0], ofport=c.pick((-1, 1, 2, 5))), *ifaces[1:]))
            elif kind == "del" and ports:
                del ports[k % len(ports)]
            elif kind == "ext":
                ext = dict(c.pick(({}, {"k": "v"}, {"k": "w"})))
            elif kind == "fresh":
                ports = [copy_port(p) for p in ports]
            elif kind == "reorder":
                ports.reverse()
            elif kind == "touch":
                br = replace(br, fail_mode=None if br.fail_mode else "secure")
            elif kind == "sysid":
                sysid = c.pick(("hv1", "hv2"))
            elif kind == "bridge":
                present = not present
            elif kind == "other":
                other = not other
        if rebuild:
            br = BridgeView(BR, ports=tuple(ports), external_ids=ext)
        bridges = ({BR: br} if present else {}) | ({"br-ext": BridgeView("br-ext")} if other else {})
        s = check(b, DbView(system_id=sysid, bridges=bridges), s, connected, seqno)
        seen.append((s, snapshot(s)))
    for state, snap in seen:  # copy-on-write: no state changed after it was returned
        assert snapshot(state) == snap
