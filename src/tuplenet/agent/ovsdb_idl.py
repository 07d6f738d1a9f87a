"""IDL side of the OVSDB connection: the monitored columns, IDL rows -> `ovsdb_model` views, and planned edits
-> IDL transaction operations. Only `LocalOvs`'s IDL thread calls into this module."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import ovs.db.idl
import ovs.jsonrpc

from tuplenet.agent import ovsdb_mirror_idl
from tuplenet.agent.ovsdb_ipfix import ClearIpfix, FixIpfix, IpfixView, SetIpfix, row_columns
from tuplenet.agent.ovsdb_mirror import AddMirror, DelMirror, FixMirror
from tuplenet.agent.ovsdb_model import OF_PROTOCOLS, BridgeView, DbView, IfaceView, PortView
from tuplenet.agent.ovsdb_plan import Action, AddPort, CreateBridge, DelPort, FixBridge, FixIface, PortSpec

DB_NAME = "Open_vSwitch"
COLUMNS: dict[str, list[str]] = {
    "Open_vSwitch": ["bridges", "external_ids", "other_config", "next_cfg", "cur_cfg"],
    "Bridge": ["name", "ports", "fail_mode", "datapath_type", "protocols", "other_config", "external_ids", "ipfix",
               "mirrors"],
    "Port": ["name", "interfaces", "external_ids"],
    "Mirror": ovsdb_mirror_idl.COLUMNS,
    "Interface": ["name", "type", "options", "external_ids", "ofport", "bfd", "bfd_status", "mac_in_use"],
    "IPFIX": ["targets", "sampling", "obs_domain_id", "obs_point_id", "cache_active_timeout", "cache_max_flows",
              "other_config", "external_ids"],
}


def schema_helper(schema_json: dict[str, Any]) -> ovs.db.idl.SchemaHelper:
    """Register only our columns, skipping any this server's schema lacks (older OVS) instead of asserting."""
    helper = ovs.db.idl.SchemaHelper(schema_json=schema_json)
    tables = schema_json.get("tables", {})
    for table, cols in COLUMNS.items():
        if table not in tables:
            continue
        present = [c for c in cols if c in tables.get(table, {}).get("columns", {})]
        helper.register_columns(table, present)
    return helper


class SchemaFetch:
    """Non-blocking `get_schema` over a reconnecting session, so start() can wait for a server that is not
    up yet and the IDL always uses the schema of the server it talks to (no schema file needed on the host)."""

    def __init__(self, remote: str) -> None:
        self.session = ovs.jsonrpc.Session.open(remote)
        self._req_id: Any = None
        self._req_seqno = -1
        self.result: dict[str, Any] | None = None
        self.error: str | None = None

    def run(self) -> bool:
        """Advance; True once a schema or a definite error is in."""
        s = self.session
        s.run()
        if not s.is_connected():
            return False
        if self._req_id is None or self._req_seqno != s.get_seqno():
            msg = ovs.jsonrpc.Message.create_request("get_schema", [DB_NAME])
            if s.send(msg) == 0:
                self._req_id, self._req_seqno = msg.id, s.get_seqno()
        while (msg := s.recv()) is not None:
            if msg.id != self._req_id:
                continue
            if msg.type == ovs.jsonrpc.Message.T_REPLY:
                self.result = msg.result
            else:
                self.error = f"get_schema {DB_NAME} failed: {msg.error}"
            return True
        return False

    def wait(self, poller: Any) -> None:
        self.session.wait(poller)
        self.session.recv_wait(poller)

    def close(self) -> None:
        self.session.close()


def remote_name(db_path: str) -> str:
    """TUPLENET_OVSDB_PATH is a socket path; full OVSDB remotes (unix:/tcp:/ssl:) are accepted as well."""
    if db_path.startswith(("unix:", "tcp:", "ssl:")):
        return db_path
    return "unix:" + os.path.abspath(db_path)


def unreachable_reason(remote: str) -> str:
    """A human reason for start() failures: the socket missing is the common case (OVS not running)."""
    if not remote.startswith("unix:"):
        return "no answer"
    path = remote[5:]
    if not os.path.exists(path):
        return "socket does not exist (is ovsdb-server running?)"
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(1.0)
            s.connect(path)
    except OSError as exc:
        return f"connect failed: {exc.strerror or exc}"
    return "connected, but the database did not finish its initial sync"


def _get(row: Any, column: str, default: Any) -> Any:
    try:
        return getattr(row, column)
    except AttributeError:  # column missing from this server's schema
        return default


