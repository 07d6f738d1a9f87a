"""libnetwork's remote driver protocol: a request body becomes one driver call, every failure an answer.

Pure (no I/O of its own), so it is fuzzed directly: whatever bytes docker (or anyone who can reach the
socket) sends, the answer is a JSON object, errors as `{"Err": "<one line>"}` - never an exception out of
`handle` (0.3's driver dereferenced missing objects and panicked, reference §7.14).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any, Protocol

from tuplenet.control.errors import ControlError
from tuplenet.store.errors import StoreError

log = logging.getLogger("tuplenet.cnm")

CONTENT_TYPE = "application/vnd.docker.plugins.v1+json"
_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.-]{0,127}\Z")
MAX_ERR = 300


class DriverError(Exception):
    """A refused request; the message goes back to docker as Err (docker shows it to the user)."""


class Driver(Protocol):
    def activate(self) -> dict[str, Any]: ...
    def capabilities(self) -> dict[str, Any]: ...
    def create_network(self, nid: str, options: dict[str, Any], ipv4: list[Any], ipv6: list[Any]) -> None: ...
    def delete_network(self, nid: str) -> None: ...
    def create_endpoint(self, nid: str, eid: str, address: str, address6: str, mac: str) -> dict[str, Any]: ...
    def endpoint_info(self, nid: str, eid: str) -> dict[str, Any]: ...
    def join(self, nid: str, eid: str, sandbox_key: str) -> dict[str, Any]: ...
    def leave(self, nid: str, eid: str) -> None: ...
    def delete_endpoint(self, nid: str, eid: str) -> None: ...
    def check_network(self, nid: str) -> None: ...
    @property
    def ipam(self) -> Any: ...  # cnm.ipam.CnmIpam


def show(value: Any, limit: int = 80) -> str:
    """A user-supplied value for an error message: repr, one line, bounded."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def one_line(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_ERR else text[:MAX_ERR] + "..."


def get_str(req: dict[str, Any], name: str, required: bool = True) -> str:
    value = req.get(name)
    if value is None or value == "":
        if required:
            raise DriverError(f"missing {name}")
        return ""
    if not isinstance(value, str):
        raise DriverError(f"{name} must be a string, got {show(value)}")
    return value


def get_id(req: dict[str, Any], name: str) -> str:
    value = get_str(req, name)
    if not _ID.match(value):
        raise DriverError(f"bad {name} {show(value)}: expected up to 128 letters, digits, '_', '.', '-'")
    return value


def get_dict(req: dict[str, Any], name: str) -> dict[str, Any]:
    value = req.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise DriverError(f"{name} must be an object, got {show(value)}")
    return value


def get_list(req: dict[str, Any], name: str) -> list[Any]:
    value = req.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise DriverError(f"{name} must be a list, got {show(value)}")
    return value


def _create_network(d: Driver, req: dict[str, Any]) -> dict[str, Any]:
    d.create_network(get_id(req, "NetworkID"), get_dict(req, "Options"), get_list(req, "IPv4Data"),
                     get_list(req, "IPv6Data"))
    return {}


def _create_endpoint(d: Driver, req: dict[str, Any]) -> dict[str, Any]:
    nid, eid = get_id(req, "NetworkID"), get_id(req, "EndpointID")
    iface = get_dict(req, "Interface")
    return d.create_endpoint(nid, eid, get_str(iface, "Address", False), get_str(iface, "AddressIPv6", False),
                             get_str(iface, "MacAddress", False))


def _ids(req: dict[str, Any]) -> tuple[str, str]:
    return get_id(req, "NetworkID"), get_id(req, "EndpointID")


def _delete_network(d: Driver, req: dict[str, Any]) -> dict[str, Any]:
    d.delete_network(get_id(req, "NetworkID"))
    return {}


def _join(d: Driver, req: dict[str, Any]) -> dict[str, Any]:
    nid, eid = _ids(req)
    return d.join(nid, eid, get_str(req, "SandboxKey", False))


def _leave(d: Driver, req: dict[str, Any]) -> dict[str, Any]:
    d.leave(*_ids(req))
    return {}


def _delete_endpoint(d: Driver, req: dict[str, Any]) -> dict[str, Any]:
    d.delete_endpoint(*_ids(req))
    return {}


