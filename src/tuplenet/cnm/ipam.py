"""tpcnm's IPAM driver: container addresses handed out from etcd, so hosts sharing a switch never collide.

Docker's own IPAM is per daemon: two hosts attached to one switch would both hand out 10.0.0.2. With
`--ipam-driver tuplenet` every daemon asks us instead, and each address is reserved with one guarded etcd
write (`cnm/ipam/<subnet>/<ip>`), so concurrent requests from any number of hosts get distinct addresses.
A pool is its subnet: every docker network with that subnet draws from the same reservations.
The gateway is shared by the networks of all hosts: reserved as such (so no container gets it), granted to
every host that asks for it, and kept when one host releases it (another may still use it).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from tuplenet.store import Compare, Op

from .protocol import DriverError, show

IPAM_PREFIX = "cnm/ipam/"
GATEWAY_TYPE = "com.docker.network.gateway"
ADDRESS_SPACE = "tuplenet"


RESERVED, GATEWAY = "reserved", "gateway"


def _pool_prefix(net: ipaddress.IPv4Network) -> str:
    return f"{IPAM_PREFIX}{net.network_address}-{net.prefixlen}/"


def _key(pool: ipaddress.IPv4Network, ip: ipaddress.IPv4Address) -> str:
    return f"{_pool_prefix(pool)}{ip}"


def parse_pool(pool_id: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.IPv4Network(pool_id, strict=True)
    except ValueError as exc:
        raise DriverError(f"bad PoolID {show(pool_id)}: {exc}") from None
    if net.prefixlen > 30:
        raise DriverError(f"pool {net} has no room for containers (prefix must be at most 30)")
    return net


class CnmIpam:
    """The IpamDriver calls; `store` is the driver's etcd store."""

    def __init__(self, store: Any, scan_limit: int = 65536) -> None:
        self.store = store
        self.scan_limit = scan_limit

    def capabilities(self) -> dict[str, Any]:
        return {"RequiresMACAddress": False, "RequiresRequestReplay": False}

    def address_spaces(self) -> dict[str, Any]:
        return {"LocalDefaultAddressSpace": ADDRESS_SPACE, "GlobalDefaultAddressSpace": ADDRESS_SPACE}

    def request_pool(self, pool: str, sub_pool: str, v6: bool) -> dict[str, Any]:
        if v6:
            raise DriverError("IPv6 is not supported by tuplenet networks")
        if not pool:
            raise DriverError("the tuplenet IPAM driver needs the subnet: docker network create --subnet CIDR")
        if sub_pool:
            raise DriverError("--ip-range is not supported with the tuplenet IPAM driver (addresses are "
                              "shared by all hosts already)")
        net = parse_pool(pool)
        return {"PoolID": str(net), "Pool": str(net), "Data": {}}

    def release_pool(self, pool_id: str) -> None:
        parse_pool(pool_id)

    def request_address(self, pool_id: str, address: str, options: dict[str, Any]) -> dict[str, Any]:
        net = parse_pool(pool_id)
        gateway = options.get("RequestAddressType") == GATEWAY_TYPE
        hosts = (int(net.network_address) + 1, int(net.broadcast_address) - 1)
        if address:
            try:
                ip = ipaddress.IPv4Address(address)
            except ValueError as exc:
                raise DriverError(f"bad address {show(address)}: {exc}") from None
            if not hosts[0] <= int(ip) <= hosts[1]:
                raise DriverError(f"address {ip} is not a host address of {net}")
        elif gateway:  # docker picks no gateway itself: the first address, as its default IPAM does
            ip = ipaddress.IPv4Address(hosts[0])
        else:
            return {"Address": f"{self._first_free(net, hosts)}/{net.prefixlen}", "Data": {}}
        if not self._reserve(net, ip, GATEWAY if gateway else RESERVED):
            raise DriverError(f"address {ip} is already in use in {net}")
        return {"Address": f"{ip}/{net.prefixlen}", "Data": {}}

    def _first_free(self, net: ipaddress.IPv4Network, hosts: tuple[int, int]) -> ipaddress.IPv4Address:
        kvs, _ = self.store.get_prefix(_pool_prefix(net))
        taken = {kv.key.rsplit("/", 1)[1] for kv in kvs}
        for n, value in enumerate(range(hosts[0], hosts[1] + 1)):
            if n >= self.scan_limit:
                break
            ip = ipaddress.IPv4Address(value)
            if str(ip) not in taken and self._reserve(net, ip, RESERVED):
                return ip
        raise DriverError(f"no free address left in {net}")

    def _reserve(self, net: ipaddress.IPv4Network, ip: ipaddress.IPv4Address, kind: str) -> bool:
        """Take `ip`; a gateway may also take an address that is already its network's gateway."""
        key = _key(net, ip)
        if self.store.txn([Compare.missing(key)], [Op.put(key, kind)]).succeeded:
            return True
        return kind == GATEWAY and self.store.txn([Compare.value(key, "=", GATEWAY)], []).succeeded

    def release_address(self, pool_id: str, address: str) -> None:
        net = parse_pool(pool_id)
        try:
            ip = ipaddress.IPv4Address(address)
        except ValueError as exc:
            raise DriverError(f"bad address {show(address)}: {exc}") from None
        key = _key(net, ip)
        self.store.txn([Compare.value(key, "!=", GATEWAY)], [Op.delete(key)])
