"""Planned edits (ovsdb_plan) -> operations of one IDL transaction. Only `LocalOvs`'s IDL thread calls this."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import ovs.db.idl

from tuplenet.agent import ovsdb_mirror_idl
from tuplenet.agent.ovsdb_idl import TrackingIdl
from tuplenet.agent.ovsdb_ipfix import ClearIpfix, FixIpfix, SetIpfix, row_columns
from tuplenet.agent.ovsdb_mirror import AddMirror, DelMirror, FixMirror
from tuplenet.agent.ovsdb_model import OF_PROTOCOLS
from tuplenet.agent.ovsdb_plan import Action, AddPort, CreateBridge, DelPort, FixBridge, FixIface, PortSpec


class _Names:
    """name -> row of one table, built on first use: a readiness mark touches one interface, and reading every
    row's name through python-ovs costs ~5 µs a row (10 ms per transaction on a 1,000-port host). The names
    TrackingIdl's views already hold are tried first (one Row read to confirm), then the table itself."""

    __slots__ = ("_table", "_cached", "_hint", "_map")

    def __init__(self, table: Any, cached: dict[Any, tuple[Any, Any]] | None = None) -> None:
        self._table = table
        self._cached = cached
        self._hint: dict[str, Any] | None = None
        self._map: dict[str, Any] | None = None

    def __getitem__(self, name: str) -> Any:
        if self._map is None and self._cached is not None:
            if self._hint is None:
                self._hint = {e[1].name: e[0] for e in self._cached.values()}
            row = self._hint.get(name)
            if row is not None and self._table.rows.get(row.uuid) is row and row.name == name:
                return row
        if self._map is None:  # committed rows only: not one this transaction has just inserted
            self._map = {r.name: r for r in self._table.rows.values() if r._data is not None}
        return self._map[name]


def apply(idl: ovs.db.idl.Idl, txn: ovs.db.idl.Transaction, actions: list[Action]) -> None:
    """Turn planned edits into `txn` operations. New rows are inserted first and existing rows touched after,
    so mutations never name a row before its insert. Set/map columns of shared rows (Open_vSwitch.bridges,
    Bridge.ports, external_ids) are changed by mutation, so concurrent ovs-vsctl edits are not overwritten."""
    t = idl.tables
    cached = isinstance(idl, TrackingIdl)
    bridges = _Names(t["Bridge"], idl._bridge_cache if cached else None)  # type: ignore[attr-defined]
    ports = _Names(t["Port"], idl._port_cache if cached else None)  # type: ignore[attr-defined]
    ifaces = _Names(t["Interface"], idl._iface_cache if cached else None)  # type: ignore[attr-defined]
    later: list[Callable[[], None]] = []

    def new_port(name: str, spec: PortSpec | None) -> Any:
        iface = txn.insert(t["Interface"])
        iface.name = name
        iface.type = spec.type if spec else "internal"
        if spec:
            iface.options = dict(spec.options)
            iface.external_ids = dict(spec.external_ids)
            if spec.bfd:
                iface.bfd = dict(spec.bfd)
        port = txn.insert(t["Port"])
        port.name = name
        port.interfaces = [iface]
        return port

    for a in actions:
        if isinstance(a, CreateBridge):
            root = next(iter(t["Open_vSwitch"].rows.values()))
            br = txn.insert(t["Bridge"])
            br.name = a.name
            br.fail_mode = "secure"
            br.protocols = list(OF_PROTOCOLS)
            br.other_config = {"disable-in-band": "true"}
            br.external_ids = dict(a.external_ids)
            if a.datapath_type:
                br.datapath_type = a.datapath_type
            br.ports = [new_port(a.name, None)]  # the bridge's own internal port, as ovs-vsctl add-br makes
            later.append(lambda root=root, br=br: root.addvalue("bridges", br))
        elif isinstance(a, AddPort):
            port = new_port(a.spec.name, a.spec)
            later.append(lambda b=bridges[a.spec.bridge], p=port: b.addvalue("ports", p))
        elif isinstance(a, DelPort):
            # Port and Interface are non-root tables: ovsdb-server garbage-collects them once unreferenced.
            later.append(lambda b=bridges[a.bridge], p=ports[a.name]: b.delvalue("ports", p))
        elif isinstance(a, FixBridge):
            later.append(lambda b=bridges[a.name], a=a: _fix_bridge(b, a))
        elif isinstance(a, FixIface):
            later.append(lambda i=ifaces[a.name], a=a: _fix_iface(i, a))
        elif isinstance(a, SetIpfix | FixIpfix | ClearIpfix):
            later.append(_ipfix_step(txn, t, bridges[a.bridge], a))
        elif isinstance(a, AddMirror | FixMirror | DelMirror):
            later.append(ovsdb_mirror_idl.mirror_step(txn, t, bridges, ports, a))
    for step in later:
        step()
    if any(isinstance(a, AddMirror | FixMirror | DelMirror) for a in actions):
        # Mirror changes need a datapath revalidation once ovs-vswitchd has applied them (see
        # pipeline/mirror.py): next_cfg tells us when (cur_cfg reaches it).
        next(iter(t["Open_vSwitch"].rows.values())).increment("next_cfg")


def _ipfix_step(txn: ovs.db.idl.Transaction, t: Any, br: Any, a: SetIpfix | FixIpfix | ClearIpfix,
                ) -> Callable[[], None]:
    """Our IPFIX row's edits. The bridge's reference is verified, so a row someone else set meanwhile is
    never replaced or dropped: the commit comes back TRY_AGAIN and the planner sees the new row."""
    if isinstance(a, SetIpfix):
        row = txn.insert(t["IPFIX"])
        for col, value in row_columns(a.spec).items():
            setattr(row, col, value)
    else:
        row = None

    def step() -> None:
        br.verify("ipfix")
        if isinstance(a, SetIpfix):
            br.ipfix = [row]
        elif isinstance(a, ClearIpfix):
            br.ipfix = []
        else:
            for col, value in a.columns.items():
                setattr(br.ipfix[0], col, value)
    return step


def _edit_map(row: Any, column: str, edits: Mapping[str, str | None]) -> None:
    """Set each key of a map column (None: remove it) by mutation, leaving other keys as they are."""
    for k, v in edits.items():
        if v is None:
            row.delkey(column, k)
        else:
            row.setkey(column, k, v)


def _fix_bridge(row: Any, a: FixBridge) -> None:
    if a.fail_mode is not None:
        row.fail_mode = a.fail_mode
    if a.protocols is not None:
        row.protocols = list(a.protocols)
    _edit_map(row, "other_config", a.other_config)
    _edit_map(row, "external_ids", a.external_ids)


def _fix_iface(row: Any, a: FixIface) -> None:
    if a.type is not None:
        row.type = a.type
    if a.options is not None:
        row.options = dict(a.options)
    _edit_map(row, "external_ids", a.external_ids)
    _edit_map(row, "bfd", a.bfd)
