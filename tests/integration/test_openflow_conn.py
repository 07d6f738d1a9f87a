"""OpenFlowConnection against a real ovs-vswitchd (dummy datapath): bundles, dumps, packets, restarts."""

from __future__ import annotations

import threading

import pytest

from tuplenet.agent.flow import Controller, Flow, Load, Output, Resubmit, SetField, match
from tuplenet.agent.openflow import OpenFlowConnection, OpenFlowError, PacketIn, TlvMapping
from tuplenet.sandbox.dummy_ovs import DummyOvs
from tuplenet.sandbox.ovsd import poll
from tuplenet.sandbox.packets import icmp_frame
from tuplenet.sandbox.pcap import read_pcap

FRAME = icmp_frame("50:54:00:00:00:01", "50:54:00:00:00:02", "10.0.0.1", "10.0.0.2")


class Recorder:
    """Collects callbacks; tests poll it instead of sleeping."""

    def __init__(self) -> None:
        self.connects = 0
        self.packet_ins: list[PacketIn] = []
        self.lock = threading.Lock()

    def on_connect(self) -> None:
        with self.lock:
            self.connects += 1

    def on_packet_in(self, pin: PacketIn) -> None:
        with self.lock:
            self.packet_ins.append(pin)


@pytest.fixture(scope="module")
def ovs():
    with DummyOvs() as sim:
        sim.add_bridge("br-int", {"p1": 1, "p2": 2, "p3": 3}, tlv_map=False)
        yield sim


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def conn(ovs: DummyOvs, rec: Recorder):
    c = OpenFlowConnection(ovs.mgmt("br-int"), on_packet_in=rec.on_packet_in, on_connect=rec.on_connect)
    c.start(timeout=10)
    c.ensure_tlv_map()
    yield c
    c.apply(list(c.dump_cookies()), [])
    c.close()
    ovs.ofctl("del-flows", "br-int")


def flows(n: int, table: int = 10) -> list[Flow]:
    return [Flow(table, 100, match(reg0=i), (Load("reg1", i), Resubmit(table + 1))) for i in range(n)]


def test_apply_adds_and_deletes_by_cookie_leaving_foreign_flows(ovs: DummyOvs,
                                                                conn: OpenFlowConnection) -> None:
    ovs.ofctl("add-flow", "br-int", "cookie=0x1234,table=10,priority=5,actions=drop")
    fs = flows(3)
    conn.apply([], fs)
    assert conn.dump_cookies() == {f.cookie: (10, 100) for f in fs}
    assert conn.dump_cookies(tag_only=False)[0x1234] == (10, 5)
    conn.apply([fs[0].cookie, fs[1].cookie], [])
    assert set(conn.dump_cookies()) == {fs[2].cookie}
    assert any("cookie=0x1234" in line for line in ovs.flows("br-int"))


def test_apply_replaces_a_flow_with_the_same_key_in_one_bundle(conn: OpenFlowConnection) -> None:
    old = Flow(5, 50, match(reg3=1), (Output(1),))
    new = Flow(5, 50, match(reg3=1), (Output(2),))
    conn.apply([], [old])
    conn.apply([old.cookie], [new])
    assert conn.dump_cookies() == {new.cookie: (5, 50)}


@pytest.mark.parametrize("bad", [
    Flow(1, 1, match(reg0=1), (Output(0x10000),)),                # no such 16-bit-mappable port
    Flow(1, 1, match(reg0=1), (SetField("tcp_src", 80),)),        # prerequisite (ip, tcp) missing
    Flow(254, 1, match(reg0=1), (Output(1),)),                    # table 254 is OVS-internal
], ids=["bad-out-port", "match-inconsistent", "internal-table"])
def test_apply_is_atomic_one_bad_flow_installs_nothing(conn: OpenFlowConnection, bad: Flow) -> None:
    keep = flows(2, table=20)
    conn.apply([], keep)
    with pytest.raises(OpenFlowError) as exc:
        conn.apply([keep[0].cookie], flows(50, table=30) + [bad] + flows(5, table=40))
    assert exc.value.errors and bad.to_text() in str(exc.value)
    assert [flow for flow, _err in exc.value.rejected] == [bad]
    assert conn.dump_cookies() == {f.cookie: (20, 100) for f in keep}  # not even the delete happened
    conn.barrier()


