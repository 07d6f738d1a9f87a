"""Fuzz (issue 7 §7): OpenFlow bytes from the switch into the reader, and packet-ins into pinctrl.

The reader's contract: for any bytes, handling raises nothing but ValueError (a broken stream, which
reconnects); undecodable messages are counted. pinctrl's: any packet-in is handled without an internal
error, and any reply it sends is an encodable packet-out carrying a well-formed IPv4 header.
"""

from __future__ import annotations

import random
import struct
import threading
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openflow_fake import FakeSwitch

from fuzz_settings import fuzz
from tuplenet.agent import tables as T
from tuplenet.agent.flow import Flow, Output, match
from tuplenet.agent.openflow import OpenFlowConnection, OpenFlowError, oxm
from tuplenet.agent.openflow import codec as c
from tuplenet.agent.openflow import meters as mt
from tuplenet.agent.openflow.conn import _Bundle
from tuplenet.agent.openflow.transport import _Pending
from tuplenet.agent.pinctrl import PacketIns
from tuplenet.agent.view import View
from tuplenet.model import LR, LRP
from tuplenet.sandbox import packets as P
from tuplenet.sandbox.ovsd import poll

TTL = T.OP_TTL_EXCEEDED.to_bytes(4, "big")
FRAME = P.icmp_frame("f2:00:00:00:00:01", "f2:00:00:00:01:01", "10.0.1.2", "10.0.2.2", ttl=1)


def _prop(ptype: int, payload: bytes) -> bytes:
    return c._encode_prop(ptype, payload)


def _packet_in2(xid: int = 0) -> bytes:
    md = oxm.encode_match(match(metadata=3, reg0=0x0101))[4:]  # bare OXM entries
    props = (_prop(c.NXPINT_PACKET, FRAME) + _prop(c.NXPINT_FULL_LEN, struct.pack("!I", len(FRAME)))
             + _prop(c.NXPINT_TABLE_ID, b"\x20") + _prop(c.NXPINT_COOKIE, b"\0" * 4 + b"\x74\x70" + b"\1" * 6)
             + _prop(c.NXPINT_REASON, b"\x01") + _prop(c.NXPINT_METADATA, md) + _prop(c.NXPINT_USERDATA, TTL)
             + _prop(c.NXPINT_CONTINUATION, b"\x00" * 16))
    return c.nx_msg(c.NXT_PACKET_IN2, props, xid)


def _flow_stats_reply(xid: int) -> bytes:
    entry = c.flow_add(Flow(5, 10, match(reg0=1), (Output(2),)))[8:]  # reuse a flow_mod body's match/ins
    body = struct.pack("!HBxIIHHHHH2xQQQ", 48 + len(entry) - 40, 5, 0, 0, 10, 0, 0, 0, 0, 0x7470 << 48, 1, 2)
    return c.msg(c.OFPT_MULTIPART_REPLY, struct.pack("!HH4x", c.OFPMP_FLOW, 0) + body + entry[40:], xid)


def _meter_config_reply(xid: int) -> bytes:
    mod = mt.meter_mod(mt.OFPMC_ADD, mt.MeterSpec(mt.meter_id(1), 50, 50))
    entry = struct.pack("!HHI", 8 + 16, mt.OFPMF_PKTPS | mt.OFPMF_BURST | mt.OFPMF_STATS, mt.meter_id(1)) + mod[16:]
    return c.msg(c.OFPT_MULTIPART_REPLY, struct.pack("!HH4x", mt.OFPMP_METER_CONFIG, 0) + entry, xid)


# What a switch legitimately sends us: the seeds the mutations start from.
VALID = [
    c.echo_request(b"ping", 9), c.msg(c.OFPT_ECHO_REPLY, b"", 4), c.msg(c.OFPT_BARRIER_REPLY, b"", 3),
    c.msg(c.OFPT_ERROR, struct.pack("!HH", 5, 1) + c.barrier(3), 3),
    c.msg(c.OFPT_ERROR, struct.pack("!HHI", 0xFFFF, 20, 0x2320), 11),
    bytes.fromhex("05 01 00 0c 00 00 12 34 ff ff 00 00"),
    c.bundle_control(1, c.OFPBCT_COMMIT_REPLY, xid=3), _packet_in2(), _flow_stats_reply(1), _meter_config_reply(2),
    c.nx_msg(c.NXT_TLV_TABLE_REPLY, struct.pack("!IH2x", 256, 64) + b"\xff\xee\x00\x08\x00\x00\x00\x00", 3),
    c.msg(c.OFPT_PORT_STATUS, b"\x00" * 72, 0), c.hello(),
    c.msg(c.OFPT_PORT_STATUS, struct.pack("!B7xIH2x6s2x16sII", 0, 5, 48, b"\0" * 6, b"tap5", 0, 0), 0),
]


@dataclass
class Feeder:
    """A connection that is never started: bytes go straight into its message handling."""

    conn: OpenFlowConnection = field(default_factory=lambda: OpenFlowConnection("/nonexistent"))
    pins: list = field(default_factory=list)
    ports: list = field(default_factory=list)  # what reached the port-status callback (checked by the tests)

    def __post_init__(self) -> None:
        self.conn.on_port_status = lambda *status: self.ports.append(status)

    def check_ports(self) -> None:
        """Whatever the switch sends, the callback only ever hears of a usable (reason, number, name)."""
        for reason, port_no, name in self.ports:
            assert reason in (0, 1, 2) and 1 <= port_no <= 0xFEFF, (reason, port_no)
            assert isinstance(name, str) and 1 <= len(name) <= 14 and name.isascii() and "\0" not in name
        self.ports.clear()

    def feed(self, data: bytes, bundle: bool) -> None:
        conn = self.conn
        conn._pending = {1: _Pending(sink=lambda b: list(c.iter_flow_stats(b))),
                         2: _Pending(sink=lambda b: list(mt.iter_meter_configs(b))), 3: _Pending()}
        conn._bundle = _Bundle(10, 4) if bundle else None
        buf = bytearray(data)
        try:
            while buf and conn._consume(buf):
                pass
        except ValueError:
            pass  # a broken stream: the documented outcome (the session reconnects)
        self.pins.extend(conn._dispatch._pins)
        conn._dispatch._pins.clear()
        del self.pins[:-50]


