"""The driver's own state in etcd: which switch (and router) a docker network is, and what it created.

Kept in etcd rather than in memory so a restarted driver (or a driver on another host sharing the switch)
knows every network docker still has. Keys sit outside `entity_view/`, where agents never look:

    cnm/network/<NetworkID>  {"switch", "subnet", "gateway", "router", "mtu"}   one per docker network
    cnm/switch/<switch>      {"router"}   present when the driver created the switch (and that link)
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import asdict, dataclass

NETWORK_PREFIX = "cnm/network/"
SWITCH_PREFIX = "cnm/switch/"


class RecordError(Exception):
    """A record in etcd that does not decode (hand-edited or from a newer driver)."""


@dataclass(frozen=True, slots=True)
class NetworkRecord:
    switch: str
    subnet: str  # "10.99.0.0/24"
    gateway: str | None  # "10.99.0.1" (address only) or None
    router: str | None
    mtu: int

    @property
    def prefix_len(self) -> int:
        return int(self.subnet.rsplit("/", 1)[1])

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> NetworkRecord:
        try:
            d = json.loads(text)
            rec = cls(str(d["switch"]), str(d["subnet"]), d.get("gateway"), d.get("router"), int(d["mtu"]))
        except (ValueError, TypeError, KeyError) as exc:
            raise RecordError(f"bad cnm network record: {exc}") from None
        if rec.gateway is not None and not isinstance(rec.gateway, str) or \
                rec.router is not None and not isinstance(rec.router, str):
            raise RecordError("bad cnm network record: gateway/router must be strings")
        try:
            ipaddress.IPv4Network(rec.subnet)
        except ValueError as exc:
            raise RecordError(f"bad cnm network record: subnet {rec.subnet!r}: {exc}") from None
        return rec


def network_key(network_id: str) -> str:
    return NETWORK_PREFIX + network_id


def switch_key(switch: str) -> str:
    return SWITCH_PREFIX + switch
