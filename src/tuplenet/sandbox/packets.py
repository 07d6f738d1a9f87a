"""Build and parse test frames (Ethernet, ARP, IPv4, ICMP, UDP, TCP, Geneve) without scapy.

Pure functions over bytes, so packet tests stay fast and exact: builders take an explicit checksum when a
test wants the fixed values of the 0.3 suite, and `Frame` exposes every field the pipeline rewrites.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

ETH_IP = 0x0800
ETH_ARP = 0x0806
ETH_VLAN = 0x8100
PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
GENEVE_PORT = 6081
BROADCAST = "ff:ff:ff:ff:ff:ff"
ZERO_MAC = "00:00:00:00:00:00"
ARP_REQUEST = 1
ARP_REPLY = 2
TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10

Mac = str | bytes
Ip = str | bytes


def mac_bytes(mac: Mac) -> bytes:
    """'aa:bb:cc:dd:ee:ff' (or '-' separated, or 12 hex digits) → 6 bytes; bytes pass through."""
    if isinstance(mac, bytes):
        if len(mac) != 6:
            raise ValueError(f"MAC must be 6 bytes, got {len(mac)}")
        return mac
    raw = bytes.fromhex(mac.replace(":", "").replace("-", ""))
    if len(raw) != 6:
        raise ValueError(f"bad MAC {mac!r}")
    return raw


def mac_str(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def ip_bytes(ip: Ip) -> bytes:
    if isinstance(ip, bytes):
        if len(ip) != 4:
            raise ValueError(f"IPv4 address must be 4 bytes, got {len(ip)}")
        return ip
    try:
        if ip.count(".") == 3:
            return socket.inet_aton(ip)
    except OSError:
        pass
    raise ValueError(f"bad IPv4 address {ip!r}")


def ip_str(ip: bytes) -> str:
    return socket.inet_ntoa(ip)


def ones_sum(data: bytes, start: int = 0) -> int:
    """16-bit one's complement sum of `data` (odd length padded with a zero byte)."""
    if len(data) % 2:
        data += b"\x00"
    total = start + sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def ip_checksum(data: bytes) -> int:
    """Internet checksum (RFC 1071) of `data`; over a header whose checksum is correct it gives 0."""
    return ~ones_sum(data) & 0xFFFF


def _pseudo_header(src: Ip, dst: Ip, proto: int, length: int) -> bytes:
    return ip_bytes(src) + ip_bytes(dst) + struct.pack("!BBH", 0, proto, length)


def eth(dst: Mac, src: Mac, type: int, payload: bytes = b"", vlan: int | None = None) -> bytes:
    """An Ethernet II frame (optionally 802.1Q tagged with `vlan`)."""
    tag = struct.pack("!HH", ETH_VLAN, vlan & 0xFFF) if vlan is not None else b""
    return mac_bytes(dst) + mac_bytes(src) + tag + struct.pack("!H", type) + payload


def arp(op: int, sha: Mac, spa: Ip, tha: Mac, tpa: Ip) -> bytes:
    """The 28-byte ARP payload for Ethernet/IPv4."""
    return (struct.pack("!HHBBH", 1, ETH_IP, 6, 4, op) + mac_bytes(sha) + ip_bytes(spa)
            + mac_bytes(tha) + ip_bytes(tpa))


def arp_request(sha: Mac, spa: Ip, tpa: Ip, tha: Mac = ZERO_MAC, dst: Mac = BROADCAST) -> bytes:
    """A broadcast who-has frame (0.3's suite used tha=ff:ff:ff:ff:ff:ff; pass it if a test needs it)."""
    return eth(dst, sha, ETH_ARP, arp(ARP_REQUEST, sha, spa, tha, tpa))


def arp_reply(sha: Mac, spa: Ip, tha: Mac, tpa: Ip) -> bytes:
    """An is-at frame from `sha` to `tha`: `spa` is at `sha`."""
    return eth(tha, sha, ETH_ARP, arp(ARP_REPLY, sha, spa, tha, tpa))


def ipv4(src: Ip, dst: Ip, proto: int, payload: bytes = b"", ttl: int = 64, ident: int = 0,
         csum: int | None = None, tos: int = 0, frag: int = 0) -> bytes:
    """An IPv4 packet with a 20-byte header; `csum` None → computed, else used verbatim.

    `frag` is the 16-bit flags+offset field (0x4000 = don't fragment).
    """
    header = struct.pack("!BBHHHBBH4s4s", 0x45, tos, 20 + len(payload), ident, frag, ttl, proto, 0,
                         ip_bytes(src), ip_bytes(dst))
    if csum is None:
        csum = ip_checksum(header)
    return header[:10] + struct.pack("!H", csum) + header[12:] + payload


