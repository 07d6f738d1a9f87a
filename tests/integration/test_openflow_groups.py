"""Groups against a real ovs-vswitchd: our group-mod encoding means what `ovs-ofctl add-group` means, the
group description we read back equals our own encoding (so a restart leaves groups alone), and ofctrl
installs groups in the same bundle as the flows that use them, reconciles ours only, and deletes stale
ones after their flows."""

from __future__ import annotations

import pytest

from tuplenet.agent.flow import Clone, Ct, Flow, Load, Output, Resubmit, ToGroup, match
from tuplenet.agent.ofctrl import FlowControl
from tuplenet.agent.openflow import OpenFlowConnection
from tuplenet.agent.openflow import groups as gr
from tuplenet.agent.outputs import Bucket, Group, group_id
from tuplenet.sandbox.dummy_ovs import DummyOvs

IP = {"dl_type": 0x0800}

GROUPS = [
    Group(group_id(1), "select", (Bucket((Output(1),)), Bucket((Output(2),)))),
    Group(group_id(2), "select", (Bucket((Load("reg4", 7, 0, 16), Resubmit(9)), weight=30),
                                  Bucket((Output(3),), weight=70))),
    Group(group_id(3), "all", (Bucket((Output(1),)), Bucket((Output(2),)), Bucket((Output(3),)))),
    Group(group_id(4), "fast_failover", (Bucket((Output(1),), watch_port=1), Bucket((Output(2),), watch_port=2))),
    Group(group_id(5), "select", (Bucket((Clone((Output(1),)),)), Bucket((Ct(commit=True, zone=3),)))),
    Group(group_id(6), "all", ()),
    Group(7, "all", (Bucket((Output(1),)),)),  # an id without our tag: codec only
]


def _flows() -> list[Flow]:
    return [Flow(0, 10 + i, match(in_port=1, reg1=i, **IP), (ToGroup(g.group_id),)) for i, g in enumerate(GROUPS)]


def _msgs(groups: list[Group], command: int = gr.OFPGC_ADD) -> list[tuple[str, object]]:
    return [(g.text(), lambda x, g=g: gr.group_mod(command, g, x)) for g in groups]


@pytest.fixture
def ovs():
    with DummyOvs() as sim:
        sim.add_bridge("A", {"a1": 1, "a2": 2, "a3": 3}, tlv_map=False)
        sim.add_bridge("B", {"b1": 1, "b2": 2, "b3": 3}, tlv_map=False)
        yield sim


def _groups(ovs: DummyOvs, bridge: str) -> list[str]:
    out = ovs.ofctl("-O", "OpenFlow15", "dump-groups", bridge)
    return sorted(line.strip() for line in out.splitlines()[1:] if line.strip())


def test_group_mods_and_group_flows_match_ovs_ofctl_in_one_bundle(ovs: DummyOvs) -> None:
    flows = _flows()
    with OpenFlowConnection(ovs.mgmt("A")).start() as conn:
        conn.apply([], flows, pre=_msgs(GROUPS))  # groups and the flows that use them: one bundle
        got = conn.dump_groups()
    for g in GROUPS:
        ovs.ofctl("-O", "OpenFlow14", "add-group", "B", g.text())
    ovs.ofctl("-O", "OpenFlow14", "add-flows", "B", "-", input="\n".join(f.to_text() for f in flows) + "\n")
    a, b = _groups(ovs, "A"), _groups(ovs, "B")
    assert len(a) == len(GROUPS) and a == b, f"A={a}\nB={b}"
    assert ovs.flows("A") == ovs.flows("B") and len(ovs.flows("A")) == len(flows)
    # What we read back is what we would write: a reconcile leaves them alone.
    assert got == {g.group_id: gr.GroupDesc.of(g) for g in GROUPS}


def test_group_modify_and_delete_act_on_the_named_group(ovs: DummyOvs) -> None:
    g, other = GROUPS[0], GROUPS[2]
    changed = g._replace(buckets=(Bucket((Output(3),), weight=5),))
    with OpenFlowConnection(ovs.mgmt("A")).start() as conn:
        conn.apply([], [], pre=_msgs([g, other]))
        conn.apply([], [], pre=_msgs([changed], gr.OFPGC_MODIFY))
        assert conn.dump_groups() == {changed.group_id: gr.GroupDesc.of(changed),
                                      other.group_id: gr.GroupDesc.of(other)}
        conn.apply([], [], post=[("delete", lambda x: gr.group_delete(g.group_id, x))])
        assert set(conn.dump_groups()) == {other.group_id}


