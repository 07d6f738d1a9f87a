"""ACL `reject`: the agent answers a rejected packet (docs/acl.md).

The pipeline hands the rejected packet to the agent (acl_reject stage, behind a meter; pinctrl limits each
source again). The answer goes back to the sender as if from the destination: a TCP RST for TCP, an ICMP
port unreachable for everything else (never for an ICMP error). It is injected into the sender's switch
at the destination lookup, flagged F_ACL_SKIP so egress ACLs (and conntrack, which would call a RST
without a connection invalid) let it through. Generated packets are new: their checksums are computed.
"""

from __future__ import annotations

import struct
from typing import Any

from . import tables as T
from .flow import Load, Resubmit, SetField
from .pinctrl import checksum

TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10
_ICMP_QUERIES = (0, 8, 13, 15, 17)  # echo reply/request, timestamp, info: never answer an ICMP error


def _ip_header(src: bytes, dst: bytes, proto: int, payload_len: int) -> bytes:
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + payload_len, 0, 0x4000, 64, proto, 0, src, dst)
    return hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:]


def tcp_reset(frame: bytes) -> bytes | None:
    """The RST a closed port would send (RFC 793): seq = their ack if they sent one, else ack their data."""
    ip = _ipv4(frame)
    if ip is None or ip[9] != 6:
        return None
    ihl = (ip[0] & 0x0F) * 4
    total = min(len(ip), struct.unpack_from("!H", ip, 2)[0])
    seg = ip[ihl:total]
    if len(seg) < 20:
        return None
    sport, dport, seq, ack = struct.unpack_from("!HHII", seg)
    flags = seg[13]
    if flags & TCP_RST:
        return None  # never answer a reset
    if flags & TCP_ACK:
        rseq, rack, rflags = ack, 0, TCP_RST
    else:
        data = len(seg) - (seg[12] >> 4) * 4
        rseq, rack = 0, (seq + data + bool(flags & TCP_SYN) + bool(flags & TCP_FIN)) & 0xFFFFFFFF
        rflags = TCP_RST | TCP_ACK
    src, dst = ip[16:20], ip[12:16]
    tcp = struct.pack("!HHIIBBHHH", dport, sport, rseq, rack, 5 << 4, rflags, 0, 0, 0)
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    return _eth_back(frame) + _ip_header(src, dst, 6, len(tcp)) + tcp


def icmp_port_unreachable(frame: bytes) -> bytes | None:
    """ICMP type 3 code 3 quoting the rejected packet's header and first 8 payload bytes (RFC 792)."""
    ip = _ipv4(frame)
    if ip is None:
        return None
    ihl = (ip[0] & 0x0F) * 4
    if ip[9] == 1 and (len(ip) <= ihl or ip[ihl] not in _ICMP_QUERIES):
        return None
    icmp = struct.pack("!BBHI", 3, 3, 0, 0) + ip[: ihl + 8]
    icmp = icmp[:2] + struct.pack("!H", checksum(icmp)) + icmp[4:]
    return _eth_back(frame) + _ip_header(ip[16:20], ip[12:16], 1, len(icmp)) + icmp


def reject_reply(frame: bytes) -> bytes | None:
    ip = _ipv4(frame)
    if ip is None:
        return None
    return tcp_reset(frame) if ip[9] == 6 else icmp_port_unreachable(frame)


def _ipv4(frame: bytes) -> bytes | None:
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        return None
    ip = frame[14:]
    ihl = (ip[0] & 0x0F) * 4
    if ip[0] >> 4 != 4 or ihl < 20 or len(ip) < ihl:
        return None
    if struct.unpack_from("!H", ip, 6)[0] & 0x1FFF:
        return None  # a later fragment: no L4 header to answer
    return ip


def _eth_back(frame: bytes) -> bytes:
    return frame[6:12] + frame[0:6] + b"\x08\x00"


class AclReject:
    """The OP_ACL_REJECT packet-in handler (registered with pinctrl, which meters and counts it)."""

    OPCODE = T.OP_ACL_REJECT

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.replies = 0

    def handle(self, pin: Any) -> None:
        dp = pin.metadata.get("metadata", 0)
        reply = reject_reply(bytes(pin.data))
        if reply is None or not dp:
            return
        self.conn.packet_out(reply, (SetField("metadata", dp), Load(T.R_FLAGS, T.F_ACL_SKIP),
                                     Resubmit(T.LS_IN_LOOKUP)))
        self.replies += 1


__all__ = ["AclReject", "icmp_port_unreachable", "reject_reply", "tcp_reset"]
