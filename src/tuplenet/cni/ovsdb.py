"""A minimal OVSDB JSON-RPC client (RFC 7047) for the plugin: one unix socket, a few transactions.

The ovs IDL would cost a schema download and a full-table monitor on every container start; the plugin needs
four things only: this host's system-id, add/remove one port, and waiting for the agent's readiness mark,
which OVSDB's own "wait" operation does server-side in a single request. It talks over `_socket`: the socket
module's enum conversions and selectors are a few ms of every plugin start, for nothing a unix socket needs.
"""

from __future__ import annotations

import _socket
import time

from tuplenet.store.jsonlite import dumps, raw_decode

from .errors import OVS_FAILURE, TRY_AGAIN_LATER, CniError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

READY_KEY = "tuplenet-installed"


class Ovsdb:
    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self.path, self.timeout = path, timeout
        self._sock: _socket.socket | None = None
        self._buf = ""
        self._id = 0

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _connect(self) -> _socket.socket:
        if self._sock is None:
            s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            s.settimeout(self.timeout)
            try:
                s.connect(self.path)
            except OSError as exc:
                s.close()
                raise CniError(TRY_AGAIN_LATER, f"cannot reach OVSDB at {self.path}: {exc.strerror or exc}; "
                                                "is openvswitch running (or set ovsdbSocket)?") from None
            self._sock = s
        return self._sock

    def call(self, method: str, params: list[Any], timeout: float | None = None) -> Any:
        s = self._connect()
        self._id += 1
        rid = self._id
        deadline = time.monotonic() + (timeout or self.timeout)
        try:
            s.sendall(dumps({"method": method, "params": params, "id": rid}).encode())
            while True:
                msg = self._next(s, deadline)
                if msg.get("method") == "echo":  # keepalive from the server
                    s.sendall(dumps({"result": msg.get("params", []), "error": None,
                                          "id": msg.get("id")}).encode())
                    continue
                if msg.get("id") != rid:
                    continue
                if msg.get("error"):
                    raise CniError(OVS_FAILURE, f"OVSDB {method}: {msg['error']}")
                return msg.get("result")
        except OSError as exc:
            self.close()
            raise CniError(TRY_AGAIN_LATER, f"OVSDB at {self.path}: {exc.strerror or exc}") from None

    def _next(self, s: _socket.socket, deadline: float) -> dict[str, Any]:
        while True:
            text = self._buf.lstrip()
            if text:
                try:
                    msg, end = raw_decode(text)
                except ValueError:
                    pass
                else:
                    self._buf = text[end:]
                    return msg if isinstance(msg, dict) else {}
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("timed out")
            s.settimeout(remaining)
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionResetError("connection closed by ovsdb-server")
            self._buf += chunk.decode()

    def transact(self, *ops: dict[str, Any], timeout: float | None = None) -> list[dict[str, Any]]:
        """Run ops atomically; an op error (constraint, timeout) raises CniError naming it."""
        result = self.call("transact", ["Open_vSwitch", *ops], timeout)
        for r in result or []:
            if isinstance(r, dict) and r.get("error"):
                raise CniError(OVS_FAILURE, f"OVSDB: {r['error']}: {r.get('details', '')}".rstrip(": "))
        return result

    # ---- the plugin's operations -------------------------------------------------------------------------

    def system_id(self, bridge: str) -> str:
        """This chassis' name (external_ids:system-id); also checks that `bridge` exists."""
        res = self.transact({"op": "select", "table": "Open_vSwitch", "where": [], "columns": ["external_ids"]},
                            {"op": "select", "table": "Bridge", "where": [["name", "==", bridge]],
                             "columns": ["name"]})
        rows = res[0].get("rows") or [{}]
        sid = dict(rows[0].get("external_ids", ["map", []])[1]).get("system-id", "")
        if not sid:
            raise CniError(OVS_FAILURE, "Open_vSwitch has no external_ids:system-id: this host is not set up "
                                        "as a TupleNet chassis")
        if not res[1].get("rows"):
            raise CniError(OVS_FAILURE, f"bridge {bridge} does not exist on this host")
        return sid

    def add_port(self, bridge: str, name: str, external_ids: dict[str, str]) -> None:
        """Port + Interface `name` on `bridge`; a leftover of the same name is replaced in the same txn."""
        ids = ["map", sorted(external_ids.items())]
        old = self.port_uuid(name)
        ops: list[dict[str, Any]] = []
        if old is not None:
            ops.append({"op": "mutate", "table": "Bridge", "where": [],
                        "mutations": [["ports", "delete", ["set", [["uuid", old]]]]]})
        ops += [{"op": "insert", "table": "Interface", "row": {"name": name, "external_ids": ids},
                 "uuid-name": "iface"},
                {"op": "insert", "table": "Port", "row": {"name": name, "interfaces": ["named-uuid", "iface"]},
                 "uuid-name": "port"},
                {"op": "mutate", "table": "Bridge", "where": [["name", "==", bridge]],
                 "mutations": [["ports", "insert", ["set", [["named-uuid", "port"]]]]]}]
        res = self.transact(*ops)
        if res[-1].get("count") != 1:
            raise CniError(OVS_FAILURE, f"bridge {bridge} does not exist on this host")

    def port_uuid(self, name: str) -> str | None:
        rows = self.transact({"op": "select", "table": "Port", "where": [["name", "==", name]],
                              "columns": ["_uuid"]})[0].get("rows") or []
        return rows[0]["_uuid"][1] if rows else None

    def del_port(self, name: str) -> bool:
        """Remove port `name` from whichever bridge holds it; False if there was none."""
        uuid = self.port_uuid(name)
        if uuid is None:
            return False
        self.transact({"op": "mutate", "table": "Bridge", "where": [],
                       "mutations": [["ports", "delete", ["set", [["uuid", uuid]]]]]})
        return True

    def interfaces(self, match: dict[str, str]) -> list[dict[str, Any]]:
        """Interfaces whose external_ids include `match`: [{"name", "external_ids": dict, "ofport"}]."""
        rows = self.transact({"op": "select", "table": "Interface",
                              "where": [["external_ids", "includes", ["map", sorted(match.items())]]],
                              "columns": ["name", "external_ids", "ofport"]})[0].get("rows") or []
        return [{"name": r["name"], "external_ids": dict(r["external_ids"][1]),
                 "ofport": r["ofport"] if isinstance(r["ofport"], int) else -1} for r in rows]

    def wait_ready(self, name: str, timeout: float) -> bool:
        """Block (server-side) until the agent marks `name` ready; False on timeout."""
        op = {"op": "wait", "timeout": int(timeout * 1000), "table": "Interface",
              "where": [["name", "==", name], ["external_ids", "includes", ["map", [[READY_KEY, "true"]]]]],
              "columns": ["name"], "until": "==", "rows": [{"name": name}]}
        try:
            self.transact(op, timeout=timeout + 5)
        except CniError as exc:
            if "timed out" in exc.msg:
                return False
            raise
        return True
