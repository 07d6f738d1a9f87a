"""Port numbers from OpenFlow port-status messages (ofport_hints.py): the wire parser, the hint rules, and
TrackingIdl's views, which take a hint only while OVSDB has no number and never across an interface's
deletion; fuzzed against a view built from empty caches."""

from __future__ import annotations

import struct
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzz_settings import FUZZ_EXAMPLES, fuzz
from tuplenet.agent.ofport_hints import OfportHints
from tuplenet.agent.openflow import codec as c
from tuplenet.sandbox.idl_feed import Replica, ref

ADD, DELETE, MODIFY = c.OFPPR_ADD, c.OFPPR_DELETE, c.OFPPR_MODIFY


def port_status(reason: int, port_no: int, name: bytes) -> bytes:
    """An OpenFlow 1.5 port-status body as ovs-vswitchd sends it (an ofp_port with no properties)."""
    return struct.pack("!B7xIH2x6s2x16sII", reason, port_no, 48, b"\xaa\x55\xaa\x55\x00\x11", name, 0, 0)


def test_parse_reads_reason_number_and_name() -> None:
    assert c.parse_port_status(port_status(ADD, 7, b"tap1")) == (ADD, 7, "tap1")
    assert c.parse_port_status(port_status(DELETE, 0xFEFF, b"x" * 14)) == (DELETE, 0xFEFF, "x" * 14)


@pytest.mark.parametrize("body", [
    port_status(ADD, 0, b"tap1"),  # no port
    port_status(ADD, 0xFFFFFFFE, b"br-int"),  # OFPP_LOCAL and the other reserved numbers
    port_status(ADD, 0xFF00, b"tap1"),
    port_status(ADD, 7, b"y" * 15),  # may be a longer interface name cut at 15 bytes
    port_status(ADD, 7, b"y" * 16),
    port_status(ADD, 7, b""),
    port_status(ADD, 7, "tæp".encode()),
    port_status(3, 7, b"tap1"),  # no such reason
    port_status(ADD, 7, b"tap1")[:39],  # short
])
def test_parse_refuses_what_cannot_name_a_port(body: bytes) -> None:
    assert c.parse_port_status(body) is None


def test_hints_follow_add_delete_forget_and_reset() -> None:
    h = OfportHints()
    assert h.update(ADD, 5, "a") and h.get("a") == 5
    assert not h.update(ADD, 5, "a")  # same number: no change
    assert not h.update(MODIFY, 7, "a") and h.get("a") == 5  # a modify never changes a number
    assert not h.update(DELETE, 6, "a") and h.get("a") == 5  # not the port we know
    assert h.update(DELETE, 5, "a") and h.get("a") is None
    assert not h.update(MODIFY, 5, "a") and h.get("a") is None  # nor creates one
    h.update(ADD, 8, "b")
    assert h.forget("b") and not h.forget("b")
    assert not h.update(ADD, 8, "b") and h.get("b") is None  # the old port's late ADD stays out...
    assert not h.update(DELETE, 8, "b")  # ...until ovs-vswitchd is past the deletion
    assert h.update(ADD, 9, "b") and h.get("b") == 9
    h.forget("b")
    h.confirmed("b")  # OVSDB numbered a row of that name: past the deletion too
    assert h.update(ADD, 10, "b")
    h.confirmed("b")
    assert h.get("b") is None  # OVSDB's number serves from now on
    h.update(ADD, 9, "c")
    h.update(ADD, 10, "d")
    h.forget("e")
    assert sorted(h.reset()) == ["c", "d"] and len(h) == 0
    assert h.update(ADD, 11, "e")  # a new session: nothing blocked


def test_blocked_names_are_bounded() -> None:
    h = OfportHints()
    for n in range(OfportHints.BLOCKED_MAX + 10):
        h.forget(f"t{n}")
    assert len(h._blocked) == OfportHints.BLOCKED_MAX
    assert h.update(ADD, 3, "t0") and not h.update(ADD, 3, f"t{OfportHints.BLOCKED_MAX + 9}")


class Host:
    """A TrackingIdl replica with VM interfaces on br-int, each in its own port."""

    def __init__(self) -> None:
        self.r = Replica()
        self.rows: dict[str, tuple[uuid.UUID, uuid.UUID]] = {}  # interface name -> (port, interface)

    def plug(self, name: str, ofport: int | None = None, iface_id: str | None = "lsp") -> None:
        p, i = uuid.uuid4(), uuid.uuid4()
        body: dict = {"name": name, "type": "dummy"}
        if ofport is not None:
            body["ofport"] = ofport
        if iface_id:
            body["external_ids"] = ["map", [["iface-id", iface_id]]]
        self.r.send({"Interface": {str(i): {"insert": body}},
                     "Port": {str(p): {"insert": {"name": name, "interfaces": ref(i)}}},
                     "Bridge": {str(self.r.bridges["br-int"]): {"modify": {"ports": ref(p)}}}})
        self.rows[name] = (p, i)

    def numbered(self, name: str, ofport: int) -> None:
        self.r.send({"Interface": {str(self.rows[name][1]): {"modify": {"ofport": ["set", [ofport]]}}}})

    def unplug(self, name: str) -> None:
        p, i = self.rows.pop(name)
        self.r.send({"Interface": {str(i): {"delete": None}}, "Port": {str(p): {"delete": None}},
                     "Bridge": {str(self.r.bridges["br-int"]): {"modify": {"ports": ref(p)}}}})

    def ofport(self, name: str) -> int | None:
        view = self.r.idl.view()
        assert view == self.r.cold()  # the incremental view is what a view from scratch says
        found = [i.ofport for p in view.bridges["br-int"].ports for i in p.ifaces if i.name == name]
        return found[0] if found else None