class TrackingIdl(ovs.db.idl.Idl):
    """An Idl that caches its views per row and per bridge, and drops them on change notifications: after an
    update only the bridge it touched is rebuilt, and within it only the changed ports and interfaces (a port
    coming up brings ~6 updates, each rebuilt the whole replica through python-ovs's slow Row attributes,
    ~20 % of an owner agent's CPU per port-up). Cache hits also require the very same Row object, so a
    reconnect's fresh replica is never served from stale entries."""

    def __init__(self, remote: str, helper: ovs.db.idl.SchemaHelper) -> None:
        super().__init__(remote, helper)
        self._iface_cache: dict[uuid.UUID, tuple[Any, IfaceView]] = {}
        self._port_cache: dict[uuid.UUID, tuple[Any, PortView]] = {}
        # bridge -> (its row, its view, its ports' uuids in view order, uuid -> place in that order)
        self._bridge_cache: dict[uuid.UUID, tuple[Any, BridgeView, tuple[uuid.UUID, ...], dict[uuid.UUID, int]]] = {}
        self._dirty_ports: dict[uuid.UUID, set[uuid.UUID]] = {}  # bridge -> ports whose interfaces changed
        self._port_of: dict[uuid.UUID, uuid.UUID] = {}  # interface -> the port that held it at the last view
        self._bridge_of: dict[uuid.UUID, uuid.UUID] = {}  # port -> its bridge at the last view
        self._view: tuple[int, DbView] | None = None

    def notify(self, event: str, row: Any, updates: Any = None) -> None:
        table, key = row._table.name, row.uuid
        if table == "Interface":  # the bridge's port list stands: only this port's view is rebuilt
            self._iface_cache.pop(key, None)
            port = self._port_of.get(key)
            if port is not None:
                self._port_cache.pop(port, None)
                bridge = self._bridge_of.get(port)
                if bridge is not None:
                    self._dirty_ports.setdefault(bridge, set()).add(port)
        elif table == "Port":
            self._port_cache.pop(key, None)
            self._bridge_cache.pop(self._bridge_of.get(key), None)  # type: ignore[arg-type]
        elif table == "Bridge":
            self._bridge_cache.pop(key, None)
        elif table != "Open_vSwitch":  # Mirror, IPFIX: part of a bridge's view, rare; rebuild every bridge
            self._bridge_cache.clear()

    def connected(self) -> bool:
        """Connected and past the initial monitor reply: the replica is current."""
        return bool(self._session.is_connected()) and self.state == self.IDL_S_MONITORING

    def set_backoff(self, min_ms: int, max_ms: int) -> None:
        self._session.reconnect.set_backoff(min_ms, max_ms)

    def _iface(self, row: Any) -> IfaceView:
        hit = self._iface_cache.get(row.uuid)
        if hit is not None and hit[0] is row:
            return hit[1]
        ofport = _get(row, "ofport", [])
        mac = _get(row, "mac_in_use", [])
        view = IfaceView(name=row.name, type=_get(row, "type", ""), options=_get(row, "options", {}),
                         external_ids=_get(row, "external_ids", {}), ofport=ofport[0] if ofport else -1,
                         bfd=_get(row, "bfd", {}), bfd_status=_get(row, "bfd_status", {}),
                         mac=mac[0] if mac else None)
        self._iface_cache[row.uuid] = (row, view)
        return view

    def _port(self, row: Any, bridge: uuid.UUID) -> PortView:
        self._bridge_of[row.uuid] = bridge
        hit = self._port_cache.get(row.uuid)
        if hit is not None and hit[0] is row:
            return hit[1]
        ifaces = []
        for i in row.interfaces:
            if i is not None:
                self._port_of[i.uuid] = row.uuid
                ifaces.append(self._iface(i))
        view = PortView(row.name, tuple(ifaces))
        self._port_cache[row.uuid] = (row, view)
        return view

    def _bridge(self, br: Any) -> BridgeView:
        hit = self._bridge_cache.get(br.uuid)
        dirty = self._dirty_ports.pop(br.uuid, None)
        if hit is not None and hit[0] is br:
            if not dirty:
                return hit[1]
            rows = self.tables["Port"].rows
            if all(u in hit[3] and rows.get(u) is not None for u in dirty):  # else rebuild it all
                ports = list(hit[1].ports)  # only the dirty ports' places change: O(changed), not O(ports)
                for u in dirty:
                    ports[hit[3][u]] = self._port(rows[u], br.uuid)
                view = replace(hit[1], ports=tuple(ports))
                self._bridge_cache[br.uuid] = (br, view, hit[2], hit[3])
                return view
        port_rows = self._port_rows(br)
        ports = tuple(self._port(p, br.uuid) for p in port_rows)
        fail_mode = _get(br, "fail_mode", [])
        view = BridgeView(
            name=br.name, datapath_type=_get(br, "datapath_type", ""), fail_mode=fail_mode[0] if fail_mode else None,
            protocols=frozenset(_get(br, "protocols", [])), other_config=_get(br, "other_config", {}),
            external_ids=_get(br, "external_ids", {}), ports=ports, ipfix=_ipfix_view(br),
            mirrors=ovsdb_mirror_idl.mirror_views(br))
        uuids = tuple(p.uuid for p in port_rows)
        self._bridge_cache[br.uuid] = (br, view, uuids, {u: i for i, u in enumerate(uuids)})
        return view

    def _port_rows(self, br: Any) -> list[Any]:
        """The bridge's Port rows, read from the replica's datum. python-ovs's attribute converts a set three
        times (a list, a checked Datum, Rows sorted in Python): ~20 ms per update on a bridge with 1,000
        ports, on the owner's port-up path. The attribute is still used while the row has local edits."""
        own = br.__dict__  # python-ovs 3.x internals; any other shape takes the attribute
        data = own.get("_data")
        if own.get("_changes", True) or own.get("_mutations") or not data or "ports" not in data:
            return [p for p in br.ports if p is not None]
        rows = self.tables["Port"].rows
        found = (rows.get(a.value) for a in data["ports"].values)
        return sorted((r for r in found if r is not None), key=lambda r: r.uuid.int)  # the attribute's order

    def view(self) -> DbView:
        """The replica as a DbView; rebuilt only when change_seqno moved (our own uncommitted edits never
        show: committing a Transaction rolls them back locally), and then only where notify() said."""
        if self._view is not None and self._view[0] == self.change_seqno:
            return self._view[1]
        self._prune()
        bridges: dict[str, BridgeView] = {}
        for br in self.tables["Bridge"].rows.values():
            bv = self._bridge(br)
            bridges[bv.name] = bv
        root = next(iter(self.tables["Open_vSwitch"].rows.values()), None)
        system_id = _get(root, "external_ids", {}).get("system-id") if root is not None else None
        view = DbView(has_root=root is not None, system_id=system_id or None, bridges=bridges)
        self._view = (self.change_seqno, view)
        return view

    def _prune(self) -> None:
        """Forget cache entries of rows that are gone, once they outnumber the live ones."""
        for cache, table in ((self._iface_cache, "Interface"), (self._port_cache, "Port"),
                             (self._bridge_cache, "Bridge")):
            live = self.tables[table].rows
            if len(cache) > 2 * len(live) + 64:
                for k in [k for k in cache if k not in live]:
                    del cache[k]
        for gone in self._dirty_ports.keys() - self.tables["Bridge"].rows.keys():
            del self._dirty_ports[gone]
        for m, table in ((self._port_of, "Interface"), (self._bridge_of, "Port")):
            live = self.tables[table].rows
            if len(m) > 2 * len(live) + 64:
                for k in [k for k in m if k not in live]:
                    del m[k]