FEEDER = Feeder()


# Few hypothesis draws per case (bytes, or a seed for the mutations): 10,000 cases stay within seconds.

@pytest.mark.fuzz
@fuzz
@given(st.binary(max_size=200))
def test_random_bytes_into_the_reader(data: bytes) -> None:
    FEEDER.feed(data, bundle=len(data) % 2 == 1)
    assert len(FEEDER.conn.async_errors) <= 65  # bounded, whatever the switch invents
    FEEDER.check_ports()


def mutate(rng: random.Random) -> bytes:
    """One to three valid messages, a few bytes overwritten, maybe truncated."""
    buf = bytearray(b"".join(rng.choice(VALID) for _ in range(rng.randint(1, 3))))
    for _ in range(rng.randint(0, 4)):
        buf[rng.randrange(len(buf))] = rng.randrange(256)
    if rng.random() < 0.3:
        del buf[rng.randint(0, len(buf)):]
    return bytes(buf)


@pytest.mark.fuzz
@fuzz
@given(st.integers(0, 2**64))
def test_mutated_valid_messages_into_the_reader(seed: int) -> None:
    rng = random.Random(seed)
    FEEDER.feed(mutate(rng), bundle=rng.random() < 0.5)
    FEEDER.check_ports()


def _view() -> View:
    v, changed = View(), set()
    v.apply(("LR", "r1"), LR("r1", 3), changed)
    v.apply(("lrp", "r1", "r1_to_a"), LRP("r1", "r1_to_a", "10.0.1.1", 24, "f2:00:00:00:01:01"), changed)
    return v


class EncodingConn:
    """packet_out encodes exactly as the real connection does, and checks the reply's IPv4 header."""

    stats: dict = {}

    def __init__(self) -> None:
        self.sent = 0

    def packet_out(self, data: bytes, actions: tuple) -> None:
        c.packet_out(data, actions, xid=1)
        ihl = (data[14] & 0x0F) * 4
        assert data[12:14] == b"\x08\x00" and ihl == 20 and P.ip_checksum(data[14:34]) == 0
        self.sent += 1


@dataclass
class Pin:
    data: bytes
    userdata: bytes
    metadata: dict


PINS = PacketIns(EncodingConn(), _view(), source_rate=1e12, source_burst=1e12, total_rate=1e12)


def ipv4_frame(rng: random.Random, tail: bytes) -> bytes:
    """Frames that pass the Ethernet check: IPv4 ethertype, then a mutated real header or any bytes."""
    head = rng.choice([FRAME[:14], b"\xff" * 12 + b"\x08\x00"])
    ip = bytearray(rng.choice([FRAME[14:], b""]) + tail)
    for _ in range(rng.randint(0, 3)):
        if ip:
            ip[rng.randrange(len(ip))] = rng.randrange(256)
    return head + bytes(ip[:rng.randint(0, len(ip))])


@pytest.mark.fuzz
@fuzz
@given(st.integers(0, 2**64))
def test_packet_ins_into_pinctrl(seed: int) -> None:
    rng = random.Random(seed)
    raw = rng.randbytes(rng.randint(0, 120))
    data = ipv4_frame(rng, raw) if rng.random() < 0.7 else raw
    userdata = TTL if rng.random() < 0.7 else raw[:rng.randint(0, 12)]
    metadata = {}
    if rng.random() < 0.9:
        metadata["metadata"] = 3 if rng.random() < 0.8 else rng.getrandbits(rng.choice([8, 64, 80]))
    if rng.random() < 0.9:
        metadata["reg0"] = 0x0101 if rng.random() < 0.8 else rng.getrandbits(rng.choice([16, 32, 40]))
    PINS.handle(Pin(data, userdata, metadata))
    assert PINS.stats.errors == 0


def test_reader_survives_a_long_hostile_session(tmp_path) -> None:
    """Through a real socket: thousands of mutated messages; the reader lives, reconnects when the stream
    breaks, and the session answers a barrier at the end."""
    path = str(tmp_path / "br-int.mgmt")
    sw = FakeSwitch(path)
    conn = OpenFlowConnection(path)
    conn.stall_timeout = 0.2
    conn.start(timeout=5)
    rng = random.Random(7)
    try:
        for _ in range(3000):
            msg = bytearray(rng.choice(VALID))
            for _ in range(rng.randrange(3)):
                msg[rng.randrange(len(msg))] = rng.randrange(256)
            try:
                sw.send(bytes(msg))
            except (OSError, IndexError):
                poll(lambda: conn.connected and sw.clients, 5, "reconnect")

        def answers() -> bool:
            try:
                conn.barrier(timeout=1)
                return True
            except OpenFlowError:  # the last mutated message may still be breaking a session
                return False

        poll(answers, 10, "a barrier answered after the hostile session")
        assert any(t.name == "of-reader" and t.is_alive() for t in threading.enumerate())
    finally:
        conn.close()
        sw.close()
