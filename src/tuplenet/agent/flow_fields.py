"""Match fields: the registry of field names with their OXM/NXM encodings, and the canonical match tuple.

Shared by matches, the set/load/move actions (flow_actions.py) and the OpenFlow codec; flow.py re-exports it.
"""

from __future__ import annotations

import socket

from ..records import NamedTuple


class FieldSpec(NamedTuple):
    """How a match/set field is named in ovs-ofctl text and encoded as OXM/NXM."""

    text: str
    oxm_class: int
    oxm_field: int
    nbytes: int
    kind: str  # "int" | "mac" | "ip"


OXM_BASIC = 0x8000
NXM_0 = 0x0000
NXM_1 = 0x0001

_FIELDS: list[FieldSpec] = [
    FieldSpec("in_port", NXM_0, 0, 2, "int"),  # NXM_OF_IN_PORT: loadable (0 lets a packet hairpin)
    FieldSpec("metadata", OXM_BASIC, 2, 8, "int"),
    FieldSpec("dl_dst", OXM_BASIC, 3, 6, "mac"),
    FieldSpec("dl_src", OXM_BASIC, 4, 6, "mac"),
    FieldSpec("dl_type", OXM_BASIC, 5, 2, "int"),
    FieldSpec("nw_proto", OXM_BASIC, 10, 1, "int"),
    FieldSpec("nw_src", OXM_BASIC, 11, 4, "ip"),
    FieldSpec("nw_dst", OXM_BASIC, 12, 4, "ip"),
    FieldSpec("tcp_src", OXM_BASIC, 13, 2, "int"),
    FieldSpec("tcp_dst", OXM_BASIC, 14, 2, "int"),
    FieldSpec("udp_src", OXM_BASIC, 15, 2, "int"),
    FieldSpec("udp_dst", OXM_BASIC, 16, 2, "int"),
    FieldSpec("icmp_type", OXM_BASIC, 19, 1, "int"),
    FieldSpec("icmp_code", OXM_BASIC, 20, 1, "int"),
    FieldSpec("arp_op", OXM_BASIC, 21, 2, "int"),
    FieldSpec("arp_spa", OXM_BASIC, 22, 4, "ip"),
    FieldSpec("arp_tpa", OXM_BASIC, 23, 4, "ip"),
    FieldSpec("arp_sha", OXM_BASIC, 24, 6, "mac"),
    FieldSpec("arp_tha", OXM_BASIC, 25, 6, "mac"),
    FieldSpec("tun_id", OXM_BASIC, 38, 8, "int"),
    *[FieldSpec(f"reg{i}", NXM_1, i, 4, "int") for i in range(16)],
    FieldSpec("nw_ttl", NXM_1, 29, 1, "int"),
    FieldSpec("tun_src", NXM_1, 31, 4, "ip"),
    FieldSpec("tun_dst", NXM_1, 32, 4, "ip"),
    FieldSpec("tun_metadata0", NXM_1, 40, 8, "int"),  # mapped by the TLV map to Geneve opt 0xffee/0, 8 bytes
    FieldSpec("ct_state", NXM_1, 105, 4, "int"),
    FieldSpec("ct_zone", NXM_1, 106, 2, "int"),
    FieldSpec("ct_mark", NXM_1, 107, 4, "int"),  # bit 0: the ACL blocked the connection (pipeline/acl.py)
    FieldSpec("conj_id", NXM_1, 37, 4, "int"),  # which conjunction() matched (pipeline/acl.py)
]
FIELDS: dict[str, FieldSpec] = {f.text: f for f in _FIELDS}
_VARLEN = frozenset({"tun_metadata0"})  # variable-length in OVS: text needs explicit bit ranges
_ORDER: dict[str, int] = {f.text: i for i, f in enumerate(_FIELDS)}


def fmt_mac(v: int) -> str:
    return ":".join(f"{(v >> s) & 0xFF:02x}" for s in range(40, -1, -8))


def fmt_ip(v: int) -> str:
    return ".".join(str((v >> s) & 0xFF) for s in (24, 16, 8, 0))


def mac_int(mac: str) -> int:
    return int(mac.replace(":", ""), 16)


def ip_int(ip: str) -> int:
    return int.from_bytes(socket.inet_aton(ip), "big")


def _fmt_value(spec: FieldSpec, value: int, mask: int | None) -> str:
    if spec.kind == "mac":
        text = fmt_mac(value)
        return text if mask is None else f"{text}/{fmt_mac(mask)}"
    if spec.kind == "ip":
        text = fmt_ip(value)
        if mask is None:
            return text
        plen = bin(mask).count("1")
        if mask == ((1 << 32) - 1) ^ ((1 << (32 - plen)) - 1):
            return f"{text}/{plen}"
        return f"{text}/{fmt_ip(mask)}"
    text = hex(value) if spec.text not in ("in_port",) else str(value)
    return text if mask is None else f"{text}/{hex(mask)}"


class M(NamedTuple):
    """One match field: value, optional bit mask (None = exact)."""

    field: str
    value: int
    mask: int | None = None

    def text(self) -> str:
        return f"{self.field}={_fmt_value(FIELDS[self.field], self.value, self.mask)}"


_new_m = tuple.__new__


def _order_key(m: tuple) -> int:
    return _ORDER[m[0]]


def match(*items: M, **exact: int) -> tuple[M, ...]:
    """Canonical match tuple: fields sorted by registry order, exact fields given as keywords."""
    ms = [*items, *(_new_m(M, (k, v, None)) for k, v in exact.items())]
    try:
        ms.sort(key=_order_key)
    except KeyError as exc:
        raise ValueError(f"unknown match field {exc}") from None
    return tuple(ms)


def _sub(name: str, ofs: int, nbits: int | None) -> str:
    if nbits is None:
        return f"{name}[]"
    if nbits == 1:
        return f"{name}[{ofs}]"
    return f"{name}[{ofs}..{ofs + nbits - 1}]"


__all__ = ["FIELDS", "NXM_0", "NXM_1", "OXM_BASIC", "FieldSpec", "M", "fmt_ip", "fmt_mac", "ip_int", "mac_int",
           "match"]
