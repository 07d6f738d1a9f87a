"""Health-check probe packets: the agent speaks just enough TCP, from the monitor address, to tell whether a
load-balancer backend accepts connections (SYN → SYN-ACK) or answers an HTTP GET with 2xx/3xx.

Pure functions over bytes, so they can be fuzzed: whatever a VM sends back, parsing returns a segment or
None, never raises. Generated packets are new, so their checksums are computed here.
"""

from __future__ import annotations

import struct
from functools import lru_cache
from typing import NamedTuple

from .pinctrl import checksum

# The address probes come from. Link-local, so it never collides with a tenant's subnet: a backend reaches
# it through its default gateway (any router port of its switch) or an on-link 169.254.0.0/16 route; the
# switch answers ARP for it with MONITOR_MAC (pipeline/lbhealth.py) and hands replies to the agent.
MONITOR_IP = "169.254.169.253"
MONITOR_MAC = "0a:00:00:4c:42:fd"
# Probe source ports: above Linux's ephemeral range (32768-60999), so a guest's own connections to the
# monitor address (there should be none) are unlikely to look like probe replies.
PORT_BASE = 61000
PORT_COUNT = 4000
MSS = 1360

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

_ETH = struct.Struct("!6s6sH")
_IP = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIBBHHH")


@lru_cache(maxsize=8192)
def mac_bytes(mac: str) -> bytes:
    return bytes(int(x, 16) for x in mac.split(":"))


@lru_cache(maxsize=8192)
def ip_bytes(ip: str) -> bytes:
    return bytes(int(x) for x in ip.split("."))


class Segment(NamedTuple):
    """A TCP segment of a probe's conversation, as the agent sees it."""

    src_ip: str
    dst_ip: str
    src_port: int
    dst_port: int
    seq: int
    ack: int
    flags: int
    payload: bytes


def tcp_frame(src_mac: str, dst_mac: str, src: Segment) -> bytes:
    """An Ethernet/IPv4/TCP frame for `src` (a SYN carries an MSS option)."""
    opts = struct.pack("!BBH", 2, 4, MSS) if src.flags & SYN else b""
    off = (20 + len(opts)) // 4
    sip, dip = ip_bytes(src.src_ip), ip_bytes(src.dst_ip)
    tcp = _TCP.pack(src.src_port, src.dst_port, src.seq & 0xFFFFFFFF, src.ack & 0xFFFFFFFF, off << 4,
                    src.flags, 65535, 0, 0) + opts + src.payload
    pseudo = sip + dip + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ip = _IP.pack(0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, sip, dip)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return _ETH.pack(mac_bytes(dst_mac), mac_bytes(src_mac), 0x0800) + ip + tcp


def parse(frame: bytes) -> Segment | None:
    """The TCP segment in an Ethernet/IPv4 frame, or None for anything else (short, fragmented, not TCP)."""
    if len(frame) < 14 + 20 + 20:
        return None
    _dst, _src, ethertype = _ETH.unpack_from(frame)
    if ethertype != 0x0800:
        return None
    vihl, _tos, total, _id, frag, _ttl, proto, _sum, sip, dip = _IP.unpack_from(frame, 14)
    ihl = (vihl & 0x0F) * 4
    if vihl >> 4 != 4 or ihl < 20 or proto != 6 or frag & 0x3FFF:  # fragments never carry a whole answer
        return None
    end = min(len(frame), 14 + total) if total >= ihl else len(frame)
    t = 14 + ihl
    if end - t < 20:
        return None
    sport, dport, seq, ack, off, flags, _win, _sum2, _urg = _TCP.unpack_from(frame, t)
    doff = (off >> 4) * 4
    if doff < 20 or t + doff > end:
        return None
    return Segment(".".join(map(str, sip)), ".".join(map(str, dip)), sport, dport, seq, ack, flags,
                   bytes(frame[t + doff:end]))


def http_request(path: str, host: str) -> bytes:
    """The GET the HTTP check sends (one segment; `Connection: close`)."""
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: tuplenet-health\r\n"
            "Connection: close\r\n\r\n").encode("ascii", "replace")


def http_status(head: bytes) -> int | None:
    """The status code of a response's first line once it is complete; -1 if it is not HTTP; None while
    the line is still incomplete."""
    line, sep, _ = head.partition(b"\r\n")
    if not sep:
        line, sep, _ = head.partition(b"\n")
    if not sep:
        return -1 if len(head) > 1024 else None
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit() or len(parts[1]) != 3:
        return -1
    return int(parts[1])
