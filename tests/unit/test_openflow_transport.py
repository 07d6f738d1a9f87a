"""The connection's session logic against a scripted fake switch (no OVS): negotiation, echo, xid
matching, callbacks on the dispatcher thread, disconnects and reconnects."""

from __future__ import annotations

import struct
import threading

import pytest
from openflow_fake import FakeSwitch

from tuplenet.agent.openflow import OpenFlowConnection, OpenFlowDisconnected, OpenFlowError, OpenFlowTimeout
from tuplenet.agent.openflow import codec as c
from tuplenet.sandbox.ovsd import poll


@pytest.fixture
def path(tmp_path) -> str:
    return str(tmp_path / "br-int.mgmt")


def test_handshake_sets_miss_send_len_and_packet_in2(path: str) -> None:
    sw = FakeSwitch(path)
    with OpenFlowConnection(path).start(timeout=5):
        _, body = sw.expect(c.OFPT_SET_CONFIG)
        assert body == struct.pack("!HH", 0, 0xFFFF)
        _, body = sw.expect(c.OFPT_EXPERIMENTER)
        assert body == struct.pack("!III", 0x2320, c.NXT_SET_PACKET_IN_FORMAT, c.NXPIF_NXT_PACKET_IN2)
    sw.close()


def test_switch_without_openflow14_is_refused(path: str) -> None:
    sw = FakeSwitch(path, versions=0x12)  # 1.0 and 1.3
    with pytest.raises(OpenFlowTimeout, match="does not offer OpenFlow 1.4"):
        OpenFlowConnection(path).start(timeout=0.5)
    sw.close()


def test_echo_is_answered_with_the_same_xid_and_data(path: str) -> None:
    sw = FakeSwitch(path)
    with OpenFlowConnection(path).start(timeout=5):
        sw.send(c.echo_request(b"ping", 0xABCD))
        xid, body = sw.expect(c.OFPT_ECHO_REPLY)
        assert (xid, body) == (0xABCD, b"ping")
    sw.close()


def test_replies_are_matched_by_xid_and_errors_raised(path: str) -> None:
    def script(mtype: int, xid: int, body: bytes) -> bytes | None:
        if mtype == c.OFPT_EXPERIMENTER and c.nx_subtype(body)[1] == c.NXT_TLV_TABLE_REQUEST:
            return c.msg(c.OFPT_ERROR, struct.pack("!HH", 1, 5), xid)  # OFPBRC_EPERM
        return None

    sw = FakeSwitch(path, script=script)
    with OpenFlowConnection(path).start(timeout=5) as conn:
        conn.barrier()
        with pytest.raises(OpenFlowError, match="OFPBRC_EPERM") as exc:
            conn.tlv_mappings()
        assert exc.value.errors[0].name == "OFPBRC_EPERM"
    sw.close()


def test_request_without_reply_times_out(path: str) -> None:
    sw = FakeSwitch(path)
    with OpenFlowConnection(path).start(timeout=5) as conn:
        sw.script = lambda t, x, b: b"" if t == c.OFPT_BARRIER_REQUEST else None  # swallow barriers now
        with pytest.raises(OpenFlowTimeout):
            conn.barrier(timeout=0.2)
    sw.close()


def test_disconnect_fails_pending_requests_then_reconnects(path: str) -> None:
    connects: list[int] = []
    hold = threading.Event()

    def script(mtype: int, xid: int, body: bytes) -> bytes | None:
        if mtype == c.OFPT_BARRIER_REQUEST and hold.is_set():
            return b""  # never answer: the request stays pending until the connection drops
        return None

    sw = FakeSwitch(path, script=script)
    conn = OpenFlowConnection(path, on_connect=lambda: connects.append(1)).start(timeout=5)
    try:
        poll(lambda: connects == [1], 5, "first on_connect")
        hold.set()
        errors: list[Exception] = []

        def call() -> None:
            try:
                conn.barrier(timeout=10)
            except Exception as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)

        t = threading.Thread(target=call)
        t.start()
        sw.expect(c.OFPT_BARRIER_REQUEST)
        sw.drop()
        t.join(5)
        assert len(errors) == 1 and isinstance(errors[0], OpenFlowDisconnected)
        hold.clear()
        poll(lambda: connects == [1, 1] and conn.connected, 5, "reconnect")
        conn.barrier()
    finally:
        conn.close()
        sw.close()


def test_callbacks_run_off_the_reader_thread_and_may_make_requests(path: str) -> None:
    sw = FakeSwitch(path)
    seen: list[tuple[bytes, str]] = []

    def on_packet_in(pin: c.PacketIn) -> None:
        conn.barrier(timeout=2)  # would deadlock if called on the reader thread
        seen.append((pin.userdata, threading.current_thread().name))

    conn = OpenFlowConnection(path, on_packet_in=on_packet_in).start(timeout=5)
    try:
        props = (struct.pack("!HH", c.NXPINT_PACKET, 6) + b"ab\0\0"
                 + struct.pack("!HH", c.NXPINT_USERDATA, 5) + b"u\0\0\0")
        sw.send(c.nx_msg(c.NXT_PACKET_IN2, props))
        poll(lambda: seen, 5, "packet-in callback")
        assert seen == [(b"u", "of-dispatch")]
        assert conn.stats["packet_ins"] == 1
    finally:
        conn.close()
        sw.close()


