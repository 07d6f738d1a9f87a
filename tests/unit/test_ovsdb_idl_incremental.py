"""TrackingIdl's incremental view equals a view built from empty caches, after any sequence of OVSDB updates
(ports added, deleted, moved between bridges, renamed, inserted again, interfaces edited, several changes per
update), fed through python-ovs's own update parser as ovsdb-server would send them (monitor_cond_since's update2)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import ovs.db.idl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzz_settings import FUZZ_EXAMPLES, fuzz
from tuplenet.agent import ovsdb_idl
from tuplenet.agent.ovsdb_idl import TrackingIdl
from tuplenet.sandbox.ovsd import SCHEMA

BRIDGES = ("br-int", "br-x")


def ref(u: uuid.UUID) -> list:
    return ["uuid", str(u)]


class Replica:
    """A TrackingIdl (never connected) fed update2 messages built from a small model of the database."""

    def __init__(self) -> None:
        with open(SCHEMA) as f:
            self.idl = TrackingIdl("unix:/nonexistent", ovsdb_idl.schema_helper(json.load(f)))
        self.n = 0
        self.bridges = {name: uuid.UUID(int=i + 1) for i, name in enumerate(BRIDGES)}
        self.where: dict[uuid.UUID, str] = {}  # port -> its bridge
        self.iface: dict[uuid.UUID, uuid.UUID] = {}  # port -> its interface
        root = uuid.UUID(int=99)
        self.send({"Open_vSwitch": {str(root): {"insert": {"bridges": ["set", [ref(u) for u in
                                                                                 self.bridges.values()]]}}},
                   "Bridge": {str(u): {"insert": {"name": n}} for n, u in self.bridges.items()}})

    def send(self, update: dict[str, Any]) -> None:
        self.idl._Idl__parse_update(update, ovs.db.idl.OVSDB_UPDATE2)  # python-ovs 3.x
        self.idl.change_seqno += 1

    def _uuid(self) -> uuid.UUID:
        self.n += 1
        return uuid.uuid4()

    def batch(self, ops: list[tuple[int, int, int]]) -> None:
        """Apply ops (kind, a, b) in one update; an op touching a row already in the batch is skipped."""
        up: dict[str, dict[str, Any]] = {"Bridge": {}, "Port": {}, "Interface": {}}
        bridge_edits: dict[str, set[uuid.UUID]] = {}
        ports = sorted(self.where, key=lambda u: u.int)

        def touch(table: str, u: uuid.UUID, body: Any) -> bool:
            if str(u) in up[table]:
                return False
            up[table][str(u)] = body
            return True

        for kind, a, b in ops:
            pick = ports[a % len(ports)] if ports else None
            if kind == 0 or pick is None:  # add a port (and its interface) to a bridge
                br = BRIDGES[b % 2]
                p, i = self._uuid(), self._uuid()
                touch("Interface", i, {"insert": {"name": f"if{self.n}", "type": "dummy", "ofport": ["set", [a % 7 + 1]],
                                                  "external_ids": ["map", [["iface-id", f"lsp{a % 5}"]]]}})
                touch("Port", p, {"insert": {"name": f"p{self.n}", "interfaces": ref(i)}})
                bridge_edits.setdefault(br, set()).add(p)
                self.where[p], self.iface[p] = br, i
                ports.remove(p) if p in ports else None
            elif pick in bridge_edits.get(self.where[pick], ()) or str(pick) in up["Port"]:
                continue
            elif kind == 1:  # delete the port
                br = self.where.pop(pick)
                bridge_edits.setdefault(br, set()).add(pick)
                touch("Port", pick, {"delete": None})
                touch("Interface", self.iface.pop(pick), {"delete": None})
                ports.remove(pick)
            elif kind == 2:  # move the very Port row to the other bridge
                old = self.where[pick]
                new = BRIDGES[1 - BRIDGES.index(old)]
                if pick in bridge_edits.get(new, ()):
                    continue
                bridge_edits.setdefault(old, set()).add(pick)
                bridge_edits.setdefault(new, set()).add(pick)
                self.where[pick] = new
            elif kind == 3:  # the interface gets another ofport and iface-id
                touch("Interface", self.iface[pick], {"modify": {"ofport": ["set", [b % 9 + 1]],
                                                                 "external_ids": ["map", [["iface-id", f"x{b}"]]]}})
            elif kind == 4:  # the port is renamed
                touch("Port", pick, {"modify": {"name": f"r{b}"}})
            elif kind == 5:  # the known Port row inserted again, renamed (python-ovs replaces the Row)
                touch("Port", pick, {"insert": {"name": f"again{b}", "interfaces": ref(self.iface[pick])}})
            else:  # a bridge column
                touch("Bridge", self.bridges[BRIDGES[b % 2]], {"modify": {"external_ids": ["map", [["k", str(b)]]]}})
        for br, changed in bridge_edits.items():  # a set column's modify: the elements that flip
            u = str(self.bridges[br])
            body = up["Bridge"].setdefault(u, {"modify": {}})
            body["modify"]["ports"] = ["set", [ref(p) for p in changed]]
        self.send({t: rows for t, rows in up.items() if rows})

    def cold(self) -> Any:
        """The view built from nothing, leaving the incremental caches as they were."""
        idl = self.idl
        saved = (idl._iface_cache, idl._port_cache, idl._bridge_cache, idl._dirty_ports, idl._relist, idl._view,
                 idl._iface_named, idl._hinted, idl._port_of, idl._bridge_of)
        idl._iface_cache, idl._port_cache, idl._bridge_cache, idl._dirty_ports, idl._relist, idl._view = \
            {}, {}, {}, {}, set(), None
        idl._iface_named, idl._hinted, idl._port_of, idl._bridge_of = {}, set(), {}, {}
        try:
            return idl.view()
        finally:
            (idl._iface_cache, idl._port_cache, idl._bridge_cache, idl._dirty_ports, idl._relist,
             idl._view, idl._iface_named, idl._hinted, idl._port_of, idl._bridge_of) = saved


def test_port_added_deleted_and_moved_in_place() -> None:
    r = Replica()
    r.batch([(0, 1, 0), (0, 2, 0), (0, 3, 1)])
    assert r.idl.view() == r.cold()
    r.batch([(1, 0, 0)])  # a deletion
    r.batch([(2, 0, 0)])  # a move between bridges
    v = r.idl.view()
    assert v == r.cold() and r.idl.relisted >= 2
    assert sum(len(b.ports) for b in v.bridges.values()) == 2


def test_a_failed_build_is_not_served_from_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    r = Replica()
    r.batch([(0, 1, 0)])
    r.idl.view()
    r.batch([(0, 2, 0)])  # a port added: its bridge is relisted...
    boom = [True]
    real = TrackingIdl._bridge_view

    def failing(self, br, ports):
        if boom.pop() if boom else False:
            raise RuntimeError("boom")
        return real(self, br, ports)

    monkeypatch.setattr(TrackingIdl, "_bridge_view", failing)
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
