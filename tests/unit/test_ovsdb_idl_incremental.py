"""TrackingIdl's incremental view equals a view built from empty caches, after any sequence of OVSDB updates
(ports added, deleted, moved between bridges, renamed, inserted again, interfaces edited, several changes per
update), fed through python-ovs's own update parser as ovsdb-server would send them (monitor_cond_since's update2)."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzz_settings import FUZZ_EXAMPLES, fuzz
from tuplenet.agent.ovsdb_idl import TrackingIdl
from tuplenet.sandbox.idl_feed import Replica, ref


def test_port_added_deleted_and_moved_in_place() -> None:
    r = Replica()
    r.batch([(0, 1, 0), (0, 2, 0), (0, 3, 1)])
    assert r.idl.view() == r.cold()
    r.batch([(1, 0, 0)])  # a deletion
    r.batch([(2, 0, 0)])  # a move between bridges
    v = r.idl.view()
    assert v == r.cold() and r.idl.relisted >= 2
    assert sum(len(b.ports) for b in v.bridges.values()) == 2


def test_a_port_change_reuses_the_bridge_fields_and_an_own_column_change_rereads_them(
        monkeypatch: pytest.MonkeyPatch) -> None:
    r = Replica()
    r.batch([(0, 1, 0), (0, 2, 0)])
    r.idl.view()
    reads: list[str] = []
    real = TrackingIdl._bridge_view

    def counted(self, br, ports):
        reads.append(br.name)
        return real(self, br, ports)

    monkeypatch.setattr(TrackingIdl, "_bridge_view", counted)
    r.batch([(0, 2, 0)])  # a port added: only the bridge's `ports` changed
    r.batch([(1, 0, 0)])  # a port deleted
    r.idl.view()
    assert reads == []
    r.batch([(6, 0, 0)])  # br-int's external_ids, alone
    assert r.idl.view().bridges["br-int"].external_ids == {"k": "0"} and reads == ["br-int"]
    r.batch([(0, 3, 0), (6, 0, 8)])  # a port added and br-int's own column, in one update
    assert r.idl.view().bridges["br-int"].external_ids == {"k": "8"} and reads == ["br-int"] * 2
    r.batch([(1, 0, 0), (6, 0, 10)])  # a known port deleted (its Port row notified first) and the column
    assert r.idl.view().bridges["br-int"].external_ids == {"k": "10"} and reads == ["br-int"] * 3
    reads.clear()
    assert r.idl.view() == r.cold()


def test_a_mirror_names_a_port_renamed_or_inserted_again() -> None:
    r = Replica()
    r.batch([(0, 1, 0), (0, 2, 0)])
    port = min(r.where, key=lambda u: u.int)  # the port ops with a=0 pick
    mirror = uuid.UUID(int=7)
    r.send({"Mirror": {str(mirror): {"insert": {"name": "m1", "select_src_port": ["set", [ref(port)]]}}},
            "Bridge": {str(r.bridges["br-int"]): {"modify": {"mirrors": ["set", [ref(mirror)]]}}}})
    assert r.idl.view() == r.cold()
    r.batch([(4, 0, 1)])  # the port renamed "r1"
    assert r.idl.view().bridges["br-int"].mirrors[0].select_src == {"r1"}
    r.batch([(5, 0, 2)])  # the known Port row inserted again as "again2"
    assert r.idl.view().bridges["br-int"].mirrors[0].select_src == {"again2"}
    assert r.idl.view() == r.cold()


def test_a_failed_build_is_not_served_from_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    r = Replica()
    r.batch([(0, 1, 0)])
    r.idl.view()
    r.batch([(0, 2, 0)])  # a port added: its bridge is relisted in place, the new port's view built...
    boom = [True]
    real = TrackingIdl._port

    def failing(self, row, bridge):
        if boom.pop() if boom else False:
            raise RuntimeError("boom")
        return real(self, row, bridge)

    monkeypatch.setattr(TrackingIdl, "_port", failing)
    with pytest.raises(RuntimeError):
        r.idl.view()  # ...and that build fails
    assert r.idl.view() == r.cold()
    assert len(r.idl.view().bridges["br-int"].ports) == 2


@pytest.mark.fuzz
@settings(fuzz, max_examples=FUZZ_EXAMPLES // 10)  # a replica costs 16 ms (python-ovs parses the schema)
@given(st.lists(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 50), st.integers(0, 50)), min_size=1,
                         max_size=3), min_size=1, max_size=8))
def test_fuzz_incremental_view_equals_cold_view(batches) -> None:
    r = Replica()
    for ops in batches:
        r.batch(ops)
        assert r.idl.view() == r.cold()
