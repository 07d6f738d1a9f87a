"""`tpctl edge` in the control layer (control/edges.py) on the in-memory store: a road in one transaction,
clear errors that write nothing, drain-then-delete removal that leaves the tree as before, and a fuzz of
the arguments."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz_settings import fuzz
from tuplenet.control import ControlError, Controller
from tuplenet.control.edges import EdgeSpec
from tuplenet.control.errors import AlreadyExists, Conflict, NotFound
from tuplenet.control.memstore import MemStore


def _ctl() -> Controller:
    c = Controller(MemStore())
    c.add_router("LR-central")
    c.add_switch("LS-A")
    c.link("LR-central", "LS-A", "10.10.1.1/24")
    for name, ip in (("hv2", "192.168.100.3"), ("hv3", "192.168.100.4")):
        c.store.put(f"entity_view/chassis/{name}", f"ip={ip},tick=1")
    return c


def _snapshot(c: Controller) -> dict[str, str]:
    return {k: kv.value for k, kv in c.store.data.items()}


FIRST = EdgeSpec("hv2", "br-ext", "172.16.0.10/24", virt="10.10.0.0/16", ext_gw="172.16.0.254")


def test_init_writes_the_whole_road_in_one_transaction() -> None:
    c = _ctl()
    before = c.store.txn_count
    road = c.edges.init(FIRST)
    assert c.store.txn_count - before == 2  # one read, one write
    assert (road.edge, road.outside, road.transit, road.central) == ("tp_LR_edge1", "tp_LS_outside1", "tp_LS_m1",
                                                                     "LR-central")
    assert (road.vip, road.inner, road.central_ip, road.ext_gw, road.virt) == (
        "172.16.0.10/24", "100.64.88.100/24", "100.64.88.254", "172.16.0.254", "10.10.0.0/16")
    assert c.get_router("tp_LR_edge1").chassis == "hv2"
    patch = c.get_switch_port("tp_LS_outside1", "tp_LS_outside1-patch")
    assert (patch.ip, patch.peer, patch.chassis) == ("255.255.255.255", "br-ext", "hv2")
    routes = {r.name: r for r in c.list_static_routes("tp_LR_edge1")}
    assert "tp_LR_edge1_0.0.0.0-0_to_172.16.0.254_tp_LR_edge1_to_tp_LS_outside1" in routes
    central = c.list_static_routes("LR-central")
    assert [(r.ip, r.prefix, r.next_hop, r.outport) for r in central] == [
        ("0.0.0.0", 0, "100.64.88.100", "LR-central_to_tp_LS_m1")]
    assert [r.edge for r in c.edges.list_roads()] == ["tp_LR_edge1"] and c.edges.list_roads()[0].in_ecmp


def test_add_repeats_the_road_with_a_new_central_address() -> None:
    c = _ctl()
    c.edges.init(FIRST)
    road = c.edges.add(EdgeSpec("hv3", "br-ext", "172.16.1.10/24"))
    assert (road.edge, road.transit, road.central_ip, road.inner, road.ext_gw, road.virt) == (
        "tp_LR_edge2", "tp_LS_m2", "100.64.88.253", "100.64.88.100/24", "172.16.0.254", "10.10.0.0/16")
    central = sorted((r.next_hop, r.outport) for r in c.list_static_routes("LR-central"))
    assert central == [("100.64.88.100", "LR-central_to_tp_LS_m1"), ("100.64.88.100", "LR-central_to_tp_LS_m2")]
    assert {r.chassis for r in c.edges.list_roads()} == {"hv2", "hv3"}


@pytest.mark.parametrize(("setup", "call", "error", "text"), [
    ("none", lambda c: c.edges.init(EdgeSpec("hv9", "br-ext", "172.16.0.10/24", "10.10.0.0/16", "172.16.0.254")),
     NotFound, "chassis hv9 unknown"),
    ("none", lambda c: c.edges.init(EdgeSpec("hv2", "br-ext", "10.10.1.1/24", "10.10.0.0/16", "172.16.0.254")),
     Conflict, "vip address 10.10.1.1 in use by lsp LS-A/LS-A_to_LR-central"),
    ("none", lambda c: c.edges.init(EdgeSpec("hv2", "br-ext", "172.16.0.10/24", "10.10.0.0/16", "10.10.1.1")),
     Conflict, "ext_gw address 10.10.1.1 in use"),
    ("none", lambda c: c.edges.add(EdgeSpec("hv2", "br-ext", "172.16.0.10/24")), NotFound, "no edge road yet"),
    ("road", lambda c: c.edges.init(FIRST), AlreadyExists, "an edge road exists already"),
    ("road", lambda c: c.edges.add(EdgeSpec("hv3", "br-ext", "172.16.0.10/24")), Conflict, "in use"),
    ("two", lambda c: c.edges.init(FIRST), ControlError, "name it with --central"),
    ("empty", lambda c: c.edges.init(FIRST), NotFound, "no central router"),
    ("none", lambda c: c.edges.init(EdgeSpec("hv2", "br-int", "172.16.0.10/24", "10.10.0.0/16", "172.16.0.254")),
     ControlError, "integration bridge"),
    ("none", lambda c: c.edges.init(EdgeSpec("hv2", "br-ext", "172.16.0.10", "10.10.0.0/16", "172.16.0.254")),
     ControlError, "invalid vip"),
    ("none", lambda c: c.edges.remove("172.16.9.9"), NotFound, "no edge road with vip 172.16.9.9"),
])
def test_errors_are_one_line_and_write_nothing(setup, call, error, text) -> None:
    c = _ctl() if setup != "empty" else Controller(MemStore())
    if setup == "empty":
        c.store.put("entity_view/chassis/hv2", "ip=192.168.100.3,tick=1")
    if setup == "road":
        c.edges.init(FIRST)
    if setup == "two":
        c.add_router("LR-other")
    before = _snapshot(c)
    with pytest.raises(error) as exc:
        call(c)
    assert text in str(exc.value) and "\n" not in str(exc.value)
    assert _snapshot(c) == before


def test_remove_drains_first_then_leaves_the_tree_as_before() -> None:
    c = _ctl()
    c.edges.init(FIRST)
    before = _snapshot(c)
    c.edges.add(EdgeSpec("hv3", "br-ext", "172.16.1.10/24"))
    seen = []

    def sleep(secs: float) -> None:  # the drain: the central route to the edge is gone, the road still there
        seen.append(secs)
        outs = [r.outport for r in c.list_static_routes("LR-central")]
        assert outs == ["LR-central_to_tp_LS_m1"]
        assert c.get_router("tp_LR_edge2")

    road = c.edges.remove("172.16.1.10", drain=0.5, sleep=sleep)
    assert road.edge == "tp_LR_edge2" and seen == [0.5]
    assert _snapshot(c) == before


def test_remove_finishes_a_half_done_removal_without_draining_again() -> None:
    c = _ctl()
    c.edges.init(FIRST)
    c.store.delete("entity_view/LR/LR-central/lsr/"
                   "LR-central_0.0.0.0-0_to_100.64.88.100_LR-central_to_tp_LS_m1")
    assert not c.edges.list_roads()[0].in_ecmp
    c.edges.remove("172.16.0.10/24", sleep=lambda s: pytest.fail("drained twice"))
    assert c.edges.list_roads() == []
    assert [lr.name for lr in c.list_routers()] == ["LR-central"]


def test_a_lost_race_is_replanned() -> None:
    c = _ctl()
    fired = []

    def race(store: MemStore) -> None:
        if not fired:  # another writer takes the vip between our read and our write
            fired.append(1)
            store.put("entity_view/LS/LS-A/lsp/thief", "ip=100.64.88.254,mac=f2:01:64:40:58:fe")
            store.put("ip_book/LS/LS-A", "changed")
    c.store.before_txn = race
    road = c.edges.init(FIRST)
    assert road.central_ip == "100.64.88.253"  # .254 was taken meanwhile: re-planned from a fresh read


# Each field takes a valid value unless its bit in `junk_mask` says junk: a fixed junk value of its kind or
# the one drawn text. Three draws per example (hypothesis drawing eight texts costs more than the code).
_FIELDS = (
    ("chassis", ["hv2", "hv3"], ["hv9", "", " ", "a/b", "br-int", "x" * 300, "é", "tupleNet-1", "a,b"]),
    ("phy", ["br-ext", "br-phy"], ["", "br-int", "a/b", "tupleNet-9", " x", "x" * 300]),
    ("vip", ["172.16.1.10/24", "172.16.2.10/24", "192.0.2.7/30"],
     ["10.10.1.1/24", "100.64.88.100/24", "0.0.0.0/0", "1.2.3.4/32", "300.1.1.1/8", "1.2.3.4/-1", "", "/",
      "1.2.3.4", "172.16.0.10/24", "100.64.88.0/24"]),
    ("virt", [None, "10.10.0.0/16"], ["1.2.3.4", "1.2.3.4/33", "", "a/b"]),
    ("ext", [None, "172.16.1.254", "198.51.100.1"], ["10.10.1.1", "100.64.88.254", "", "a", "1.2.3", "172.16.0.10"]),
    ("inner", ["100.64.88.100/24", "100.64.99.1/29"], ["1.2.3.4/31", "1.2.3.4/1", "", "10.10.1.1/24"]),
    ("central", [None, "LR-central"], ["nope", "tp_LR_edge1", "LS-A", "a/b", " "]),
)


def _args(pick: int, junk_mask: int, text: str) -> dict:
    out = {}
    for i, (name, good, bad) in enumerate(_FIELDS):
        sel = (pick >> (4 * i)) & 0xF
        if (junk_mask >> i) & 1:
            out[name] = text if sel == 0 else bad[sel % len(bad)]
        else:
            out[name] = good[sel % len(good)]
    return out


@pytest.mark.fuzz
@fuzz
@given(add=st.booleans(), pick=st.integers(0, (1 << 28) - 1), junk_mask=st.integers(0, 127),
       text=st.text(max_size=20))
def test_fuzz_edge_init_add_arguments(add, pick, junk_mask, text) -> None:
    """Whatever the arguments: a new road or a one-line ControlError with nothing written."""
    a = _args(pick, junk_mask, text)
    base = _FUZZ_ROAD if add else _FUZZ_NO_ROAD
    c, rev = base.ctl, base.ctl.store.rev
    spec = EdgeSpec(a["chassis"], a["phy"], a["vip"], a["virt"], a["ext"], a["inner"], a["central"])
    try:
        road = (c.edges.add if add else c.edges.init)(spec)
    except ControlError as exc:
        assert "\n" not in str(exc)
        assert c.store.rev == rev  # nothing written
        return
    try:
        assert road.edge in {r.edge for r in c.edges.list_roads() if r.in_ecmp}
    finally:
        base.restore()


@pytest.mark.fuzz
@fuzz
@given(vip=st.one_of(st.sampled_from(["172.16.0.10", "172.16.0.10/24", "172.16.0.1", "", "/", "1.2.3.4/99"]),
                     st.text(max_size=20)))
def test_fuzz_edge_remove_argument(vip) -> None:
    base = _FUZZ_ROAD
    c, rev = base.ctl, base.ctl.store.rev
    try:
        c.edges.remove(vip, drain=0, sleep=lambda s: None)
    except ControlError as exc:
        assert "\n" not in str(exc)
        assert c.store.rev == rev
        return
    try:
        assert c.edges.list_roads() == []
    finally:
        base.restore()


class _Base:
    """One controller per starting tree, restored after an example that wrote (errors write nothing)."""

    def __init__(self, road: bool) -> None:
        self.ctl = _ctl()
        if road:
            self.ctl.edges.init(FIRST)
        self.data = dict(self.ctl.store.data)
        self.rev = self.ctl.store.rev

    def restore(self) -> None:
        self.ctl.store.data = dict(self.data)
        self.ctl.store.rev = self.rev


_FUZZ_ROAD, _FUZZ_NO_ROAD = _Base(True), _Base(False)
