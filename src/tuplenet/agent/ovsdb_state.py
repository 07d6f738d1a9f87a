"""Incremental `OvsState` for the IDL thread: `state_from_view` walks every port and interface (~0.5-1 ms per
update on a 1,000-port host, several updates per port coming up); `StateBuilder` redoes only the changed ports.

TrackingIdl reuses the very PortView (and BridgeView) objects of rows that did not change, so C-speed identity
passes over the bridge's ports find the changed ones. Changes to plain VM ports patch the previous state's
bindings/plugged/ofports/macs; anything else (tunnel, flow-based or patch ports, bridge or system fields, the
first build) takes `state_from_view`. Returned states are never mutated: a changed map is a copy, and a map that
did not change is the very object of the previous state (consumers skip identical maps).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, replace
from itertools import compress, count
from operator import attrgetter, is_not

from tuplenet.agent.ovsdb_model import (
    CHASSIS_KEY,
    FLOWBASED_PORT,
    IFACE_ID_KEY,
    ROLE_FLOWBASED,
    ROLE_KEY,
    ROLE_PATCH,
    DbView,
    IfaceView,
    OvsState,
    PortView,
    state_from_view,
)

_NAME = attrgetter("name")
_FIELDS = tuple(f.name for f in fields(OvsState) if f.name not in ("seqno", "connected"))


def _order_key(i: IfaceView) -> str | None:
    """A tunnel's chassis-id, "" for a flow-based interface: two interfaces with one key make state_from_view
    depend on the ports' order (which the fast path ignores)."""
    ext = i.external_ids
    if chassis := ext.get(CHASSIS_KEY):
        return chassis
    return "" if ext.get(ROLE_KEY) == ROLE_FLOWBASED or i.name == FLOWBASED_PORT else None


def _vm_iid(i: IfaceView) -> str | None:
    """The iface-id the interface plugs (and binds with an ofport): any interface but our patch ports'."""
    iid = i.external_ids.get(IFACE_ID_KEY)
    return iid if iid and i.external_ids.get(ROLE_KEY) != ROLE_PATCH else None


def _plain(port: PortView) -> bool:
    """A VM port: only ofports/macs/bindings/plugged depend on it (state_from_view's classification)."""
    return all(_order_key(i) is None and i.external_ids.get(ROLE_KEY) != ROLE_PATCH for i in port.ifaces)


def _patch(old: Mapping, keys: set, want: dict) -> Mapping:
    """`old` with `keys` set to their values in `want` (absent: removed); `old` itself if nothing differs."""
    out: dict | None = None
    for k in keys:
        v = want.get(k)
        if old.get(k) != v:
            if out is None:  # dict.copy() clones even a dict with deleted slots; dict(d) then re-inserts
                out = old.copy() if isinstance(old, dict) else dict(old)
            if v is None:
                del out[k]
            else:
                out[k] = v
    return old if out is None else out


