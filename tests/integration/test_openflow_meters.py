"""Meters reconciled like flows against a real ovs-vswitchd: ours (tagged ids) are added, fixed and removed,
other software's are never touched; they come back after ovs-vswitchd restarts; drops are counted."""

from __future__ import annotations

import pytest

from tuplenet.agent.flow import Flow, Meter, Output, match
from tuplenet.agent.ofctrl import FlowControl
from tuplenet.agent.openflow import OpenFlowConnection
from tuplenet.agent.openflow import meters as mt
from tuplenet.sandbox.dummy_ovs import DummyOvs
from tuplenet.sandbox.ovsd import poll
from tuplenet.sandbox.packets import icmp_frame

FOREIGN = mt.MeterSpec(5, 10, 10)


@pytest.fixture
def ovs():
    with DummyOvs() as sim:
        sim.add_bridge("br-int", {"p1": 1, "p2": 2}, tlv_map=False)
        yield sim


def _ours(conn: OpenFlowConnection) -> dict[int, mt.MeterSpec | None]:
    return {i: cfg.spec() for i, cfg in conn.dump_meters().items() if mt.is_ours(i)}


def test_reconcile_adds_fixes_and_removes_only_our_meters(ovs: DummyOvs) -> None:
    want = [mt.MeterSpec(mt.meter_id(0), 50, 50), mt.MeterSpec(mt.meter_id(1), 50, 50)]
    stale = mt.MeterSpec(mt.meter_id(200), 7, 7)
    flow = Flow(0, 10, match(in_port=1), (Meter(want[0].meter_id), Output(2)))
    with OpenFlowConnection(ovs.mgmt("br-int")).start() as conn:
        ovs.ofctl("-O", "OpenFlow14", "add-meter", "br-int", FOREIGN.text())
        conn.meter_mods(add=[stale, want[1]._replace(rate=999)])
        old = Flow(0, 11, match(in_port=2), (Meter(stale.meter_id), Output(1)))
        conn.apply([], [old])
        fc = FlowControl(conn, meters=want)
        fc.reconcile({flow.cookie: flow})
        assert _ours(conn) == {m.meter_id: m for m in want}
        assert conn.dump_meters()[FOREIGN.meter_id].spec() == FOREIGN  # not ours: untouched
        assert set(conn.dump_cookies()) == {flow.cookie}
        assert (fc.stats.meters_added, fc.stats.meters_modified, fc.stats.meters_deleted) == (1, 1, 1)
        fc.reconcile({flow.cookie: flow})  # nothing to do the second time
        assert (fc.stats.meters_added, fc.stats.meters_modified, fc.stats.meters_deleted) == (1, 1, 1)


def test_meters_return_after_vswitchd_restart_and_drops_are_counted(ovs: DummyOvs) -> None:
    want = [mt.MeterSpec(mt.meter_id(3), 1, 1)]
    flow = Flow(0, 10, match(in_port=1), (Meter(want[0].meter_id), Output(2)))
    connects: list[int] = []
    with OpenFlowConnection(ovs.mgmt("br-int"), on_connect=lambda: connects.append(1)).start() as conn:
        fc = FlowControl(conn, meters=want)
        fc.reconcile({flow.cookie: flow})
        ovs.restart_vswitchd()
        poll(lambda: len(connects) >= 2 and conn.connected, 20, "reconnect after the restart")
        assert _ours(conn) == {}
        fc.reconcile({flow.cookie: flow})
        assert _ours(conn) == {want[0].meter_id: want[0]} and set(conn.dump_cookies()) == {flow.cookie}
        frame = icmp_frame("f2:00:00:00:00:01", "f2:00:00:00:00:02", "10.0.0.1", "10.0.0.2").hex()
        for _ in range(30):
            ovs.appctl("netdev-dummy/receive", "p1", frame)
        fc.METER_STATS_EVERY = 0.0
        assert poll(lambda: fc.meter_drops() >= 20, 5, "meter drops counted")
