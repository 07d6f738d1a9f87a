"""The driver's operations: docker network = logical switch, endpoint = switch port bound to this chassis.

Every etcd change goes through the control layer (validation, CAS); the driver adds only the mapping from
docker's ids to TupleNet objects (records.py) and the host side (host.py). Whatever a call creates before a
later step fails is removed again, so a refused request leaves nothing behind.

Several hosts share one switch when their docker networks name it (`-o switch=NAME`): the first creates it,
the others adopt it, the last one to delete its network removes it (only if the driver created it and no
foreign port remains).
"""

from __future__ import annotations

import ipaddress
import json
import logging
from typing import Any

from tuplenet.control import AlreadyExists, Controller, NotEmpty, NotFound
from tuplenet.model import ModelError, normalize_mac, validate_name
from tuplenet.store import Compare, Op

from .host import Host, HostError, veth_names
from .ipam import CnmIpam
from .protocol import DriverError, show
from .records import NETWORK_PREFIX, NetworkRecord, RecordError, network_key, switch_key

log = logging.getLogger("tuplenet.cnm")

GENERIC = "com.docker.network.generic"
MTU_OPTIONS = ("mtu", "com.docker.network.driver.mtu")
KNOWN_OPTIONS = ("switch", "router", *MTU_OPTIONS)


def _parse_mtu(value: Any) -> int:
    try:
        mtu = int(str(value), 10)
    except ValueError:
        raise DriverError(f"bad mtu {show(value)}: expected a number") from None
    if not 576 <= mtu <= 9000:
        raise DriverError(f"bad mtu {mtu}: expected 576..9000")
    return mtu


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise DriverError(f"bad {what} {show(value)}: expected a string")
    try:
        return validate_name(value)
    except ModelError as exc:
        raise DriverError(f"bad {what} {show(value)}: {exc}") from None


def parse_ipv4_data(ipv4: list[Any]) -> tuple[ipaddress.IPv4Network, ipaddress.IPv4Address | None]:
    """The one IPv4 pool docker's IPAM gave the network: (subnet, gateway or None)."""
    if len(ipv4) != 1 or not isinstance(ipv4[0], dict):
        raise DriverError(f"expected exactly one IPv4 subnet, got {len(ipv4)} (one docker network = one switch)")
    data = ipv4[0]
    pool, gateway = data.get("Pool"), data.get("Gateway")
    if not isinstance(pool, str):
        raise DriverError(f"bad IPv4 pool {show(pool)}")
    try:
        subnet = ipaddress.IPv4Network(pool, strict=True)
    except ValueError as exc:
        raise DriverError(f"bad IPv4 pool {show(pool)}: {exc}") from None
    if subnet.prefixlen > 30:
        raise DriverError(f"IPv4 pool {subnet} has no room for containers (prefix must be at most 30)")
    if gateway in (None, ""):
        return subnet, None
    if not isinstance(gateway, str):
        raise DriverError(f"bad IPv4 gateway {show(gateway)}")
    try:
        gw = ipaddress.IPv4Interface(gateway).ip
    except ValueError as exc:
        raise DriverError(f"bad IPv4 gateway {show(gateway)}: {exc}") from None
    if gw not in subnet or gw in (subnet.network_address, subnet.broadcast_address):
        raise DriverError(f"gateway {gw} is not a host address of {subnet}")
    return subnet, gw


