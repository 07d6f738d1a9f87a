"""A TrackingIdl fed OVSDB updates without a server: python-ovs's own update parser gets row updates in update2's
format (as monitor_cond and monitor_cond_since send them), built from a small model of two bridges, their ports
and interfaces. The incremental-view tests compare its view with one built from empty caches;
bench/bench_ovsdb_view.py times the view."""

from __future__ import annotations

import json
import uuid
from typing import Any

import ovs.db.idl

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
        return cold_view(self.idl)


_CACHES = {"_iface_cache": dict, "_port_cache": dict, "_bridge_cache": dict, "_dirty_ports": dict, "_relist": dict,
           "_iface_named": dict, "_hinted": set, "_port_of": dict, "_bridge_of": dict}


def cold_view(idl: TrackingIdl) -> Any:
    """`idl`'s view built from empty caches (what the incremental view must equal), every cache restored after."""
    saved = {n: getattr(idl, n) for n in _CACHES} | {"_view": idl._view}
    for n, empty in _CACHES.items():
        setattr(idl, n, empty())
    idl._view = None
    try:
        return idl.view()
    finally:
        for n, v in saved.items():
            setattr(idl, n, v)