def test_port_status_reaches_its_callback_between_session_resets(path: str) -> None:
    """Each session says "forget what you knew" when it begins and when it ends, and in between passes every
    ADD and DELETE that names a port, in order; a reserved number and a MODIFY (link state) are dropped."""
    sw = FakeSwitch(path)
    seen: list[tuple] = []
    conn = OpenFlowConnection(path)
    conn.on_port_status = lambda *a: seen.append(a)
    conn.start(timeout=5)
    try:
        def status(reason: int, port_no: int, name: bytes) -> bytes:
            return c.msg(c.OFPT_PORT_STATUS, struct.pack("!B7xIH2x6s2x16sII", reason, port_no, 48, b"\0" * 6,
                                                         name, 0, 0))

        for msg in (status(c.OFPPR_ADD, 7, b"tap7"), status(c.OFPPR_ADD, 0xFFFFFFFE, b"br-int"),
                    status(c.OFPPR_MODIFY, 7, b"tap7"), status(c.OFPPR_DELETE, 7, b"tap7")):
            sw.send(msg)
        poll(lambda: len(seen) >= 3, 5, "port-status callbacks")
        conn.barrier()
        assert seen == [(0, 0, None), (c.OFPPR_ADD, 7, "tap7"), (c.OFPPR_DELETE, 7, "tap7")]
        sw.drop()
        poll(lambda: len(seen) >= 5, 5, "resets at the session's end and the next one's start")
        assert seen[3:] == [(0, 0, None), (0, 0, None)]
        sw.send(status(c.OFPPR_ADD, 8, b"tap8"))
        poll(lambda: len(seen) >= 6, 5, "port-status on the new session")
        assert seen[5] == (c.OFPPR_ADD, 8, "tap8")
    finally:
        conn.close()
        sw.close()


def test_unsolicited_errors_are_counted_not_raised(path: str) -> None:
    sw = FakeSwitch(path)
    with OpenFlowConnection(path).start(timeout=5) as conn:
        sw.send(c.msg(c.OFPT_ERROR, struct.pack("!HH", 2, 4), 0x999))
        conn.barrier()
        assert conn.stats["async_errors"] == 1
    sw.close()


def test_apply_timeout_resets_the_connection_so_the_agent_resyncs(path: str) -> None:
    """If OVS does not answer, the bundle's fate is unknown: drop the session (OVS discards an
    uncommitted bundle with it) and let on_connect trigger a re-sync."""
    from tuplenet.agent.flow import Flow, Output

    connects: list[int] = []
    mute = threading.Event()
    sw = FakeSwitch(path, script=lambda t, x, b: b"" if mute.is_set() and t == c.OFPT_BARRIER_REQUEST
                    else None)
    conn = OpenFlowConnection(path, on_connect=lambda: connects.append(1)).start(timeout=5)
    try:
        mute.set()
        with pytest.raises(OpenFlowTimeout):
            conn.apply([], [Flow(1, 1, (), (Output(1),))], timeout=0.3)
        mute.clear()
        poll(lambda: len(connects) == 2 and conn.connected, 5, "reconnect after reset")
    finally:
        conn.close()
        sw.close()


def test_silent_switch_is_dropped_after_unanswered_echoes(path: str) -> None:
    connects: list[int] = []
    sw = FakeSwitch(path)  # answers barriers only, never echo requests
    conn = OpenFlowConnection(path, on_connect=lambda: connects.append(1), echo_interval=0.05)
    conn.start(timeout=5)
    try:
        sw.expect(c.OFPT_ECHO_REQUEST)
        poll(lambda: len(connects) >= 2, 5, "reconnect after silent switch")
    finally:
        conn.close()
        sw.close()


def test_a_malformed_message_is_skipped_not_fatal(path: str) -> None:
    sw = FakeSwitch(path)
    with OpenFlowConnection(path).start(timeout=5) as conn:
        sw.send(c.nx_msg(c.NXT_PACKET_IN2, struct.pack("!HH", c.NXPINT_PACKET, 200)))  # length past the end
        conn.barrier()
        assert conn.stats["bad_messages"] == 1 and conn.stats["connects"] == 1
    sw.close()


def test_every_rejected_flow_is_named_and_the_bundle_discarded(path: str) -> None:
    from tuplenet.agent.flow import Flow, Output

    def script(mtype: int, xid: int, body: bytes) -> bytes | None:
        if mtype == c.OFPT_BUNDLE_ADD_MESSAGE:
            return c.msg(c.OFPT_ERROR, struct.pack("!HH", 2, 4), xid)  # OFPBAC_BAD_OUT_PORT
        if mtype == c.OFPT_BUNDLE_CONTROL:
            return c.msg(c.OFPT_BUNDLE_CONTROL, body[:4] + struct.pack("!HH", body[5] + 1, 3), xid)
        return None

    sw = FakeSwitch(path, script=script)
    flows = [Flow(1, i, (), (Output(1),)) for i in range(50)]

    def controls() -> list[int]:
        kinds = []
        while not sw.received.empty():
            mtype, _x, body = sw.received.get()
            if mtype == c.OFPT_BUNDLE_CONTROL:
                kinds.append(struct.unpack_from("!H", body, 4)[0])
        return kinds

    with OpenFlowConnection(path).start(timeout=5) as conn:
        with pytest.raises(OpenFlowError) as exc:  # with a delete: all or nothing
            conn.apply([0x1], flows)
        assert [f for f, _e in exc.value.rejected] == [0x1, *flows] and not exc.value.applied
        assert "... and 31 more" in str(exc.value) and len(str(exc.value)) < 5000
        assert controls() == [c.OFPBCT_OPEN_REQUEST, c.OFPBCT_DISCARD_REQUEST]  # never committed
        with pytest.raises(OpenFlowError) as exc:  # adds only: committed in the same write, the rejected named
            conn.apply([], flows)
        assert [f for f, _e in exc.value.rejected] == flows and exc.value.applied
        assert "the rest applied" in str(exc.value)
        assert controls() == [c.OFPBCT_OPEN_REQUEST, c.OFPBCT_COMMIT_REQUEST]
    sw.close()