def icmp_echo(ident: int, seq: int, payload: bytes = b"", type: int = 8, code: int = 0,
              csum: int | None = None) -> bytes:
    """An ICMP echo request (type 8) or reply (type 0) message."""
    body = struct.pack("!BBHHH", type, code, 0, ident, seq) + payload
    if csum is None:
        csum = ip_checksum(body)
    return body[:2] + struct.pack("!H", csum) + body[4:]


def udp(sport: int, dport: int, payload: bytes = b"", src: Ip | None = None, dst: Ip | None = None,
        csum: int | None = None) -> bytes:
    """A UDP datagram; the checksum needs `src`/`dst` and is 0 ("none", legal in IPv4) without them."""
    length = 8 + len(payload)
    body = struct.pack("!HHHH", sport, dport, length, 0) + payload
    if csum is None:
        if src is None or dst is None:
            csum = 0
        else:
            csum = ip_checksum(_pseudo_header(src, dst, PROTO_UDP, length) + body) or 0xFFFF
    return body[:6] + struct.pack("!H", csum) + body[8:]


def tcp(sport: int, dport: int, seq: int = 0, ack: int = 0, flags: int = TCP_SYN, window: int = 65535,
        payload: bytes = b"", src: Ip | None = None, dst: Ip | None = None, csum: int | None = None) -> bytes:
    """A TCP segment with a 20-byte header; checksum computed when `src`/`dst` are given, else 0."""
    body = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, window, 0, 0) + payload
    if csum is None:
        csum = 0 if src is None or dst is None else ip_checksum(
            _pseudo_header(src, dst, PROTO_TCP, len(body)) + body)
    return body[:16] + struct.pack("!H", csum) + body[18:]


PING_PAYLOAD = bytes(range(1, 57))


def icmp_frame(src_mac: Mac, dst_mac: Mac, src_ip: Ip, dst_ip: Ip, ttl: int = 64, type: int = 8,
               ident: int = 0x5FBF, seq: int = 1, payload: bytes = PING_PAYLOAD,
               ip_csum: int | None = None, icmp_csum: int | None = None, ip_ident: int = 0) -> bytes:
    """The 98-byte ping frame of 0.3's suite (id 0x5fbf, seq 1, 56 payload bytes 01..38)."""
    msg = icmp_echo(ident, seq, payload, type=type, csum=icmp_csum)
    return eth(dst_mac, src_mac, ETH_IP, ipv4(src_ip, dst_ip, PROTO_ICMP, msg, ttl, ip_ident, ip_csum))


