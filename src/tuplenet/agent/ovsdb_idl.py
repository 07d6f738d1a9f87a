"""IDL side of the OVSDB connection: the monitored columns and IDL rows -> `ovsdb_model` views (planned edits ->
transaction operations: ovsdb_txn). Only `LocalOvs`'s IDL thread calls into this module."""

from __future__ import annotations

import bisect
import operator
import os
import socket
import uuid
from dataclasses import replace
from typing import Any

import ovs.db.idl
import ovs.jsonrpc

from tuplenet.agent import ovsdb_mirror_idl
from tuplenet.agent.ofport_hints import OfportHints
from tuplenet.agent.ovsdb_ipfix import IpfixView
from tuplenet.agent.ovsdb_model import IFACE_ID_KEY, BridgeView, DbView, IfaceView, PortView

_UUID_INT = operator.attrgetter("int")
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
    """An Idl that caches its views per row and per bridge, and updates them from change notifications: after
    an update only the changed ports' and interfaces' views are rebuilt, and a port added or deleted is put in
    or taken out of its bridge's cached list (a port coming up brings ~6 updates, each rebuilt the whole replica
    through python-ovs's slow Row attributes, ~20 % of an owner agent's CPU per port-up). Unchanged ports keep
    their very view objects, which the snapshot and the planner rely on to find what changed. Cache hits also
    require the very same Row object, so a reconnect's fresh replica is never served from stale entries; a
    failed build drops the bridges' caches (the notifications it consumed are not lost)."""

    def __init__(self, remote: str, helper: ovs.db.idl.SchemaHelper) -> None:
        super().__init__(remote, helper)
        self._iface_cache: dict[uuid.UUID, tuple[Any, IfaceView]] = {}
        self._port_cache: dict[uuid.UUID, tuple[Any, PortView]] = {}
        # bridge -> (its row, its view, its ports' uuids in view order, uuid.int -> place in that order); keyed
        # by the uuids' ints, which hash and compare at C speed (uuid.UUID's own methods are Python code)
        self._bridge_cache: dict[uuid.UUID, tuple[Any, BridgeView, tuple[uuid.UUID, ...], dict[int, int]]] = {}
        self._dirty_ports: dict[uuid.UUID, set[uuid.UUID]] = {}  # bridge -> ports whose interfaces changed
        # bridges whose port list may have changed -> whether their own columns did too (then a new BridgeView)
        self._relist: dict[uuid.UUID, bool] = {}
        self.relisted = 0  # port lists updated in place (tests)
        self._port_of: dict[uuid.UUID, uuid.UUID] = {}  # interface -> the port that held it at the last view
        self._bridge_of: dict[uuid.UUID, uuid.UUID] = {}  # port -> its bridge at the last view
        self._view: tuple[tuple[int, int], DbView] | None = None
        self.hints = OfportHints()  # port numbers OpenFlow announced before OVSDB has them (ofport_hints.py)
        self.hint_gen = 0  # bumped when a hint changes an interface's view (with change_seqno: a new view)
        self._iface_named: dict[str, uuid.UUID] = {}  # interface name -> its row, at the last view of it
        self._hinted: set[uuid.UUID] = set()  # interfaces whose view took its ofport from a hint

    def notify(self, event: str, row: Any, updates: Any = None) -> None:
        table, key = row._table.name, row.uuid
        if table == "Interface":  # the bridge's port list stands: only this port's view is rebuilt
            self._touch_iface(key)
            if event == ovs.db.idl.ROW_DELETE:
                self._hinted.discard(key)
                name = _get(row, "name", None)  # (a deleted row keeps its data)
                if isinstance(name, str):
                    if self._iface_named.get(name) == key:
                        del self._iface_named[name]
                    self.hints.forget(name)  # a late announcement of the old port must not serve a new row
        elif table == "Port":
            self._port_cache.pop(key, None)
            bridge = self._bridge_of.get(key)
            if bridge is not None:  # (a new port comes with its bridge's update)
                if event != ovs.db.idl.ROW_DELETE:  # changed, or a known row inserted again (python-ovs may)
                    self._dirty_ports.setdefault(bridge, set()).add(key)
                if event != ovs.db.idl.ROW_UPDATE:  # gone from its bridge, or maybe: the list is checked
                    self._relist.setdefault(bridge, False)
                mirrors = self.tables.get("Mirror")
                if event != ovs.db.idl.ROW_DELETE and mirrors is not None and mirrors.rows:
                    cols = _changed_columns(updates) if event == ovs.db.idl.ROW_UPDATE else None
                    if cols is None or "name" in cols:  # renamed, maybe: mirror views name their ports (rare)
                        self._bridge_cache.clear()
        elif table == "Bridge":
            if event == ovs.db.idl.ROW_UPDATE:  # its ports or its own columns: relisted in place (_bridge)
                cols = _changed_columns(updates)
                own = cols is None or bool(cols - {"ports"})
                self._relist[key] = self._relist.get(key, False) or own
            else:
                self._bridge_cache.pop(key, None)
        elif table != "Open_vSwitch":  # Mirror, IPFIX: part of a bridge's view, rare; rebuild every bridge
            self._bridge_cache.clear()

    def _touch_iface(self, key: uuid.UUID) -> None:
        """Rebuild this interface's view (and its port's) at the next view()."""
        self._iface_cache.pop(key, None)
        port = self._port_of.get(key)
        if port is not None:
            self._port_cache.pop(port, None)
            bridge = self._bridge_of.get(port)
            if bridge is not None:
                self._dirty_ports.setdefault(bridge, set()).add(port)

    def state_seq(self) -> tuple[int, int]:
        """Moves whenever view() may differ: a database change or a hint."""
        return self.change_seqno, self.hint_gen

    def port_status(self, reason: int, port_no: int, name: str | None) -> None:
        """An OpenFlow port-status message of the bridge (name None: an OpenFlow session began or ended)."""
        if name is None:
            self.reset_hints()
        elif self.hints.update(reason, port_no, name):
            self._rehint([name])

    def reset_hints(self) -> None:
        """Forget every hint: an OpenFlow session began or ended, or the OVSDB session was re-established
        (its re-listing tells no deletions)."""
        self._rehint(self.hints.reset())

    def _rehint(self, names: list[str]) -> None:
        """These names' hints changed: an interface still without an OVSDB ofport, or whose view took a hint,
        gets a new view."""
        for n in names:
            key = self._iface_named.get(n)
            if key is None:  # not in a view yet: its first view reads the hint
                continue
            hit = self._iface_cache.get(key)
            if key in self._hinted or hit is None or (hit[1].ofport < 1 and IFACE_ID_KEY in hit[1].external_ids):
                self._touch_iface(key)
                self.hint_gen += 1

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
        name, ext = row.name, _get(row, "external_ids", {})
        number = ofport[0] if ofport else -1
        hinted = False
        if ofport:
            self.hints.confirmed(name)
        elif IFACE_ID_KEY in ext:  # a VM or patch port OVSDB has no number for yet
            hint = self.hints.get(name)
            if hint is not None:
                number, hinted = hint, True
        view = IfaceView(name=name, type=_get(row, "type", ""), options=_get(row, "options", {}),
                         external_ids=ext, ofport=number, bfd=_get(row, "bfd", {}),
                         bfd_status=_get(row, "bfd_status", {}), mac=mac[0] if mac else None)
        self._iface_cache[row.uuid] = (row, view)
        self._iface_named[name] = row.uuid
        if hinted:
            self._hinted.add(row.uuid)
        else:
            self._hinted.discard(row.uuid)
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
        own = self._relist.pop(br.uuid, None)  # None: the row did not change; False: only its ports did
        relist = own is not None
        if hit is not None and hit[0] is br:
            if not dirty and not relist:
                return hit[1]
            rows = self.tables["Port"].rows
            uuids, index, ports = hit[2], hit[3], hit[1].ports
            listed = self._relisted(br, hit) if relist else None
            if listed is not None:
                uuids, index, ports = listed
                dirty = {u for u in dirty or () if u.int in index}  # a deleted port's interfaces went with it
            if (listed is not None or not relist) and all(u.int in index and rows.get(u) is not None
                                                          for u in dirty or ()):
                if dirty:  # only the dirty ports' places change: O(changed), not O(ports)
                    ports = list(ports)
                    for u in dirty:
                        ports[index[u.int]] = self._port(rows[u], br.uuid)
                # A port added or deleted changes only `ports`: the bridge's other fields are the cached view's
                # (reading them again through python-ovs's Row attributes cost ~0.08 ms a port up or down).
                # Mirror views also name ports: notify() drops the cache when a port's name may change.
                view = self._bridge_view(br, tuple(ports)) if own else replace(hit[1], ports=tuple(ports))
                self._bridge_cache[br.uuid] = (br, view, uuids, index)
                return view
        port_rows = self._port_rows(br)
        view = self._bridge_view(br, tuple(self._port(p, br.uuid) for p in port_rows))
        uuids = tuple(p.uuid for p in port_rows)
        self._bridge_cache[br.uuid] = (br, view, uuids, {u.int: i for i, u in enumerate(uuids)})
        return view

    def _bridge_view(self, br: Any, ports: tuple[PortView, ...]) -> BridgeView:
        fail_mode = _get(br, "fail_mode", [])
        return BridgeView(
            name=br.name, datapath_type=_get(br, "datapath_type", ""), fail_mode=fail_mode[0] if fail_mode else None,
            protocols=frozenset(_get(br, "protocols", [])), other_config=_get(br, "other_config", {}),
            external_ids=_get(br, "external_ids", {}), ports=ports, ipfix=_ipfix_view(br),
            mirrors=ovsdb_mirror_idl.mirror_views(br))

    def _relisted(self, br: Any, hit: tuple) -> tuple[tuple[uuid.UUID, ...], dict[int, int], list[PortView]] | None:
        """The bridge's ports after its row changed, from the cached list: a port added or deleted costs a set
        difference at C speed, not a view of every port (~3 ms a port up or down on a 1,000-port bridge).
        None (rebuild it all) when many changed or the row is not as python-ovs 3.x keeps it."""
        listed = _port_uuids(br)
        if listed is None:
            return None
        rows = self.tables["Port"].rows
        now = {u.int: u for u in listed}
        index: dict[int, int] = hit[3]
        gone, new = index.keys() - now.keys(), now.keys() - index.keys()
        if not gone and not new:
            return hit[2], index, list(hit[1].ports)
        if len(gone) + len(new) > 16 or any(rows.get(now[k]) is None for k in new):
            return None
        uuids, ports = list(hit[2]), list(hit[1].ports)
        for i in sorted((index[k] for k in gone), reverse=True):
            del uuids[i], ports[i]
        for k in sorted(new):  # python-ovs's order: by uuid
            i = bisect.bisect_left(uuids, k, key=_UUID_INT)
            uuids.insert(i, now[k])
            ports.insert(i, self._port(rows[now[k]], br.uuid))
        self.relisted += 1
        return tuple(uuids), {u.int: i for i, u in enumerate(uuids)}, ports

    def _port_rows(self, br: Any) -> list[Any]:
        """The bridge's Port rows, read from the replica's datum. python-ovs's attribute converts a set three
        times (a list, a checked Datum, Rows sorted in Python): ~20 ms per update on a bridge with 1,000
        ports, on the owner's port-up path. The attribute is still used while the row has local edits."""
        listed = _port_uuids(br)
        if listed is None:
            return [p for p in br.ports if p is not None]
        rows = self.tables["Port"].rows
        found = (rows.get(u) for u in listed)
        return sorted((r for r in found if r is not None), key=lambda r: r.uuid.int)  # the attribute's order

    def view(self) -> DbView:
        """The replica as a DbView; rebuilt only when state_seq() moved (our own uncommitted edits never
        show: committing a Transaction rolls them back locally), and then only where notify() said."""
        seq = self.state_seq()
        if self._view is not None and self._view[0] == seq:
            return self._view[1]
        self._prune()
        bridges: dict[str, BridgeView] = {}
        try:
            for br in self.tables["Bridge"].rows.values():
                bv = self._bridge(br)
                bridges[bv.name] = bv
        except Exception:  # _bridge took the bridge's change marks: its next build must be a full one
            self._bridge_cache.clear()
            raise
        root = next(iter(self.tables["Open_vSwitch"].rows.values()), None)
        system_id = _get(root, "external_ids", {}).get("system-id") if root is not None else None
        view = DbView(has_root=root is not None, system_id=system_id or None, bridges=bridges)
        self._view = (seq, view)
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
        for gone in self._relist.keys() - self.tables["Bridge"].rows.keys():
            del self._relist[gone]
        live_ifaces = self.tables["Interface"].rows
        if len(self._iface_named) > 2 * len(live_ifaces) + 64:
            self._iface_named = {n: k for n, k in self._iface_named.items() if k in live_ifaces}
        self._hinted &= live_ifaces.keys()
        for m, table in ((self._port_of, "Interface"), (self._bridge_of, "Port")):
            live = self.tables[table].rows
            if len(m) > 2 * len(live) + 64:
                for k in [k for k in m if k not in live]:
                    del m[k]


def _changed_columns(updates: Any) -> frozenset[str] | None:
    """The columns a ROW_UPDATE changed: python-ovs passes their old values as `updates` (every protocol).
    None (assume any) if they come in another shape."""
    data = updates.__dict__.get("_data") if updates is not None else None
    return frozenset(data) if isinstance(data, dict) else None


def _port_uuids(br: Any) -> list[uuid.UUID] | None:
    """The uuids in the Bridge row's `ports`, read from python-ovs 3.x's datum (its attribute converts the set
    three times); None while the row has local edits or is shaped otherwise (then the attribute is used)."""
    own = br.__dict__
    data = own.get("_data")
    if own.get("_changes", True) or own.get("_mutations") or not data or "ports" not in data:
        return None
    return [a.value for a in data["ports"].values]


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