def test_an_adds_only_bundle_goes_in_without_exactly_its_rejected_flows(conn: OpenFlowConnection) -> None:
    """Adds only: open, adds and commit in one write (one round trip). OVS commits what it accepted; the error
    names the rejected flow and says the rest is in - the state isolating it would reach."""
    bad = Flow(1, 1, match(reg0=1), (SetField("tcp_src", 80),))  # prerequisite (ip, tcp) missing
    good = flows(5, table=30) + flows(3, table=40)
    with pytest.raises(OpenFlowError) as exc:
        conn.apply([], good[:5] + [bad] + good[5:])
    assert exc.value.applied and [flow for flow, _err in exc.value.rejected] == [bad]
    assert "the rest applied" in str(exc.value) and bad.to_text() in str(exc.value)
    assert conn.dump_cookies() == {f.cookie: (f.table, 100) for f in good}
    conn.apply([], flows(2, table=50))  # the session goes on
    assert len(conn.dump_cookies()) == 10


def test_flow_control_books_a_partly_applied_bundle(conn: OpenFlowConnection) -> None:
    from tuplenet.agent.ofctrl import FlowControl

    fc = FlowControl(conn)
    bad = Flow(1, 1, match(reg0=1), (SetField("tcp_src", 80),))
    good = flows(4, table=30)
    fc.apply([], good + [bad])
    assert fc.installed == {f.cookie for f in good} and fc.rejected == {bad.cookie}
    assert set(conn.dump_cookies()) == fc.installed and fc.stats.failures == 1


def test_flow_control_isolates_a_bad_flow_among_deletes_in_two_bundles(conn: OpenFlowConnection) -> None:
    """With deletes the bundle is all or nothing; then the deletes go alone and the adds alone, which OVS takes
    without the bad one: two bundles, no bisection re-sending flows already in."""
    from tuplenet.agent.ofctrl import FlowControl

    fc = FlowControl(conn)
    old = flows(2, table=20)
    fc.apply([], old)
    bad = Flow(1, 1, match(reg0=1), (SetField("tcp_src", 80),))
    good = flows(6, table=30)
    before = fc.stats.bundles
    fc.apply([old[0].cookie], good[:3] + [bad] + good[3:])
    assert fc.installed == {old[1].cookie} | {f.cookie for f in good} and fc.rejected == {bad.cookie}
    assert set(conn.dump_cookies()) == fc.installed and fc.stats.bundles - before == 2


def test_commit_time_failure_applies_nothing(ovs: DummyOvs, conn: OpenFlowConnection) -> None:
    """A full table is only noticed at commit: OVS then rolls the whole bundle back."""
    ovs.vsctl("--", "--id=@ft", "create", "Flow_Table", "flow_limit=5", "overflow_policy=refuse",
              "--", "set", "Bridge", "br-int", "flow_tables:60=@ft")
    try:
        with pytest.raises(OpenFlowError) as exc:
            conn.apply([], flows(3) + [Flow(60, 1, match(reg0=i), ()) for i in range(7)])
        assert exc.value.names == ["OFPFMFC_TABLE_FULL", "OFPBFC_MSG_FAILED"]
        assert "table=60" in str(exc.value) and conn.dump_cookies() == {}
        assert [(f.table, err.name) for f, err in exc.value.rejected] == [(60, "OFPFMFC_TABLE_FULL")]
    finally:
        ovs.vsctl("clear", "Bridge", "br-int", "flow_tables")


def test_encoding_error_is_raised_before_anything_is_applied(conn: OpenFlowConnection) -> None:
    with pytest.raises(OpenFlowError, match="does not fit"):
        conn.apply([], flows(3) + [Flow(1, 1, match(reg0=1), (Load("reg1", 1 << 40),))])
    assert conn.dump_cookies() == {}


def test_large_bundle_and_multipart_dump(conn: OpenFlowConnection) -> None:
    fs = flows(20000)
    conn.apply([], fs)
    got = conn.dump_cookies()
    assert len(got) == 20000 and got.keys() == {f.cookie for f in fs}
    raw = conn.dump_flows_raw(cookie=fs[7].cookie, cookie_mask=(1 << 64) - 1)
    assert [(r.table_id, r.priority, r.cookie) for r in raw] == [(10, 100, fs[7].cookie)]
    conn.apply([f.cookie for f in fs], [])
    assert conn.dump_cookies() == {}


