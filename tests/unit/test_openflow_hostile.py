"""The connection against a hostile or broken switch (issue 7 §2): nothing the switch sends may kill the
reader, a broken stream reconnects, a hung switch makes sends time out instead of deadlocking the agent,
and `connected` always tells the truth."""

from __future__ import annotations

import struct
import threading

import pytest
from openflow_fake import FakeSwitch

from tuplenet.agent.flow import Output
from tuplenet.agent.openflow import OpenFlowConnection, OpenFlowDisconnected, OpenFlowError, OpenFlowTimeout
from tuplenet.agent.openflow import codec as c
from tuplenet.sandbox.ovsd import poll

UNKNOWN_ERROR_TYPE = bytes.fromhex("05 01 00 0c 00 00 12 34 ff ff 00 00")


@pytest.fixture
def path(tmp_path) -> str:
    return str(tmp_path / "br-int.mgmt")


class Connects:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> None:
        self.n += 1


def _reader_alive(conn: OpenFlowConnection) -> bool:
    return any(t.name == "of-reader" and t.is_alive() for t in threading.enumerate())


def test_error_of_unknown_type_is_counted_and_the_reader_lives(path: str) -> None:
    sw = FakeSwitch(path)
    with OpenFlowConnection(path).start(timeout=5) as conn:
        sw.send(UNKNOWN_ERROR_TYPE)
        conn.barrier(timeout=2)  # answered: the reader survived the message
        assert conn.connected and _reader_alive(conn)
        assert conn.stats["async_errors"] + conn.stats["bad_messages"] == 1
    sw.close()


def test_undecodable_messages_of_every_kind_are_counted_once_each(path: str) -> None:
    sw = FakeSwitch(path)
    with OpenFlowConnection(path).start(timeout=5) as conn:
        for _ in range(3):
            sw.send(c.msg(c.OFPT_ERROR, b"\x00", 7))  # too short to hold type and code: still an error
            sw.send(c.msg(c.OFPT_EXPERIMENTER, b"\x00\x00", 8))  # no vendor/subtype
            sw.send(c.nx_msg(c.NXT_PACKET_IN2, struct.pack("!HH", c.NXPINT_PACKET, 2)))  # property too short
        conn.barrier(timeout=2)
        assert conn.connected and conn.stats["connects"] == 1
        assert conn.decode_errors == {"type 4: struct.error": 3, "type 4: ValueError": 3}
        assert conn.async_errors == {"OFPHFC_INCOMPATIBLE": 3}


def test_malformed_hello_is_retried_with_backoff_not_fatal(path: str) -> None:
    bad = [bytes.fromhex("05 00 00 04 00 00 00 00"),  # length 4 < header
           bytes.fromhex("05 00 00 0c 00 00 00 00 00 01 00")]  # a hello element cut short, then EOF-less
    sw = FakeSwitch(path, hellos=[bad[0], bad[1][:11]])
    connects = Connects()
    conn = OpenFlowConnection(path, on_connect=connects)
    conn.handshake_timeout = 0.5
    try:
        conn.start(timeout=8)
        poll(lambda: connects.n == 1, 5, "on_connect after the bad hellos")
        conn.barrier(timeout=2)
        assert sw.accepted == 3 and _reader_alive(conn)
    finally:
        conn.close()
        sw.close()


@pytest.mark.parametrize("junk", [
    pytest.param(b"\x05\x0a\x00", id="truncated-header"),
    pytest.param(struct.pack("!BBHI", 5, c.OFPT_PACKET_IN, 0xFFFF, 0) + b"x" * 100, id="huge-length"),
    pytest.param(b"\xff" * 64, id="garbage"),
    pytest.param(struct.pack("!BBHI", 5, c.OFPT_ECHO_REPLY, 4, 0), id="length-below-header"),
])
def test_broken_stream_resets_fails_waiters_and_reconnects(path: str, junk: bytes) -> None:
    hold = threading.Event()
    sw = FakeSwitch(path, script=lambda t, x, b: b"" if hold.is_set() and t == c.OFPT_BARRIER_REQUEST else None)
    connects = Connects()
    conn = OpenFlowConnection(path, on_connect=connects)
    conn.stall_timeout = 0.5
    conn.start(timeout=5)
    try:
        poll(lambda: connects.n == 1, 5, "first on_connect")
        hold.set()
        errors: list[Exception] = []

        def waiter() -> None:
            try:
                conn.barrier(timeout=20)
            except OpenFlowError as exc:
                errors.append(exc)

        t = threading.Thread(target=waiter)
        t.start()
        sw.expect(c.OFPT_BARRIER_REQUEST)
        sw.send(junk)
        t.join(5)
        assert not t.is_alive(), "the pending barrier was not failed"
        assert len(errors) == 1 and isinstance(errors[0], OpenFlowDisconnected), errors
        hold.clear()
        poll(lambda: connects.n == 2 and conn.connected, 5, "reconnect after a broken stream")
        conn.barrier(timeout=2)
        assert _reader_alive(conn)
    finally:
        conn.close()
        sw.close()


def test_hung_switch_send_times_out_then_reconnects(path: str) -> None:
    sw = FakeSwitch(path)
    connects = Connects()
    conn = OpenFlowConnection(path, on_connect=connects)
    conn.send_timeout = 0.5
    conn.start(timeout=5)
    try:
        poll(lambda: connects.n == 1, 5, "first on_connect")
        sw.hang.set()
        outcome: list[Exception] = []

        def flood() -> None:
            frame = b"\x00" * 60000
            try:
                for _ in range(2000):  # ~120 MB: far beyond any socket buffer
                    conn.packet_out(frame, (Output(1),))
            except OpenFlowError as exc:
                outcome.append(exc)

        t = threading.Thread(target=flood, daemon=True)
        t.start()
        t.join(10)
        assert not t.is_alive(), "send blocked on a hung switch (no timeout)"
        assert outcome and isinstance(outcome[0], OpenFlowTimeout | OpenFlowDisconnected), outcome
        sw.hang.clear()
        poll(lambda: connects.n >= 2 and conn.connected, 5, "reconnect after the send timeout")
        conn.barrier(timeout=2)
    finally:
        conn.close()
        sw.close()


def test_switch_that_never_answers_a_request_is_dropped_and_reconnected(path: str) -> None:
    mute = threading.Event()
    sw = FakeSwitch(path, script=lambda t, x, b: b"" if mute.is_set() and t == c.OFPT_BARRIER_REQUEST else None)
    connects = Connects()
    conn = OpenFlowConnection(path, on_connect=connects).start(timeout=5)
    try:
        poll(lambda: connects.n == 1, 5, "first on_connect")
        mute.set()
        with pytest.raises(OpenFlowTimeout):
            conn.barrier(timeout=0.3)
        mute.clear()
        poll(lambda: connects.n == 2 and conn.connected, 5, "reconnect after an unanswered request")
    finally:
        conn.close()
        sw.close()