def _program(d: Driver, req: dict[str, Any]) -> dict[str, Any]:
    """No port mapping here (the switch is reached by routing/NAT in TupleNet), but the network must exist."""
    nid, _ = _ids(req)
    d.check_network(nid)
    return {}


def _nothing(d: Driver, req: dict[str, Any]) -> dict[str, Any]:
    return {}


def _global_only(d: Driver, req: dict[str, Any]) -> dict[str, Any]:
    raise DriverError("not supported: tuplenet is a local-scope driver (no swarm network allocation)")


def _request_pool(d: Driver, req: dict[str, Any]) -> dict[str, Any]:
    v6 = req.get("V6", False)
    if not isinstance(v6, bool):
        raise DriverError(f"V6 must be true or false, got {show(v6)}")
    return d.ipam.request_pool(get_str(req, "Pool", False), get_str(req, "SubPool", False), v6)


def _release_pool(d: Driver, req: dict[str, Any]) -> dict[str, Any]:
    d.ipam.release_pool(get_str(req, "PoolID"))
    return {}


def _request_address(d: Driver, req: dict[str, Any]) -> dict[str, Any]:
    return d.ipam.request_address(get_str(req, "PoolID"), get_str(req, "Address", False), get_dict(req, "Options"))


def _release_address(d: Driver, req: dict[str, Any]) -> dict[str, Any]:
    d.ipam.release_address(get_str(req, "PoolID"), get_str(req, "Address"))
    return {}


ROUTES: dict[str, Callable[[Driver, dict[str, Any]], dict[str, Any]]] = {
    "/Plugin.Activate": lambda d, req: d.activate(),
    "/NetworkDriver.GetCapabilities": lambda d, req: d.capabilities(),
    "/NetworkDriver.CreateNetwork": _create_network,
    "/NetworkDriver.DeleteNetwork": _delete_network,
    "/NetworkDriver.CreateEndpoint": _create_endpoint,
    "/NetworkDriver.EndpointOperInfo": lambda d, req: d.endpoint_info(*_ids(req)),
    "/NetworkDriver.DeleteEndpoint": _delete_endpoint,
    "/NetworkDriver.Join": _join,
    "/NetworkDriver.Leave": _leave,
    "/NetworkDriver.ProgramExternalConnectivity": _program,
    "/NetworkDriver.RevokeExternalConnectivity": _nothing,  # clean-up path: never fails
    "/NetworkDriver.DiscoverNew": _nothing,
    "/NetworkDriver.DiscoverDelete": _nothing,
    "/NetworkDriver.AllocateNetwork": _global_only,
    "/NetworkDriver.FreeNetwork": _global_only,
    "/IpamDriver.GetCapabilities": lambda d, req: d.ipam.capabilities(),
    "/IpamDriver.GetDefaultAddressSpaces": lambda d, req: d.ipam.address_spaces(),
    "/IpamDriver.RequestPool": _request_pool,
    "/IpamDriver.ReleasePool": _release_pool,
    "/IpamDriver.RequestAddress": _request_address,
    "/IpamDriver.ReleaseAddress": _release_address,
}

INTERNAL = "internal error"


def handle(driver: Driver, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON answer) for one request. 400 for a body that is not a JSON object, 404 for an
    unknown method, otherwise 200 - with {"Err": ...} when the request was refused."""
    route = ROUTES.get(path)
    if route is None:
        return 404, {"Err": f"unsupported method {show(path)}"}
    try:
        req = json.loads(body) if body.strip() else {}
    except (ValueError, UnicodeDecodeError) as exc:
        return 400, {"Err": one_line(f"malformed JSON request body: {exc}")}
    if not isinstance(req, dict):
        return 400, {"Err": "request body must be a JSON object"}
    try:
        answer = route(driver, req)
    except (DriverError, ControlError) as exc:
        log.info("%s refused: %s", path, exc)
        return 200, {"Err": one_line(str(exc))}
    except StoreError as exc:
        log.warning("%s: etcd: %s", path, exc)
        return 200, {"Err": one_line(f"etcd: {exc}")}
    except Exception as exc:  # a bug: answer (docker shows it) and keep serving
        log.exception("%s failed", path)
        return 200, {"Err": one_line(f"{INTERNAL} in {path[1:]}: {exc!r}")}
    return 200, answer
