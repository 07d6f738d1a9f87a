"""The traced packet: every field our flows can match or set, as integers (absent layers are 0, as in
OVS's flow key). Built from addresses or decoded from a hex frame the way OVS extracts a flow."""

from __future__ import annotations

import struct

from ..agent.flow import FIELDS, ip_int, mac_int

ETH_IP = 0x0800
ETH_ARP = 0x0806
ETH_VLAN = (0x8100, 0x88A8)
PROTO_ICMP, PROTO_TCP, PROTO_UDP = 1, 6, 17
BROADCAST = 0xFFFFFFFFFFFF
MAX_FRAME = 65535

FIELD_NAMES: tuple[str, ...] = tuple(FIELDS)
WIDTH: dict[str, int] = {name: spec.nbytes * 8 for name, spec in FIELDS.items()}
_ZERO = dict.fromkeys(FIELD_NAMES, 0)


class TraceError(ValueError):
    """Bad trace input (address, frame, port): one line for the user."""


def blank() -> dict[str, int]:
    return dict(_ZERO)


def packet(**fields: int) -> dict[str, int]:
    """A packet with the given fields set (unknown names are an error) and the rest 0."""
    pkt = blank()
    for name, value in fields.items():
        if name not in pkt:
            raise TraceError(f"unknown packet field {name!r}")
        pkt[name] = value & ((1 << WIDTH[name]) - 1)
    return pkt


def icmp(src_mac: str, dst_mac: str, src_ip: str, dst_ip: str, ttl: int = 64, type: int = 8,
         code: int = 0) -> dict[str, int]:
    return packet(dl_src=mac_int(src_mac), dl_dst=mac_int(dst_mac), dl_type=ETH_IP, nw_proto=PROTO_ICMP,
                  nw_src=ip_int(src_ip), nw_dst=ip_int(dst_ip), nw_ttl=ttl, icmp_type=type, icmp_code=code)


def l4(proto: str, src_mac: str, dst_mac: str, src_ip: str, dst_ip: str, ttl: int = 64, sport: int = 0,
       dport: int = 0) -> dict[str, int]:
    """A TCP or UDP packet (`proto` 'tcp' or 'udp')."""
    num = PROTO_TCP if proto == "tcp" else PROTO_UDP
    return packet(dl_src=mac_int(src_mac), dl_dst=mac_int(dst_mac), dl_type=ETH_IP, nw_proto=num,
                  nw_src=ip_int(src_ip), nw_dst=ip_int(dst_ip), nw_ttl=ttl,
                  **{f"{proto}_src": sport, f"{proto}_dst": dport})


def arp_request(src_mac: str, src_ip: str, target_ip: str) -> dict[str, int]:
    mac = mac_int(src_mac)
    return packet(dl_src=mac, dl_dst=BROADCAST, dl_type=ETH_ARP, arp_op=1, arp_sha=mac, arp_spa=ip_int(src_ip),
                  arp_tpa=ip_int(target_ip))


def parse_hex(text: str) -> bytes:
    """A frame typed by a user: hex digits, optionally with 0x, spaces, colons or dashes between bytes."""
    s = text.strip()
    if s[:2].lower() == "0x":
        s = s[2:]
    s = "".join(s.split()).replace(":", "").replace("-", "")
    if not s:
        raise TraceError("frame: empty")
    if len(s) % 2:
        raise TraceError("frame: odd number of hex digits")
    if len(s) > 2 * MAX_FRAME:
        raise TraceError(f"frame: longer than {MAX_FRAME} bytes")
    try:
        return bytes.fromhex(s)
    except ValueError:
        raise TraceError("frame: not hexadecimal") from None


def decode_frame(frame: bytes | str) -> dict[str, int]:
    """Flow fields of an Ethernet frame, extracted as OVS does: up to two VLAN tags skipped, IPv4 fields
    only from a complete header, L4 ports only from the first fragment, ARP only for Ethernet/IPv4."""
    raw = parse_hex(frame) if isinstance(frame, str) else bytes(frame)
    if len(raw) < 14:
        raise TraceError(f"frame: {len(raw)} bytes is shorter than an Ethernet header (14)")
    if len(raw) > MAX_FRAME:
        raise TraceError(f"frame: longer than {MAX_FRAME} bytes")
    pkt = blank()
    pkt["dl_dst"] = int.from_bytes(raw[0:6], "big")
    pkt["dl_src"] = int.from_bytes(raw[6:12], "big")
    pos = 12
    (etype,) = struct.unpack_from("!H", raw, pos)
    for _ in range(2):
        if etype not in ETH_VLAN or len(raw) < pos + 6:
            break
        pos += 4
        (etype,) = struct.unpack_from("!H", raw, pos)
    pos += 2
    if etype < 0x600:  # 802.3 length field: OVS reports no Ethernet type
        etype = 0x05FF
    pkt["dl_type"] = etype
    body = raw[pos:]
    if etype == ETH_IP:
        _ipv4(pkt, body)
    elif etype == ETH_ARP:
        _arp(pkt, body)
    return pkt


def _ipv4(pkt: dict[str, int], b: bytes) -> None:
    if len(b) < 20 or b[0] >> 4 != 4:
        return
    ihl = (b[0] & 0x0F) * 4
    total = struct.unpack_from("!H", b, 2)[0]
    if ihl < 20 or len(b) < ihl or total < ihl or total > len(b):
        return
    pkt["nw_ttl"] = b[8]
    pkt["nw_proto"] = proto = b[9]
    pkt["nw_src"] = int.from_bytes(b[12:16], "big")
    pkt["nw_dst"] = int.from_bytes(b[16:20], "big")
    if struct.unpack_from("!H", b, 6)[0] & 0x1FFF:  # a later fragment carries no L4 header
        return
    l4b = b[ihl:total]
    if proto == PROTO_ICMP and len(l4b) >= 8:
        pkt["icmp_type"], pkt["icmp_code"] = l4b[0], l4b[1]
    elif proto == PROTO_TCP and len(l4b) >= 20:
        pkt["tcp_src"], pkt["tcp_dst"] = struct.unpack_from("!HH", l4b)
    elif proto == PROTO_UDP and len(l4b) >= 8:
        pkt["udp_src"], pkt["udp_dst"] = struct.unpack_from("!HH", l4b)


def _arp(pkt: dict[str, int], b: bytes) -> None:
    if len(b) < 28:
        return
    htype, ptype, hlen, plen, op = struct.unpack_from("!HHBBH", b)
    if (htype, ptype, hlen, plen) != (1, ETH_IP, 6, 4):
        return
    pkt["arp_op"] = op if op <= 0xFF else 0
    pkt["arp_sha"] = int.from_bytes(b[8:14], "big")
    pkt["arp_spa"] = int.from_bytes(b[14:18], "big")
    pkt["arp_tha"] = int.from_bytes(b[18:24], "big")
    pkt["arp_tpa"] = int.from_bytes(b[24:28], "big")