def test_a_view_takes_the_hint_until_ovsdb_numbers_the_port() -> None:
    h = Host()
    h.plug("tap1")
    assert h.ofport("tap1") == -1
    gen = h.r.idl.hint_gen
    h.r.idl.port_status(ADD, 40, "tap1")
    assert h.r.idl.hint_gen > gen  # the thread publishes the new view
    assert h.ofport("tap1") == 40
    h.numbered("tap1", 40)
    assert h.ofport("tap1") == 40
    h.r.idl.port_status(DELETE, 40, "tap1")
    assert h.ofport("tap1") == 40  # OVSDB's number stands on its own
    assert h.r.idl.hints.get("tap1") is None


def test_a_hint_announced_before_the_row_appears_is_used() -> None:
    h = Host()
    h.r.idl.view()
    h.r.idl.port_status(ADD, 12, "tap2")
    h.plug("tap2")
    assert h.ofport("tap2") == 12


def test_no_hint_survives_the_interface_it_was_for() -> None:
    h = Host()
    h.plug("tap1")
    h.r.idl.port_status(ADD, 40, "tap1")
    assert h.ofport("tap1") == 40
    h.unplug("tap1")  # deleted before ovs-vswitchd's delete reached us
    h.plug("tap1")  # and plugged again: not the old port's number
    assert h.ofport("tap1") == -1
    h.r.idl.port_status(MODIFY, 40, "tap1")  # the old port's late modify
    assert h.ofport("tap1") == -1
    h.r.idl.port_status(DELETE, 40, "tap1")
    h.r.idl.port_status(ADD, 41, "tap1")  # the new port
    assert h.ofport("tap1") == 41


def test_a_late_announcement_of_a_deleted_port_numbers_nothing() -> None:
    """ovs-vswitchd a reconfiguration behind: the old port's ADD arrives after its row went and a new row of
    that name came."""
    h = Host()
    h.plug("tap1")
    assert h.ofport("tap1") == -1
    h.unplug("tap1")
    h.plug("tap1")
    h.r.idl.port_status(ADD, 5, "tap1")  # the deleted row's port
    assert h.ofport("tap1") == -1
    h.r.idl.port_status(DELETE, 5, "tap1")
    h.r.idl.port_status(ADD, 6, "tap1")  # the new row's
    assert h.ofport("tap1") == 6


def test_a_hint_goes_once_ovsdb_has_the_number() -> None:
    h = Host()
    h.plug("tap1")
    h.r.idl.port_status(ADD, 40, "tap1")
    h.numbered("tap1", 40)
    assert h.ofport("tap1") == 40 and h.r.idl.hints.get("tap1") is None


def test_hints_go_with_a_new_openflow_session() -> None:
    h = Host()
    h.plug("tap1")
    h.r.idl.port_status(ADD, 40, "tap1")
    assert h.ofport("tap1") == 40
    h.r.idl.port_status(0, 0, None)
    assert h.ofport("tap1") == -1


def test_only_unnumbered_vm_and_patch_interfaces_take_hints() -> None:
    h = Host()
    h.plug("tun1", iface_id=None)  # a tunnel (no iface-id): its number only from OVSDB
    h.plug("bad1", ofport=-1)  # ovs-vswitchd could not add it
    h.plug("tap1", ofport=3)
    for n, name in enumerate(("tun1", "bad1", "tap1")):
        h.r.idl.port_status(ADD, 50 + n, name)
    assert (h.ofport("tun1"), h.ofport("bad1"), h.ofport("tap1")) == (-1, -1, 3)


# ops: (0, k) plug tapk; (1, k) unplug; (2, k) OVSDB numbers it; (3/4/5, k) port-status ADD/DELETE/MODIFY of
# tapk with a number from a small pool (so numbers collide); (6, _) a new OpenFlow session.
@pytest.mark.fuzz
@settings(fuzz, max_examples=FUZZ_EXAMPLES // 10)  # a replica costs 16 ms (python-ovs parses the schema)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 3), st.integers(1, 4)), min_size=1, max_size=30))
def test_fuzz_hinted_view_equals_cold_view(ops) -> None:
    h = Host()
    for op, k, num in ops:
        name = f"tap{k}"
        if op == 0 and name not in h.rows:
            h.plug(name)
        elif op == 1 and name in h.rows:
            h.unplug(name)
        elif op == 2 and name in h.rows:
            h.numbered(name, num)
        elif 3 <= op <= 5:
            h.r.idl.port_status((ADD, DELETE, MODIFY)[op - 3], num, name)
        elif op == 6:
            h.r.idl.port_status(0, 0, None)
        view = h.r.idl.view()
        assert view == h.r.cold()
        for p in view.bridges["br-int"].ports:
            for i in p.ifaces:  # a number shown is OVSDB's, or what OpenFlow says of that name right now
                assert i.ofport == -1 or i.ofport == h.r.idl.hints.get(i.name) or (
                    h.r.idl._iface_cache[h.rows[i.name][1]][0].ofport == [i.ofport])


@pytest.mark.fuzz
@fuzz
@given(st.binary(min_size=0, max_size=80))
def test_fuzz_parse_port_status(body: bytes) -> None:
    got = c.parse_port_status(body)
    if got is not None:
        reason, port_no, name = got
        assert reason in (ADD, DELETE, MODIFY) and 1 <= port_no <= 0xFEFF
        assert 1 <= len(name) <= 14 and name.isascii() and "\0" not in name
