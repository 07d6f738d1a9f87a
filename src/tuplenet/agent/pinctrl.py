"""Packet-in handlers: packets the pipeline hands to the agent (ICMP time exceeded for now).

Generated packets are new, so computing their checksums here is right; forwarded packets are never
touched (OVS updates their checksums incrementally).
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
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


@dataclass
class PinStats:
    received: int = 0
    handled: int = 0
    replies: int = 0
    dropped_queue: int = 0  # the agent's queue was full
    dropped_source_rate: int = 0  # one source over its rate
    dropped_total_rate: int = 0  # all sources together over the total rate
    errors: int = 0
    by_op: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Op:
    """A registered opcode: its name (status counters), its handler, and whether the per-source and total
    rate limits apply (a trace packet, injected by an operator, is not a flood)."""

    name: str
    handler: Callable[[Any], None]
    limited: bool = True


class TokenBuckets:
    """Per-key token buckets (`rate` per second, up to `burst`), remembering at most `max_keys` keys (the
    least recently seen are forgotten: a forgotten key starts again with a full bucket)."""

    def __init__(self, rate: float, burst: float, max_keys: int = 4096) -> None:
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self._buckets: OrderedDict[object, tuple[float, float]] = OrderedDict()

    def allow(self, key: object, now: float) -> bool:
        tokens, last = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        ok = tokens >= 1
        self._buckets[key] = (tokens - 1 if ok else tokens, now)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return ok


def source_key(frame: bytes) -> bytes:
    """Who sent the frame: its IPv4 source address, else its source MAC (what the meters bucket by too)."""
    if len(frame) >= 34 and frame[12:14] == b"\x08\x00":
        return frame[26:30]
    return frame[6:12]


class PacketIns:
    """Turns packet-ins into packet-outs without letting a flood starve the agent.

    Defences, in order: the OpenFlow meters in front of every controller() (pipeline.const); a bounded
    queue between the OpenFlow dispatcher and the main loop (the newest are dropped when full); a budget
    of packet-ins per main-loop iteration (other events run in between); a per-source and a total rate.
    """

    def __init__(self, conn, view: View, queue_max: int = 1024, budget: int = 64, source_rate: float = 20.0,
                 source_burst: float = 20.0, total_rate: float = 1000.0,
                 meter_drops: Callable[[], int] | None = None) -> None:
        self.conn = conn
        self.view = view
        self.queue_max = queue_max
        self.budget = budget
        self.stats = PinStats()
        self._meter_drops = meter_drops
        self._queue: deque[Any] = deque()
        self._lock = threading.Lock()
        self._sources = TokenBuckets(source_rate, source_burst)
        self._total = TokenBuckets(total_rate, total_rate, 1)
        self._logged: set[str] = set()
        self._ops: dict[int, Op] = {}
        self.register(T.OP_TTL_EXCEEDED, "ttl_exceeded", self._ttl_exceeded)

    # ---------------------------------------------------------------- the opcode registry
    def register(self, op: int, name: str, handler: Callable[[Any], None], limited: bool = True) -> None:
        """Route packet-ins whose userdata starts with `op` (4 bytes, big endian; tables.OP_*) to `handler`,
        called on the main loop with the parsed packet-in (openflow.codec.PacketIn). A paused packet-in
        (controller(...,pause)) must be resumed by its handler (`self.conn.resume(pin)`); one dropped by the
        rate limits is resumed here, so the limits cost the agent's work, never the packet."""
        if op in self._ops and self._ops[op].handler != handler:
            raise ValueError(f"opcode {op:#x} is already registered ({self._ops[op].name})")
        self._ops[op] = Op(name, handler, limited)

    def opcodes(self) -> dict[int, str]:
        return {op: o.name for op, o in sorted(self._ops.items())}

    # ---------------------------------------------------------------- queue (any thread -> main loop)
    def offer(self, pin: Any) -> bool:
        """Queue a packet-in (from the OpenFlow dispatcher). True when the queue was empty, i.e. the
        main loop must be woken; later ones ride on that wake-up."""
        with self._lock:
            self.stats.received += 1
            if len(self._queue) >= self.queue_max:
                self.stats.dropped_queue += 1
                return False
            self._queue.append(pin)
            return len(self._queue) == 1

    def drain(self, budget: int | None = None) -> bool:
        """Handle up to `budget` queued packet-ins (main loop); True if more are waiting."""
        for _ in range(self.budget if budget is None else budget):
            with self._lock:
                if not self._queue:
                    return False
                pin = self._queue.popleft()
            self.handle(pin)
        with self._lock:
            return bool(self._queue)

    def status(self) -> dict[str, Any]:
        st = self.stats
        out: dict[str, Any] = {
            "received": st.received, "handled": st.handled, "replies": st.replies, "by_op": dict(st.by_op),
            "dropped_queue": st.dropped_queue, "dropped_source_rate": st.dropped_source_rate,
            "dropped_total_rate": st.dropped_total_rate, "errors": st.errors, "queued": len(self._queue)}
        cstats = getattr(self.conn, "stats", None)
        if isinstance(cstats, dict):
            out["openflow_received"] = cstats.get("packet_ins", 0)
            out["dropped_openflow_queue"] = cstats.get("packet_ins_dropped", 0)
        if self._meter_drops is not None:
            out["dropped_meter"] = self._meter_drops()
        return out

    # ---------------------------------------------------------------------------------- handling
    def handle(self, pin: Any) -> None:
        """One packet-in. Whatever it holds, nothing escapes: failures are counted and logged once per kind."""
        try:
            self._handle(pin)
        except Exception as exc:  # noqa: BLE001 - a packet must never stop the agent
            self.stats.errors += 1
            kind = f"{type(exc).__name__}"
            if kind not in self._logged:
                self._logged.add(kind)
                log.warning("packet-in handling failed (%s: %s); counting further ones silently", kind, exc)

    def _handle(self, pin: Any) -> None:
        userdata = bytes(getattr(pin, "userdata", b"") or b"")
        op = int.from_bytes(userdata[:4], "big") if len(userdata) >= 4 else None
        entry = self._ops.get(op) if op is not None else None
        name = entry.name if entry is not None else "unknown" if op is not None else "no_opcode"
        self.stats.by_op[name] = self.stats.by_op.get(name, 0) + 1
        if entry is None:
            return
        if entry.limited:
            now = time.monotonic()
            if not self._sources.allow(source_key(bytes(pin.data)), now):
                self.stats.dropped_source_rate += 1
                self._resume_dropped(pin)
                return
            if not self._total.allow(None, now):
                self.stats.dropped_total_rate += 1
                self._resume_dropped(pin)
                return
        entry.handler(pin)
        self.stats.handled += 1

    def _resume_dropped(self, pin: Any) -> None:
        if getattr(pin, "continuation", None) is not None:
            self.conn.resume(pin)

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
        self.stats.replies += 1
