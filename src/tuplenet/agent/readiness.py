"""Readiness mark: which local ports have every flow installed (OVN's `ovn-installed`).

A CNI plugin or a VM manager waits for `external_ids:tuplenet-installed="true"` on the OVS Interface
before it lets the workload talk, so its first ARP is not lost. A port is ready when the lsp bound to it
here (`binding.bound_lsp`, recorded on this chassis, or unbound and requested here with our claim on its
way) has its local flows computed for the interface's
ofport and every flow of that lsp is in the installed set (bundles are acknowledged before `installed`
changes). Only the ports a batch may have affected are re-checked: those named by changed bind/lsp keys,
the lsp owners the engine recomputed for the changed keys, and ports still waiting for their flows.

The same set, as (switch, port) pairs, is what the agent reports in etcd (`communicate/ready/<chassis>`,
model/ready.py): `report` is rebuilt only when it changes and handed to `sink` (ready_publish.py, a
background writer), so reporting costs the main loop a set comparison, never an etcd round trip.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from . import tables as T
from .binding import bound_lsp, claiming_key, requested_here
from .engine import Engine
from .view import Reader, View


def _check(view: View, engine: Engine, installed: set[int] | frozenset[int],
           iface_id: str) -> tuple[bool | None, tuple | None]:
    """(port_ready's answer, the lsp key it is about)."""
    ofport = view.facts.get(("bind", iface_id))
    if ofport is None:
        return None, None
    key = bound_lsp(Reader(view), iface_id)
    if key is None:
        return None, None
    lsp = view.facts[key]
    me = view.facts.get(("self",))
    if lsp.chassis != me and not (requested_here(lsp, me) and view.facts.get(claiming_key(key))):
        return None, None  # neither bound here (the claim came back) nor requested here with our claim on its way
    flows = engine.owner_flows.get(key, ())
    local = any(f.table == T.CLASSIFY and any(m.field == "in_port" and m.value == ofport for m in f.match)
                for f in flows)
    return local and all(f.cookie in installed for f in flows), key


def port_ready(view: View, engine: Engine, installed: set[int] | frozenset[int], iface_id: str) -> bool | None:
    """True: every flow installed; False: bound here, flows missing; None: not a port bound here."""
    return _check(view, engine, installed, iface_id)[0]


class Readiness:
    """iface-id -> ofport of the local ports to mark; `update` returns a new mapping only when it changed."""

    def __init__(self) -> None:
        self.ready: dict[str, int] = {}
        self.waiting: set[str] = set()  # bound here, flows not (all) installed yet
        self._lsp: dict[str, tuple[str, str]] = {}  # ready iface-id -> (switch, port) it stands for
        self.report: frozenset[tuple[str, str]] = frozenset()  # (switch, port) of every ready port
        self.sink: Callable[[frozenset[tuple[str, str]]], None] | None = None  # called when `report` changes

    def _affected(self, view: View, engine: Engine, changed: Iterable[tuple] | None) -> set[str]:
        if changed is None:
            return {k[1] for k in view.members(("I", "binds"))} | set(self.ready) | self.waiting
        out = set(self.waiting)
        for k in changed:
            if k[0] == "bind":
                out.add(k[1])
            elif k[0] == "lsp":
                out.add(k[2])
            for o in engine.rdeps.get(k, ()):
                if o[0] == "lsp":
                    out.add(o[2])
        return out

    def update(self, view: View, engine: Engine, installed: set[int] | frozenset[int],
               changed: Iterable[tuple] | None) -> dict[str, int] | None:
        new = None
        lsps_changed = False
        for i in self._affected(view, engine, changed):
            ok, key = _check(view, engine, installed, i)
            if ok is False:
                self.waiting.add(i)
            else:
                self.waiting.discard(i)
            pair = (key[1], key[2]) if ok and key is not None else None
            if self._lsp.get(i) != pair:
                lsps_changed = True
                if pair is None:
                    self._lsp.pop(i, None)
                else:
                    self._lsp[i] = pair
            want = view.facts[("bind", i)] if ok else None
            if self.ready.get(i) != want:
                if new is None:
                    new = dict(self.ready)
                if want is None:
                    new.pop(i, None)
                else:
                    new[i] = want
        if lsps_changed:
            self._report_changed()
        if new is None:
            return None
        self.ready = new
        return dict(new)

    def _report_changed(self) -> None:
        report = frozenset(self._lsp.values())
        if report != self.report:
            self.report = report
            if self.sink is not None:
                self.sink(report)
