"""pinctrl's flood defences without OVS: the bounded queue, the per-iteration budget, the per-source and
total rates, the counters, and that nothing in a packet-in escapes."""

from __future__ import annotations

from dataclasses import dataclass, field

from tuplenet.agent import tables as T
from tuplenet.agent.pinctrl import PacketIns, TokenBuckets, source_key
from tuplenet.agent.view import View
from tuplenet.sandbox import packets as P

TTL = T.OP_TTL_EXCEEDED.to_bytes(4, "big")


@dataclass
class Pin:
    data: bytes
    userdata: bytes = TTL
    metadata: dict = field(default_factory=dict)


class Conn:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.stats = {"packet_ins": 0, "packet_ins_dropped": 0}

    def packet_out(self, data: bytes, actions: tuple) -> None:
        self.sent.append(data)


def frame(src_ip: str) -> bytes:
    return P.icmp_frame("f2:00:00:00:00:01", "f2:00:00:00:00:02", src_ip, "10.0.9.9", ttl=1)


def test_queue_is_bounded_and_wakes_the_loop_once_per_batch() -> None:
    pins = PacketIns(Conn(), View(), queue_max=3)
    wakes = [pins.offer(Pin(frame("10.0.0.1"))) for _ in range(5)]
    assert wakes == [True, False, False, False, False]
    st = pins.status()
    assert (st["received"], st["queued"], st["dropped_queue"]) == (5, 3, 2)


def test_drain_handles_at_most_the_budget_and_says_when_more_wait() -> None:
    pins = PacketIns(Conn(), View(), budget=4)
    for _ in range(10):
        pins.offer(Pin(frame("10.0.0.1"), userdata=b"\0\0\0\x99"))
    assert pins.drain() is True and pins.status()["queued"] == 6
    assert pins.drain() is True and pins.drain() is False
    assert pins.status()["by_op"] == {"unknown": 10}
    assert pins.offer(Pin(frame("10.0.0.1"))) is True  # empty again: the next one wakes the loop


def test_one_flooding_source_does_not_use_up_another_sources_rate() -> None:
    pins = PacketIns(Conn(), View(), source_rate=5, source_burst=5, total_rate=1000)
    for _ in range(100):
        pins.handle(Pin(frame("10.0.0.1")))
    pins.handle(Pin(frame("10.0.0.2")))
    st = pins.status()
    assert st["dropped_source_rate"] == 95 and st["handled"] == 6  # 5 of the flooder's, 1 of the other's
    assert st["by_op"] == {"ttl_exceeded": 101}


def test_total_rate_caps_many_sources_together() -> None:
    pins = PacketIns(Conn(), View(), source_rate=100, source_burst=100, total_rate=10)
    for i in range(50):
        pins.handle(Pin(frame(f"10.0.1.{i}")))
    st = pins.status()
    assert st["handled"] == 10 and st["dropped_total_rate"] == 40


def test_token_buckets_refill_and_forget_the_oldest_keys() -> None:
    tb = TokenBuckets(rate=2, burst=2, max_keys=2)
    assert [tb.allow("a", 0.0) for _ in range(3)] == [True, True, False]
    assert tb.allow("a", 0.5) is True  # one token back after half a second
    tb.allow("b", 0.5)
    tb.allow("c", 0.5)  # "a" is forgotten: it starts again with a full bucket
    assert [tb.allow("a", 0.5) for _ in range(3)] == [True, True, False]


def test_source_key_is_the_ip_source_else_the_mac() -> None:
    assert source_key(frame("10.1.2.3")) == bytes([10, 1, 2, 3])
    arp = P.arp_request("f2:00:00:00:00:07", "10.0.0.7", "10.0.0.1")
    assert source_key(arp) == bytes.fromhex("f20000000007")
    assert source_key(b"") == b""


def test_handler_failures_are_counted_not_raised() -> None:
    class Broken:
        userdata = TTL
        data = None  # bytes(None) raises TypeError in the handler

    pins = PacketIns(Conn(), View())
    pins.handle(Broken())
    pins.handle(object())  # no attributes at all
    assert pins.status()["errors"] == 1 and pins.status()["by_op"] == {"no_opcode": 1, "ttl_exceeded": 1}


@dataclass
class PausedPin(Pin):
    continuation: bytes | None = b"cont"


class ResumingConn(Conn):
    def __init__(self) -> None:
        super().__init__()
        self.resumed: list = []

    def resume(self, pin, data=None) -> None:
        self.resumed.append(pin)


def test_opcode_registry_routes_to_the_handler_and_names_the_counters() -> None:
    pins = PacketIns(Conn(), View())
    seen: list = []
    pins.register(0x77, "probe", seen.append)
    p = Pin(frame("10.0.0.1"), userdata=(0x77).to_bytes(4, "big") + b"extra")
    pins.handle(p)
    assert seen == [p]
    assert pins.status()["by_op"] == {"probe": 1} and pins.status()["handled"] == 1
    assert pins.opcodes()[0x77] == "probe" and pins.opcodes()[T.OP_TTL_EXCEEDED] == "ttl_exceeded"
    try:
        pins.register(0x77, "other", lambda pin: None)
    except ValueError as exc:
        assert "0x77" in str(exc) and "probe" in str(exc)
    else:
        raise AssertionError("a second handler for one opcode must be refused")


def test_a_paused_packet_dropped_by_the_rate_limit_is_resumed_not_lost() -> None:
    conn = ResumingConn()
    pins = PacketIns(conn, View(), source_rate=1, source_burst=1)
    handled: list = []
    pins.register(0x78, "paused", handled.append)
    pins.register(0x79, "unlimited", handled.append, limited=False)
    a, b = (PausedPin(frame("10.0.0.1"), userdata=(0x78).to_bytes(4, "big")) for _ in range(2))
    pins.handle(a)
    pins.handle(b)
    assert handled == [a] and conn.resumed == [b]
    c = [PausedPin(frame("10.0.0.1"), userdata=(0x79).to_bytes(4, "big")) for _ in range(5)]
    for p in c:
        pins.handle(p)
    assert handled == [a, *c]  # an unlimited opcode (trace) is never rate-limited