def test_ensure_tlv_map_is_idempotent_and_detects_conflicts(ovs: DummyOvs, conn: OpenFlowConnection) -> None:
    assert TlvMapping(0xFFEE, 0, 8, 0) in conn.tlv_mappings()
    assert conn.ensure_tlv_map() is False
    with pytest.raises(OpenFlowError, match="conflict"):
        conn.ensure_tlv_map(TlvMapping(0xFFEE, 1, 4, 0))
    with pytest.raises(OpenFlowError) as exc:
        conn.tlv_map_add(TlvMapping(0xFFEE, 0, 8, 0))
    assert exc.value.names == ["NXTTMFC_ALREADY_MAPPED"]


def test_packet_out_reaches_a_dummy_port(ovs: DummyOvs, conn: OpenFlowConnection) -> None:
    before = len(read_pcap(ovs.pcap("p2")))
    conn.packet_out(FRAME, (Output(2),))
    conn.barrier()
    frames = poll(lambda: read_pcap(ovs.pcap("p2"))[before:], 5, "packet-out on p2")
    assert frames == [FRAME]


def test_packet_in2_with_userdata_metadata_and_resume(ovs: DummyOvs, conn: OpenFlowConnection,
                                                      rec: Recorder) -> None:
    ctl = Flow(0, 100, match(in_port=1), (Load("reg0", 0x11), SetField("metadata", 0x22),
                                          SetField("tun_metadata0", 0xAABB), Load("reg15", 0x33, 0, 16),
                                          Controller(b"\xde\xad\xbe\xef", pause=True), Output(2)))
    conn.apply([], [ctl])
    before = len(read_pcap(ovs.pcap("p2")))
    ovs.appctl("netdev-dummy/receive", "p1", FRAME.hex())
    pin = poll(lambda: rec.packet_ins and rec.packet_ins[-1], 5, "packet-in")
    assert (pin.data, pin.userdata, pin.table_id, pin.cookie) == (FRAME, b"\xde\xad\xbe\xef", 0, ctl.cookie)
    assert pin.total_len == len(FRAME) and pin.paused
    md = pin.metadata
    assert (md["in_port"], md["reg0"], md["metadata"], md["reg15"], md["tun_metadata0"]) == (1, 0x11, 0x22,
                                                                                              0x33, 0xAABB)
    assert read_pcap(ovs.pcap("p2"))[before:] == []  # paused: nothing output yet
    changed = FRAME[:-1] + b"\x99"
    conn.resume(pin, changed)
    assert poll(lambda: read_pcap(ovs.pcap("p2"))[before:], 5, "resumed packet") == [changed]


def test_plain_controller_action_is_not_paused(ovs: DummyOvs, conn: OpenFlowConnection,
                                               rec: Recorder) -> None:
    conn.apply([], [Flow(0, 100, match(in_port=3), (Controller(b"\x01"),))])
    ovs.appctl("netdev-dummy/receive", "p3", FRAME.hex())
    pin = poll(lambda: rec.packet_ins and rec.packet_ins[-1], 5, "packet-in")
    assert not pin.paused and pin.userdata == b"\x01" and pin.metadata["in_port"] == 3
    with pytest.raises(ValueError):
        conn.resume(pin)


def test_reconnects_after_vswitchd_restart(ovs: DummyOvs, conn: OpenFlowConnection, rec: Recorder) -> None:
    conn.apply([], flows(3))
    poll(lambda: rec.connects == 1, 5, "the first connect callback")  # it runs on the dispatcher thread
    ovs.restart_vswitchd()
    poll(lambda: rec.connects == 2 and conn.connected, 10, "reconnect")
    assert conn.dump_cookies() == {}  # a restarted vswitchd has no flows ...
    assert conn.ensure_tlv_map() is True  # ... and no TLV map: the agent re-syncs both on_connect
    conn.apply([], flows(3))
    assert len(conn.dump_cookies()) == 3


def test_start_times_out_without_a_switch(tmp_path) -> None:
    c = OpenFlowConnection(str(tmp_path / "nothing.mgmt"))
    with pytest.raises(OpenFlowError, match="could not connect"):
        c.start(timeout=0.3)
