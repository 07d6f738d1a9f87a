"""Packet-in handlers: packets the pipeline hands to the agent (ICMP time exceeded for now).

Generated packets are new, so computing their checksums here is right; forwarded packets are never
touched (OVS updates their checksums incrementally).
"""

from __future__ import annotations

import logging
import struct
import time
from typing import Any

from . import tables as T
from .flow import Load, Resubmit, SetField, ip_int
from .view import View

log = logging.getLogger(__name__)


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def icmp_time_exceeded(frame: bytes, router_ip: str) -> bytes | None:
    """Ethernet frame carrying ICMP type 11 code 0 from `router_ip` back to the sender of `frame`."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        return None
    ip = frame[14:]
    ihl = (ip[0] & 0x0F) * 4
    if ip[0] >> 4 != 4 or len(ip) < ihl:
        return None
    if ip[9] == 1 and len(ip) > ihl and ip[ihl] not in (0, 8, 13, 15, 17):
        return None  # never answer an ICMP error with an error
    quoted = ip[: ihl + 8]
    icmp = struct.pack("!BBHI", 11, 0, 0, 0) + quoted
    icmp = icmp[:2] + struct.pack("!H", checksum(icmp)) + icmp[4:]
    src = bytes(int(x) for x in router_ip.split("."))
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 0, 0, 255, 1, 0, src, ip[12:16])
    hdr = hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:]
    return frame[0:6] + frame[6:12] + b"\x08\x00" + hdr + icmp


def router_port_ip(view: View, lr_id: int, port_id: int) -> str | None:
    for lr_key in view.members(("I", "dp_id", lr_id)):
        if lr_key[0] != "LR":
            continue
        for lrp_key in view.members(("I", "lr_lrps", lr_key[1])):
            lrp = view.facts[lrp_key]
            if ip_int(lrp.ip) & 0xFFFF == port_id:
                return lrp.ip
    return None


class PacketIns:
    """Turns packet-ins into packet-outs; rate-limited so a flood cannot starve the agent."""

    def __init__(self, conn, view: View, rate: float = 200.0) -> None:
        self.conn = conn
        self.view = view
        self.rate = rate
        self._tokens = rate
        self._last = time.monotonic()
        self.handled = 0
        self.dropped = 0

    def _allow(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self.rate, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def handle(self, pin: Any) -> None:
        if not self._allow():
            self.dropped += 1
            return
        userdata = bytes(getattr(pin, "userdata", b"") or b"")
        if len(userdata) < 4:
            return
        op = int.from_bytes(userdata[:4], "big")
        if op == T.OP_TTL_EXCEEDED:
            self._ttl_exceeded(pin)
        self.handled += 1

    def _ttl_exceeded(self, pin: Any) -> None:
        md = pin.metadata
        lr_id, port = md.get("metadata", 0), md.get(T.R_SRC_PORT, 0)
        ip = router_port_ip(self.view, lr_id, port)
        if ip is None:
            return
        reply = icmp_time_exceeded(bytes(pin.data), ip)
        if reply is None:
            return
        actions = (SetField("metadata", lr_id), Load(T.R_SRC_PORT, port), Load(T.R_FLAGS, T.F_LOOPBACK),
                   Resubmit(T.LR_IN_TTL))
        self.conn.packet_out(reply, actions)