def _ipfix_view(br: Any) -> IpfixView | None:
    ref = _get(br, "ipfix", [])
    row = ref[0] if ref else None
    if row is None:
        return None

    def one(col: str) -> int | None:
        v = _get(row, col, [])
        return v[0] if v else None
    return IpfixView(targets=frozenset(_get(row, "targets", [])), sampling=one("sampling"),
                     obs_domain_id=one("obs_domain_id"), obs_point_id=one("obs_point_id"),
                     cache_active_timeout=one("cache_active_timeout"), cache_max_flows=one("cache_max_flows"),
                     other_config=_get(row, "other_config", {}), external_ids=_get(row, "external_ids", {}))


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


def _fix_bridge(row: Any, a: FixBridge) -> None:
    if a.fail_mode is not None:
        row.fail_mode = a.fail_mode
    if a.protocols is not None:
        row.protocols = list(a.protocols)
    for k, v in a.other_config.items():
        row.setkey("other_config", k, v)
    for k, v in a.external_ids.items():
        if v is None:
            row.delkey("external_ids", k)
        else:
            row.setkey("external_ids", k, v)


def _fix_iface(row: Any, a: FixIface) -> None:
    if a.type is not None:
        row.type = a.type
    if a.options is not None:
        row.options = dict(a.options)
    for k, v in a.external_ids.items():
        if v is None:
            row.delkey("external_ids", k)
        else:
            row.setkey("external_ids", k, v)
    for k, v in a.bfd.items():
        row.setkey("bfd", k, v)
