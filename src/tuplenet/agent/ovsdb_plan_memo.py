"""The planner's per-port facts, kept up to date by identity so a repeat plan is O(changed ports).

`ovsdb_plan.Planner` reads three things from every port of every bridge: the name -> (bridge, port) map, the
ports a managed domain owns (the only ones it may delete) and the readiness marks that are wrong. On a host with
1,000 ports, walking them all costs ~0.6 ms per plan, several plans per port coming up. TrackingIdl reuses
the very PortView of a row that did not change, so `PortMemo.update` compares the bridge's port tuple with the
previous one object by object (C speed) and redoes only the ports that differ, plus the ports whose iface-id's
`installed` ofport changed (a dict diff, also C speed). It starts over when the bridges (or their order), the
integration bridge or the wish's ownership flags change, and gives up for the full walk while a bridge has two
ports of one name. The rules themselves (`owner`, `port_marks`) are shared with the planner's full walk, which
stays the reference and the fallback; both emit deletions and marks sorted, so their actions are equal lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import compress, count
from operator import is_not

from tuplenet.agent.ovsdb_mirror import D_MIRROR, ROLE_MIRROR
from tuplenet.agent.ovsdb_model import (
    CHASSIS_KEY,
    D_DSRGW,
    D_PATCH,
    D_TUNNELS,
    IFACE_ID_KEY,
    INSTALLED_KEY,
    ROLE_DSRGW,
    ROLE_FLOWBASED,
    ROLE_KEY,
    ROLE_PATCH,
    DbView,
    Desired,
    PortView,
)

# A wrong readiness mark: (interface name, port name, place in the port, True: set it / False: remove it).
# Sorted, these give the planner's mark edits a fixed order whatever the order ports were seen in.
Mark = tuple[str, str, int, bool]
# An owned port (one its domain may delete): (bridge name, port name, domain); sorted likewise.
Deletion = tuple[str, str, str]


def owner(port: PortView, on_bridge: bool, desired: Desired) -> str | None:
    """The managed domain that owns `port`, if any: only such ports are ever deleted. Reads only
    `owner_flags(desired)` of the wish."""
    for iface in port.ifaces:
        ext = iface.external_ids
        if desired.tunnels is not None and on_bridge and (
                ext.get(CHASSIS_KEY) or ext.get(ROLE_KEY) == ROLE_FLOWBASED):
            return D_TUNNELS
        if desired.patch_ports is not None and ext.get(ROLE_KEY) == ROLE_PATCH:
            return D_PATCH
        if desired.mirrors is not None and on_bridge and ext.get(ROLE_KEY) == ROLE_MIRROR:
            return D_MIRROR
        if desired.dsrgw is False and on_bridge and ext.get(ROLE_KEY) == ROLE_DSRGW:
            return D_DSRGW
    return None


def owner_flags(desired: Desired) -> tuple[bool, bool, bool, bool]:
    return (desired.tunnels is None, desired.patch_ports is None, desired.mirrors is None, desired.dsrgw is False)


def port_marks(port: PortView, installed: Mapping[str, int]) -> list[Mark]:
    """The port's interfaces whose readiness mark is wrong: it belongs on the interfaces of ready ports
    (matching ofport) and nowhere else."""
    out: list[Mark] = []
    for i, iface in enumerate(port.ifaces):
        ext = iface.external_ids
        iface_id = ext.get(IFACE_ID_KEY)
        want = iface_id is not None and iface.ofport >= 1 and installed.get(iface_id) == iface.ofport
        has = ext.get(INSTALLED_KEY)
        if want and has != "true":
            out.append((iface.name, port.name, i, True))
        elif not want and has is not None:
            out.append((iface.name, port.name, i, False))
    return out


def _ready_ids(port: PortView) -> set[str]:
    """The iface-ids whose `installed` entry can change this port's marks (an interface without an ofport
    must be unmarked whatever `installed` says)."""
    return {i.external_ids[IFACE_ID_KEY] for i in port.ifaces if i.ofport >= 1 and IFACE_ID_KEY in i.external_ids}


class _Dup(Exception):
    """Two ports of one bridge share a name (not in a sane database): only the full walk gives its order."""


class PortMemo:
    """What the planner needs from the ports of all bridges, for the last view given to `update`."""

    def __init__(self) -> None:
        self.examined = 0  # ports (re)examined so far, and ...
        self.marks_evaluated = 0  # ... their marks: tests check that a small change stays small
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next `update` examines every port."""
        self._key: tuple | None = None
        self._bridges: tuple[tuple[str, str], ...] = ()  # (key in view.bridges, BridgeView.name), in view order
        self._tuples: dict[str, tuple[PortView, ...]] = {}  # bridge key -> its ports tuple at the last update
        self._ports: dict[str, dict[str, PortView]] = {}  # bridge key -> port name -> its PortView there
        self._installed: dict[str, int] = {}  # desired.installed ({} for None) at the last update
        self.existing: dict[str, tuple[str, PortView]] = {}  # port name -> (bridge name, port): the full walk's
        self._owned: dict[tuple[str, str], Deletion] = {}  # (bridge key, port name) -> owned port
        self._by_id: dict[str, set[str]] = {}  # iface-id -> names of the marked bridge's ports with it
        self._wrong: dict[str, list[Mark]] = {}  # port name -> its wrong marks (the marked bridge only)

    def update(self, view: DbView, desired: Desired) -> bool:
        """Catch up with `view` and `desired`; False (memo reset) when only the full walk gives the answer."""
        bridges = tuple((k, b.name) for k, b in view.bridges.items())
        key = (desired.bridge, owner_flags(desired), bridges)
        installed = desired.installed if desired.installed is not None else {}
        fresh = key != self._key
        self._key = None  # until the update is complete: an exception halfway leaves no half-updated memo
        if fresh:
            self.reset()
        self._bridges = bridges
        try:
            if fresh:
                changed_ids: set[str] = set()
                self._installed = dict(installed)
            else:
                changed_ids = self._installed_diff(installed)
            for (k, bname), b in zip(bridges, view.bridges.values(), strict=True):
                if b.ports is not self._tuples.get(k):
                    self._update_bridge(k, bname, b.ports, desired)
            marked = self._ports.get(desired.bridge, {})
            for iface_id in changed_ids:
                for name in self._by_id.get(iface_id, ()):
                    self._eval_marks(marked[name])
        except _Dup:
            self.reset()
            return False
        self._key = key
        return True

    def deletions(self, spare: set[str], keep: set[str]) -> list[Deletion]:
        """Owned ports not named in `spare` or `keep`, sorted."""
        return sorted(o for (_, name), o in self._owned.items() if name not in spare and name not in keep)

    def marks(self) -> list[Mark]:
        """The wrong marks of the marked bridge (desired.bridge), sorted."""
        return sorted(m for ms in self._wrong.values() for m in ms)

    def _installed_diff(self, installed: Mapping[str, int]) -> set[str]:
        """The iface-ids whose entry differs from the last update's (kept as a copy: the caller may have
        changed its dict in place)."""
        prev = self._installed
        if installed == prev:
            return set()
        try:
            changed = {k for k, _ in installed.items() ^ prev.items()}
        except TypeError:  # unhashable values: every iface-id of either side
            changed = set(installed.keys() | prev.keys())
        self._installed = dict(installed)
        return changed

    def _update_bridge(self, k: str, bname: str, new: tuple[PortView, ...], desired: Desired) -> None:
        old = self._tuples.get(k, ())
        if len(old) == len(new):  # ports changed in place (the usual case): compare position by position
            at = list(compress(range(len(new)), map(is_not, old, new)))
            gone = [old[i] for i in at]
            came = [new[i] for i in at]
        else:  # ports added or removed: what lies between the common head and the common tail
            short = min(len(old), len(new))
            head = next(compress(count(), map(is_not, old, new)), short)
            tail = min(next(compress(count(), map(is_not, reversed(old), reversed(new))), short), short - head)
            gone = old[head:len(old) - tail]
            came = new[head:len(new) - tail]
        names = self._ports.setdefault(k, {})
        came_by_name = {p.name: p for p in came}
        marked = k == desired.bridge
        for p in gone:
            if p.name not in came_by_name:
                self._drop(k, p.name, marked)
        on_bridge = bname == desired.bridge
        for name, p in came_by_name.items():
            if names.get(name) is not p:
                self._set(k, bname, name, p, on_bridge, marked, desired)
        if len(names) != len(new):
            raise _Dup
        self._tuples[k] = new

    def _set(self, k: str, bname: str, name: str, port: PortView, on_bridge: bool, marked: bool,
             desired: Desired) -> None:
        self.examined += 1
        names = self._ports[k]
        old = names.get(name)
        names[name] = port
        domain = owner(port, on_bridge, desired)
        if domain is None:
            self._owned.pop((k, name), None)
        else:
            self._owned[(k, name)] = (bname, name, domain)
        self._existing(name)
        if marked:
            if old is not None:
                self._unindex(name, old)
            for iface_id in _ready_ids(port):
                self._by_id.setdefault(iface_id, set()).add(name)
            self._eval_marks(port)

    def _drop(self, k: str, name: str, marked: bool) -> None:
        self.examined += 1
        old = self._ports[k].pop(name)
        self._owned.pop((k, name), None)
        self._existing(name)
        if marked:
            self._unindex(name, old)
            self._wrong.pop(name, None)

    def _existing(self, name: str) -> None:
        """existing[name] as the full walk leaves it: the last bridge (in view order) with such a port."""
        hit = None
        for k, bname in self._bridges:
            port = self._ports.get(k, {}).get(name)
            if port is not None:
                hit = (bname, port)
        if hit is None:
            self.existing.pop(name, None)
        else:
            self.existing[name] = hit

    def _unindex(self, name: str, port: PortView) -> None:
        for iface_id in _ready_ids(port):
            names = self._by_id.get(iface_id)
            if names is not None:
                names.discard(name)
                if not names:
                    del self._by_id[iface_id]

    def _eval_marks(self, port: PortView) -> None:
        self.marks_evaluated += 1
        wrong = port_marks(port, self._installed)
        if wrong:
            self._wrong[port.name] = wrong
        else:
            self._wrong.pop(port.name, None)
