"""Address allocation helpers (pure): the CNI-style 'first free IP in a subnet' of 0.3's SaveSwitchPort."""

from __future__ import annotations

from collections.abc import Collection

from .addr import ModelError, int_to_ip, ip_to_int, network_of, normalize_ip, parse_cidr, port_id


def subnet_range(cidr: str, gateway: str | None = None) -> tuple[int, int, int | None]:
    """(first, last, gateway) as ints: the allocatable addresses of `cidr` and the one to skip.

    0.3 started at network+2 (network+1 being the gateway) and stopped before broadcast; we keep that, but
    compute on the full 32-bit address so subnets larger than /16 work (0.3 wrapped at 16 bits, §7.13).
    With an explicit `gateway`, allocation starts at network+1 and skips exactly the gateway.
    """
    ip, prefix = parse_cidr(cidr)
    if prefix > 30:
        raise ModelError(f"subnet {cidr} has no room for ports (prefix must be at most 30)")
    net = network_of(ip, prefix)
    broadcast = net | ((1 << (32 - prefix)) - 1)
    if gateway is None:
        return net + 2, broadcast - 1, None
    gw = ip_to_int(normalize_ip(gateway))
    if not net < gw < broadcast:
        raise ModelError(f"gateway {gateway} is not inside {cidr}")
    return net + 1, broadcast - 1, gw


def first_free_ip(cidr: str, used_port_ids: Collection[int], gateway: str | None = None) -> str:
    """Lowest address of `cidr` whose port id (lower 16 bits) is unused; ModelError when none is left."""
    first, last, gw = subnet_range(cidr, gateway)
    tried = 0
    for value in range(first, last + 1):
        if value == gw:
            continue
        if port_id(value) not in used_port_ids:
            return int_to_ip(value)
        tried += 1
        if tried > 0xFFFF:  # every port id is taken; the rest of a big subnet can only collide
            break
    raise ModelError(f"no free IP left in {cidr}")