def test_a_rejected_group_rejects_the_whole_bundle(ovs: DummyOvs) -> None:
    from tuplenet.agent.openflow import OpenFlowError

    bad = Group(group_id(9), "fast_failover", (Bucket((Output(1),), watch_port=1),))
    flow = Flow(0, 5, match(in_port=2), (Output(1),))
    with OpenFlowConnection(ovs.mgmt("A")).start() as conn:
        conn.apply([], [], pre=_msgs([bad]))
        with pytest.raises(OpenFlowError, match="group_id"):
            conn.apply([], [flow], pre=_msgs([bad]))  # already exists: GROUP_EXISTS
        assert conn.dump_cookies() == {}


def test_flowcontrol_reconciles_our_groups_only_and_is_hitless_the_second_time(ovs: DummyOvs) -> None:
    want = [GROUPS[0], GROUPS[3]]
    stale = Group(group_id(40), "all", (Bucket((Output(2),)),))
    changed = GROUPS[3]._replace(buckets=GROUPS[3].buckets[:1])
    flow = Flow(0, 10, match(in_port=1), (ToGroup(want[0].group_id),))
    stale_flow = Flow(0, 11, match(in_port=2), (ToGroup(stale.group_id),))
    with OpenFlowConnection(ovs.mgmt("A")).start() as conn:
        ovs.ofctl("-O", "OpenFlow14", "add-group", "A", "group_id=7,type=all,bucket=output:3")  # foreign
        conn.apply([], [stale_flow], pre=_msgs([stale, changed]))
        fc = FlowControl(conn)
        fc.reconcile({flow.cookie: flow}, groups=want)
        present = conn.dump_groups()
        assert {i: d for i, d in present.items() if i != 7} == {g.group_id: gr.GroupDesc.of(g) for g in want}
        assert 7 in present  # not ours: untouched
        assert set(conn.dump_cookies()) == {flow.cookie}
        assert (fc.stats.groups_added, fc.stats.groups_modified, fc.stats.groups_deleted) == (1, 1, 1)
        bundles = fc.stats.bundles
        fc.reconcile({flow.cookie: flow}, groups=want)  # a restart on a healthy switch changes nothing
        assert fc.stats.bundles == bundles
        assert (fc.stats.groups_added, fc.stats.groups_modified, fc.stats.groups_deleted) == (1, 1, 1)


def test_flowcontrol_applies_engine_group_changes_with_their_flows(ovs: DummyOvs) -> None:
    g = GROUPS[1]
    flow = Flow(0, 10, match(in_port=1), (ToGroup(g.group_id),))
    with OpenFlowConnection(ovs.mgmt("A")).start() as conn:
        fc = FlowControl(conn)
        fc.reconcile({})
        fc.apply([], [flow], [(g.ident, None, g)])
        assert conn.dump_groups() == {g.group_id: gr.GroupDesc.of(g)} and set(conn.dump_cookies()) == {flow.cookie}
        g2 = g._replace(buckets=g.buckets[1:])
        fc.apply([], [], [(g.ident, g, g2)])
        assert conn.dump_groups() == {g.group_id: gr.GroupDesc.of(g2)}
        fc.apply([flow.cookie], [], [(g.ident, g2, None)])  # flow out, then its group, in one bundle
        assert conn.dump_groups() == {} and conn.dump_cookies() == {}


def test_ovs_takes_group_mods_but_not_meter_mods_in_a_bundle(ovs: DummyOvs) -> None:
    """Why ofctrl puts groups inside the flow bundle but meters around it (OVS 3.1)."""
    from tuplenet.agent.openflow import OpenFlowError
    from tuplenet.agent.openflow import meters as mt

    spec = mt.MeterSpec(mt.meter_id(1), 10, 10)
    with OpenFlowConnection(ovs.mgmt("A")).start() as conn:
        with pytest.raises(OpenFlowError, match="OFPBFC_MSG_UNSUP"):
            conn.apply([], [], pre=[("meter", lambda x: mt.meter_mod(mt.OFPMC_ADD, spec, x))])
        conn.apply([], [], pre=_msgs([GROUPS[0]]))
        assert set(conn.dump_groups()) == {GROUPS[0].group_id} and conn.dump_meters() == {}