class StateBuilder:
    """`build` equals `state_from_view(view, bridge, connected, seqno)`, in O(changed ports) for VM ports."""

    full_builds = 0  # how many builds took state_from_view (tests, benchmarks)
    _FULL_SHARE = 4  # more than 1/_FULL_SHARE of the ports changed (a resync): state_from_view is cheaper

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next build is a full one."""
        self._state: OvsState | None = None
        self._bridge: str | None = None
        self._ports: tuple[PortView, ...] | None = None  # the bridge's ports at the last build (None: no bridge)
        self._ext: Mapping[str, str] | None = None  # and its external_ids
        self._memo: dict[str, PortView] = {}  # port name -> its view in self._ports
        self._indexed = False  # the three indexes below describe self._ports (built on first need)
        self._owner: dict[str, str] = {}  # interface name -> its port's name
        self._iid_ports: dict[str, set[str]] = {}  # iface-id -> ports with an interface plugging it
        self._keys: set[str] = set()  # the _order_key of every interface that has one

    def build(self, view: DbView, bridge: str, connected: bool, seqno: int) -> OvsState:
        try:
            return self._build(view, bridge, connected, seqno)
        except Exception:
            self.reset()  # the indexes may be half updated
            raise

    def _build(self, view: DbView, bridge: str, connected: bool, seqno: int) -> OvsState:
        prev, br, memo = self._state, view.bridges.get(bridge), self._memo
        if prev is None or br is None or self._ports is None or bridge != self._bridge:
            return self._full(view, bridge, connected, seqno)
        ports, changed, removed, moved = br.ports, [], set(), False
        if ports is not self._ports:
            diff = self._diff(ports)
            if diff is None or (len(diff[0]) + len(diff[1])) * self._FULL_SHARE > len(ports) + 32:
                return self._full(view, bridge, connected, seqno)
            changed, removed, moved = diff
        plain = all(map(_plain, changed)) and all(_plain(memo[n]) for n in removed) and all(
            _plain(memo[p.name]) for p in changed if p.name in memo)
        touched: set[str] = set()  # interface names of the changed ports, before and after
        iids: set[str] = set()  # the iface-ids they plug, before and after
        if (changed or removed or moved) and not (self._index() and self._reindex(changed, removed, touched, iids)):
            return self._full(view, bridge, connected, seqno)
        ext, self._ports, self._ext = self._ext, ports, br.external_ids
        if not plain or view.system_id != prev.system_id or prev.bridges != view.bridges.keys() or (
                br.external_ids is not ext and br.external_ids != prev.bridge_external_ids):
            return self._rebuild(view, bridge, connected, seqno)  # the ports' memo and indexes stay
        if changed or removed:
            self._state = self._apply(prev, changed, touched, iids, connected, seqno)
        elif prev.seqno != seqno or prev.connected != connected:
            self._state = replace(prev, seqno=seqno, connected=connected)
        return self._state

    def _diff(self, ports: tuple[PortView, ...]) -> tuple[list[PortView], set[str], bool] | None:
        """The changed or added ports, the removed ports' names and whether others may have moved (None: two
        ports share a name), in C-speed passes: by position where TrackingIdl kept the ports' order, else by
        name."""
        old, memo = self._ports or (), self._memo
        n, m = len(old), len(ports)
        if n == m:
            at = list(compress(range(m), map(is_not, ports, old)))
            if all(ports[k].name == old[k].name for k in at):
                return [ports[k] for k in at], set(), False
        elif abs(n - m) == 1:  # one port added or removed, the others in their order
            k = next(compress(count(), map(is_not, ports, old)), min(n, m))
            if m > n and ports[k].name not in memo and not any(map(is_not, ports[k + 1:], old[k:])):
                return [ports[k]], set(), False
            if m < n and not any(map(is_not, ports[k:], old[k + 1:])):
                return [], {old[k].name}, False
        names = list(map(_NAME, ports))
        name_set = set(names)
        if len(name_set) != len(ports):  # never in OVSDB (a unique index)
            return None
        changed = list(compress(ports, map(is_not, map(memo.get, names), ports)))
        added = sum(p.name not in memo for p in changed)
        return changed, memo.keys() - name_set if len(memo) > len(ports) - added else set(), True

    def _index(self) -> bool:
        """Index self._ports; False if its state depends on the ports' order (an interface name, a chassis-id
        or a flow-based interface twice: never so in a settled switch)."""
        if not self._indexed:
            self._owner, self._iid_ports, self._keys = {}, {}, set()
            self._indexed = self._reindex(list(self._ports or ()), set(), set(), set(), memo={})
        return self._indexed

    def _reindex(self, changed: list[PortView], removed: set[str], touched: set[str], iids: set[str],
                 memo: dict[str, PortView] | None = None) -> bool:
        """Move the changed and removed ports in the memo and indexes, noting the interface names and iface-ids
        they touch; False (indexes stale) if the ports' order now matters."""
        memo = self._memo if memo is None else memo
        owner, iid_ports, keys = self._owner, self._iid_ports, self._keys
        for name in [*removed, *(p.name for p in changed if p.name in memo)]:
            for i in memo.pop(name).ifaces:
                del owner[i.name]
                keys.discard(_order_key(i))  # type: ignore[arg-type]
                touched.add(i.name)
                if iid := _vm_iid(i):
                    iids.add(iid)
                    iid_ports[iid].discard(name)  # (left empty: as good as absent)
        for p in changed:
            memo[p.name] = p
            for i in p.ifaces:
                key = _order_key(i)
                if i.name in owner or key in keys:
                    self._indexed = False
                    return False
                owner[i.name] = p.name
                touched.add(i.name)
                if key is not None:
                    keys.add(key)
                if iid := _vm_iid(i):
                    iids.add(iid)
                    iid_ports.setdefault(iid, set()).add(p.name)
        return True

    def _apply(self, prev: OvsState, changed: list[PortView], touched: set[str], iids: set[str],
               connected: bool, seqno: int) -> OvsState:
        """prev with the changes of plain VM ports: copies of the maps they change, the other maps as they are."""
        memo, iid_ports = self._memo, self._iid_ports
        ifaces = [i for p in changed for i in p.ifaces]
        want_of = {i.name: i.ofport for i in ifaces if i.ofport >= 1}
        want_mac = {i.name: i.mac for i in ifaces if i.mac}
        want_bind: dict[str, int] = {}
        live = {iid for iid in iids if iid_ports.get(iid)}  # still plugged by some interface
        for iid in live:  # the lowest ofport of the interfaces plugging it (as in state_from_view)
            ofports = [i.ofport for n in iid_ports[iid] for i in memo[n].ifaces if i.ofport >= 1 and _vm_iid(i) == iid]
            if ofports:
                want_bind[iid] = min(ofports)
        plugged, gone = prev.plugged, (iids - live) & prev.plugged
        if gone or not live <= plugged:
            plugged = (plugged - gone) | live
        return replace(prev, bindings=_patch(prev.bindings, iids, want_bind), plugged=plugged,
                       ofports=_patch(prev.ofports, touched, want_of), macs=_patch(prev.macs, touched, want_mac),
                       seqno=seqno, connected=connected)

    def _rebuild(self, view: DbView, bridge: str, connected: bool, seqno: int) -> OvsState:
        """state_from_view, keeping the previous state's objects of the maps that did not change."""
        self.full_builds += 1
        new, prev = state_from_view(view, bridge, connected, seqno), self._state
        if prev is not None:
            same = {f: getattr(prev, f) for f in _FIELDS if getattr(prev, f) == getattr(new, f)}
            if len(same) == len(_FIELDS) and prev.seqno == seqno and prev.connected == connected:
                new = prev
            elif same:
                new = replace(new, **same)
        self._state = new
        return new

    def _full(self, view: DbView, bridge: str, connected: bool, seqno: int) -> OvsState:
        """_rebuild, and the memo of the bridge's ports from scratch (indexes: on first need)."""
        state, br = self._rebuild(view, bridge, connected, seqno), view.bridges.get(bridge)
        self.reset()
        self._state, self._bridge = state, bridge
        if br is not None:
            memo = dict(zip(map(_NAME, br.ports), br.ports, strict=True))
            if len(memo) == len(br.ports):  # else the next build is a full one too
                self._ports, self._ext, self._memo = br.ports, br.external_ids, memo
        return state