class CnmDriver:
    """Implements protocol.Driver over a Controller (etcd) and a Host (veth/OVS)."""

    def __init__(self, ctl: Controller, host: Host, chassis: str, *, default_router: str | None = None,
                 mtu: int = 1400, ready_timeout: float = 10.0) -> None:
        self.ctl, self.host, self.chassis = ctl, host, chassis
        self.default_router, self.mtu, self.ready_timeout = default_router, mtu, ready_timeout
        self.ipam = CnmIpam(ctl.store)

    @property
    def store(self) -> Any:
        return self.ctl.store

    # ---- records ------------------------------------------------------------------------------------------

    def record(self, nid: str) -> NetworkRecord:
        kv = self.store.get(network_key(nid))
        if kv is None:
            raise DriverError(f"network {nid} not found (not created through this driver, or its record in "
                              "etcd was removed)")
        try:
            return NetworkRecord.from_json(kv.value)
        except RecordError as exc:
            raise DriverError(f"network {nid}: {exc}") from None

    def others_on_switch(self, switch: str, nid: str) -> list[NetworkRecord]:
        kvs, _ = self.store.get_prefix(NETWORK_PREFIX)
        out = []
        for kv in kvs:
            if kv.key == network_key(nid):
                continue
            try:
                rec = NetworkRecord.from_json(kv.value)
            except RecordError:
                continue
            if rec.switch == switch:
                out.append(rec)
        return out

    # ---- plugin -------------------------------------------------------------------------------------------

    def activate(self) -> dict[str, Any]:
        return {"Implements": ["NetworkDriver", "IpamDriver"]}

    def capabilities(self) -> dict[str, Any]:
        # Networks are created per docker daemon (no cluster store); the switch connects hosts.
        return {"Scope": "local", "ConnectivityScope": "global"}

    # ---- networks -----------------------------------------------------------------------------------------

    def _network_options(self, nid: str, options: dict[str, Any]) -> tuple[str, str | None, int]:
        generic = options.get(GENERIC) or {}
        if not isinstance(generic, dict):
            raise DriverError(f"bad driver options {show(generic)}: expected an object")
        unknown = sorted(k for k in generic if k not in KNOWN_OPTIONS)
        if unknown:
            raise DriverError(f"unknown driver option {show(unknown[0])} (known: switch, router, mtu)")
        if options.get("com.docker.network.enable_ipv6") is True:
            raise DriverError("IPv6 is not supported by tuplenet networks")
        switch = _name(generic["switch"], "switch name") if "switch" in generic else nid
        router = generic.get("router", self.default_router)
        router = _name(router, "router name") if router not in (None, "") else None
        mtu = self.mtu
        for key in MTU_OPTIONS:
            if key in generic:
                mtu = _parse_mtu(generic[key])
        return switch, router, mtu

    def create_network(self, nid: str, options: dict[str, Any], ipv4: list[Any], ipv6: list[Any]) -> None:
        switch, router, mtu = self._network_options(nid, options)
        if ipv6:
            raise DriverError("IPv6 is not supported by tuplenet networks")
        subnet, gw = parse_ipv4_data(ipv4)
        if router and gw is None:
            raise DriverError(f"router {router} needs a gateway address on the network (--gateway)")
        rec = NetworkRecord(switch, str(subnet), str(gw) if gw else None, router, mtu)
        old = self.store.get(network_key(nid))
        if old is not None:
            if old.value == rec.to_json():
                return  # docker retried
            raise DriverError(f"network {nid} exists with other settings")
        for other in self.others_on_switch(switch, nid):
            if (other.subnet, other.gateway, other.router) != (rec.subnet, rec.gateway, rec.router):
                raise DriverError(f"switch {switch} is already a network with subnet {other.subnet}, gateway "
                                  f"{other.gateway}, router {other.router}: use the same settings on every host")
        if not self.store.txn([Compare.missing(network_key(nid))], [Op.put(network_key(nid), rec.to_json())]).succeeded:
            raise DriverError(f"network {nid} is being created concurrently")
        created: list[str] = []
        try:
            self._ensure_switch(rec, created)
        except Exception:
            self._undo(rec, created)
            self.store.delete(network_key(nid))
            raise
        log.info("network %s: switch %s %s router %s (%s)", nid[:12], switch, subnet, router,
                 "created" if created else "adopted")

    def _ensure_switch(self, rec: NetworkRecord, created: list[str]) -> None:
        if rec.router:
            self.ctl.get_router(rec.router)  # must exist (the operator creates and places it)
        try:
            self.ctl.add_switch(rec.switch)
            created.append("switch")
        except AlreadyExists:
            pass
        if rec.router:
            port = f"{rec.switch}_to_{rec.router}"
            try:
                self.ctl.link(rec.router, rec.switch, f"{rec.gateway}/{rec.prefix_len}")
                created.append("link")
            except AlreadyExists:
                lsp = self.ctl.get_switch_port(rec.switch, port)
                if lsp.ip != rec.gateway:
                    raise DriverError(f"switch {rec.switch} is linked to router {rec.router} with {lsp.ip}, "
                                      f"not the network's gateway {rec.gateway}") from None
        if created:
            marker = {"router": rec.router if "link" in created else None}
            self.store.put(switch_key(rec.switch), json.dumps(marker))

    def _undo(self, rec: NetworkRecord, created: list[str]) -> None:
        """Remove what create_network made before it failed (best effort, logged)."""
        try:
            if "link" in created and rec.router:
                self.ctl.delete_switch_port(rec.switch, f"{rec.switch}_to_{rec.router}")
                self.ctl.delete_router_port(rec.router, f"{rec.router}_to_{rec.switch}")
            if "switch" in created:
                self.ctl.delete_switch(rec.switch)
                self.store.delete(switch_key(rec.switch))
        except Exception as exc:  # noqa: BLE001 - the original error is what docker must see
            log.warning("could not undo switch %s: %s", rec.switch, exc)

    def delete_network(self, nid: str) -> None:
        rec = self.record(nid)
        self.store.delete(network_key(nid))
        if self.others_on_switch(rec.switch, nid):
            return  # another host's network still uses the switch
        kv = self.store.get(switch_key(rec.switch))
        if kv is None:
            return  # adopted: the operator's switch stays
        try:
            router = json.loads(kv.value).get("router")
        except (ValueError, AttributeError):
            router = None
        if router:
            for kind, parent, port in (("lsp", rec.switch, f"{rec.switch}_to_{router}"),
                                       ("lrp", router, f"{router}_to_{rec.switch}")):
                try:
                    (self.ctl.delete_switch_port if kind == "lsp" else self.ctl.delete_router_port)(parent, port)
                except NotFound:
                    pass
        try:
            self.ctl.delete_switch(rec.switch)
        except NotEmpty:
            log.warning("switch %s keeps ports not made by docker; left in place", rec.switch)
            return
        except NotFound:
            pass
        self.store.delete(switch_key(rec.switch))

    def check_network(self, nid: str) -> None:
        self.record(nid)

    # ---- endpoints ----------------------------------------------------------------------------------------

    def create_endpoint(self, nid: str, eid: str, address: str, address6: str, mac: str) -> dict[str, Any]:
        rec = self.record(nid)
        if address6:
            raise DriverError("IPv6 is not supported by tuplenet networks")
        if not address:
            raise DriverError("endpoint has no IPv4 address (the network needs an IPAM driver that assigns one)")
        try:
            iface = ipaddress.IPv4Interface(address)
        except ValueError as exc:
            raise DriverError(f"bad address {show(address)}: {exc}") from None
        if iface.network != ipaddress.IPv4Network(rec.subnet):
            raise DriverError(f"address {iface} is not in the network's subnet {rec.subnet}")
        ip = str(iface.ip)
        if ip == rec.gateway:
            raise DriverError(f"address {ip} is the network's gateway")
        try:
            want_mac = normalize_mac(mac) if mac else None
        except ModelError as exc:
            raise DriverError(f"bad MAC address {show(mac)}: {exc}") from None
        try:
            port = self.ctl.add_switch_port(rec.switch, eid, ip, want_mac, chassis=self.chassis)
            made_port = True
        except AlreadyExists:  # docker retried after a lost answer: same port is fine
            port = self.ctl.get_switch_port(rec.switch, eid)
            if port.ip != ip or (want_mac and port.mac != want_mac):
                raise DriverError(f"switch {rec.switch} port {eid} exists with {port.ip} {port.mac}") from None
            made_port = False
        try:
            self.host.add_port(eid, eid, port.mac, rec.mtu)
        except HostError as exc:
            if made_port:
                self._forget_port(rec.switch, eid)
            raise DriverError(str(exc)) from None
        log.info("endpoint %s: %s %s on switch %s", eid[:12], ip, port.mac, rec.switch)
        return {"Interface": {} if want_mac else {"MacAddress": port.mac}}

    def _forget_port(self, switch: str, eid: str) -> bool:
        try:
            self.ctl.delete_switch_port(switch, eid)
            return True
        except NotFound:
            return False

    def _port(self, rec: NetworkRecord, eid: str) -> Any:
        try:
            return self.ctl.get_switch_port(rec.switch, eid)
        except NotFound:
            raise DriverError(f"endpoint {eid} not found on switch {rec.switch}") from None

    def endpoint_info(self, nid: str, eid: str) -> dict[str, Any]:
        rec = self.record(nid)
        port = self._port(rec, eid)
        host, cont = veth_names(eid)
        return {"Value": {"switch": rec.switch, "port": eid, "ip": port.ip, "mac": port.mac,
                          "chassis": port.chassis or "", "veth": host, "container_veth": cont}}

    def join(self, nid: str, eid: str, sandbox_key: str) -> dict[str, Any]:
        rec = self.record(nid)
        self._port(rec, eid)
        if not self.host.has_port(eid):
            raise DriverError(f"endpoint {eid} has no interface on this host (created elsewhere, or removed)")
        if self.ready_timeout > 0 and not self.host.wait_ready(eid, self.ready_timeout):
            raise DriverError(f"endpoint {eid}: the tuplenet agent did not mark its port ready within "
                              f"{self.ready_timeout:g}s (is the agent running on this host?)")
        answer: dict[str, Any] = {"InterfaceName": {"SrcName": veth_names(eid)[1], "DstPrefix": "eth"}}
        if rec.router and rec.gateway:
            answer["Gateway"] = rec.gateway
        return answer

    def leave(self, nid: str, eid: str) -> None:
        self._port(self.record(nid), eid)  # docker moves the interface out of the sandbox itself

    def delete_endpoint(self, nid: str, eid: str) -> None:
        rec = self.record(nid)
        try:
            had_iface = self.host.delete_port(eid)
        except HostError as exc:
            raise DriverError(str(exc)) from None
        if not self._forget_port(rec.switch, eid) and not had_iface:
            raise DriverError(f"endpoint {eid} not found on switch {rec.switch}")