def geneve(vni: int, inner: bytes, options: Sequence[tuple[int, int, bytes]] = (),
           proto: int = 0x6558) -> bytes:
    """A Geneve header (+ options as (class, type, data), data padded to 4 bytes) followed by `inner`."""
    opts = b""
    for cls, typ, data in options:
        data = data + b"\x00" * (-len(data) % 4)
        opts += struct.pack("!HBB", cls, typ, len(data) // 4) + data
    return struct.pack("!BBHI", len(opts) // 4, 0, proto, vni << 8) + opts + inner


@dataclass
class GeneveOption:
    cls: int
    type: int
    data: bytes


@dataclass
class Frame:
    """The decoded fields of one Ethernet frame; fields of absent layers stay None."""

    raw: bytes
    eth_dst: str = ""
    eth_src: str = ""
    eth_type: int = 0
    vlan: int | None = None
    arp_op: int | None = None
    arp_sha: str | None = None
    arp_spa: str | None = None
    arp_tha: str | None = None
    arp_tpa: str | None = None
    ip_src: str | None = None
    ip_dst: str | None = None
    ip_ttl: int | None = None
    ip_proto: int | None = None
    ip_checksum: int | None = None
    ip_ident: int | None = None
    ip_tos: int | None = None
    ip_header: bytes = b""
    l4: bytes = b""  # the IP payload (ICMP/UDP/TCP header + data)
    icmp_type: int | None = None
    icmp_code: int | None = None
    icmp_checksum: int | None = None
    icmp_id: int | None = None
    icmp_seq: int | None = None
    sport: int | None = None
    dport: int | None = None
    tcp_flags: int | None = None
    l4_checksum: int | None = None
    payload: bytes = b""  # data after the L4 header (or after ARP / unknown ethertype)
    geneve_vni: int | None = None
    geneve_options: list[GeneveOption] = field(default_factory=list)

    @classmethod
    def parse(cls, data: bytes | str) -> Frame:
        raw = bytes.fromhex(data) if isinstance(data, str) else bytes(data)
        if len(raw) < 14:
            raise ValueError(f"frame too short ({len(raw)} bytes)")
        f = cls(raw, eth_dst=mac_str(raw[0:6]), eth_src=mac_str(raw[6:12]))
        (f.eth_type,) = struct.unpack_from("!H", raw, 12)
        pos = 14
        if f.eth_type == ETH_VLAN and len(raw) >= 18:
            tci, f.eth_type = struct.unpack_from("!HH", raw, 14)
            f.vlan, pos = tci & 0xFFF, 18
        body = raw[pos:]
        if f.eth_type == ETH_ARP and len(body) >= 28:
            f.arp_op = struct.unpack_from("!H", body, 6)[0]
            f.arp_sha, f.arp_spa = mac_str(body[8:14]), ip_str(body[14:18])
            f.arp_tha, f.arp_tpa = mac_str(body[18:24]), ip_str(body[24:28])
            f.payload = body[28:]
        elif f.eth_type == ETH_IP and len(body) >= 20:
            f._parse_ip(body)
        else:
            f.payload = body
        return f

    def _parse_ip(self, body: bytes) -> None:
        ihl = (body[0] & 0x0F) * 4
        (self.ip_tos, total, self.ip_ident, _, self.ip_ttl, self.ip_proto,
         self.ip_checksum) = struct.unpack_from("!xBHHHBBH", body)
        self.ip_src, self.ip_dst = ip_str(body[12:16]), ip_str(body[16:20])
        self.ip_header = body[:ihl]
        self.l4 = body[ihl:max(total, ihl)]
        l4 = self.l4
        if self.ip_proto == PROTO_ICMP and len(l4) >= 8:
            self.icmp_type, self.icmp_code, self.icmp_checksum, self.icmp_id, self.icmp_seq = \
                struct.unpack_from("!BBHHH", l4)
            self.payload = l4[8:]
        elif self.ip_proto == PROTO_UDP and len(l4) >= 8:
            self.sport, self.dport, _, self.l4_checksum = struct.unpack_from("!HHHH", l4)
            self.payload = l4[8:]
            if self.dport == GENEVE_PORT:
                self._parse_geneve(self.payload)
        elif self.ip_proto == PROTO_TCP and len(l4) >= 20:
            self.sport, self.dport = struct.unpack_from("!HH", l4)
            self.tcp_flags, self.l4_checksum = l4[13], struct.unpack_from("!H", l4, 16)[0]
            self.payload = l4[(l4[12] >> 4) * 4:]
        else:
            self.payload = l4

    def _parse_geneve(self, data: bytes) -> None:
        if len(data) < 8:
            return
        opt_len = (data[0] & 0x3F) * 4
        self.geneve_vni = struct.unpack_from("!I", data, 4)[0] >> 8
        pos, end = 8, min(8 + opt_len, len(data))
        while pos + 4 <= end:
            ocls, otype, olen = struct.unpack_from("!HBB", data, pos)
            n = (olen & 0x1F) * 4
            self.geneve_options.append(GeneveOption(ocls, otype, data[pos + 4:pos + 4 + n]))
            pos += 4 + n

    @property
    def geneve_inner(self) -> Frame | None:
        """The encapsulated frame of a Geneve packet."""
        if self.geneve_vni is None:
            return None
        return Frame.parse(self.payload[8 + (self.payload[0] & 0x3F) * 4:])

    def checksum_ok(self) -> bool:
        """True when the IPv4 header checksum and the ICMP/UDP/TCP checksum (if present) verify."""
        if self.ip_src is None:
            return True
        if ip_checksum(self.ip_header) != 0:
            return False
        proto = self.ip_proto
        if proto == PROTO_ICMP:
            return ip_checksum(self.l4) == 0
        if proto == PROTO_UDP and self.l4_checksum == 0:
            return True
        if proto in (PROTO_UDP, PROTO_TCP) and self.ip_src and self.ip_dst:
            assert proto is not None
            pseudo = _pseudo_header(self.ip_src, self.ip_dst, proto, len(self.l4))
            return ip_checksum(pseudo + self.l4) == 0
        return True

    def hex(self) -> str:
        return self.raw.hex()


def parse(data: bytes | str) -> Frame:
    return Frame.parse(data)
