"""On-demand flows without OVS: which remote ports and chassis get flows, the miss and redirect flows, the
demand set's learning, refresh and aging, and that incremental results equal a full recompute."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from topo_helpers import build_view, tutorial_facts

from fuzz_settings import FUZZ_EXAMPLES, fuzz
from tuplenet.agent import tables as T
from tuplenet.agent.engine import Engine
from tuplenet.agent.flow import Clone, Controller, Load, Meter, Resubmit, ip_int, mac_int
from tuplenet.agent.ondemand import OnDemand, aging_period, miss_target
from tuplenet.agent.openflow.meters import MeterSpec
from tuplenet.agent.pipeline.ondemand import MODE_KEY, want_key, wantch_key
from tuplenet.agent.view import View
from tuplenet.model import LR, Chassis
from tuplenet.sandbox import packets as P

VM2 = ("lsp", "LS-A", "vm2")  # on hv2; this host is hv1


def facts(on: bool = True, helper: bool = False) -> dict:
    f = tutorial_facts()
    f[MODE_KEY] = on
    if helper:  # an edge router pinned to hv3, which is live: the helper redirected frames go to
        f[("LR", "LR-edge")] = LR("LR-edge", 30, "hv3")
        f[("chassis", "hv3")] = Chassis("hv3", "192.168.100.4", 1)
        f[("live", "hv3")] = True
    return f


def engine(f: dict) -> Engine:
    e = Engine(build_view(f))
    e.full()
    return e


def flows_of(e: Engine, owner: tuple) -> tuple:
    return e.owner_flows.get(owner, ())


def tunnels(e: Engine) -> set:
    return {i[2] for i in e.desired_outputs("wish", "tunnel")}


def to_chassis(e: Engine) -> set[int]:
    return {m.value for f in e.active.values() if f.table == T.TO_CHASSIS for m in f.match}


def test_full_mode_programs_every_remote_port_and_only_adds_the_redirect_acceptance() -> None:
    plain = engine(tutorial_facts())
    full = engine(facts(on=False))
    extra = set(full.active.values()) - set(plain.active.values())
    assert set(plain.active.values()) <= set(full.active.values())
    assert {(f.table, f.priority) for f in extra} == {(T.FROM_TUNNEL, 1), (T.FROM_TUNNEL, 2)}
    assert flows_of(full, VM2) and "hv2" in tunnels(full)


def test_on_demand_host_has_no_flows_for_untouched_remote_ports_or_their_chassis() -> None:
    e = engine(facts())
    assert flows_of(e, VM2) == ()
    assert flows_of(e, ("lsp", "LS-A", "vm1"))  # local ports, always
    assert flows_of(e, ("lsp", "LS-A", "LS-A_to_LR-central"))  # router ports, always
    assert tunnels(e) == set() and to_chassis(e) == set()
    # Geneve from hv2 is still accepted (hv2 may talk to us first).
    assert any(f.table == T.CLASSIFY for f in flows_of(e, ("chassis", "hv2")))


def test_miss_flows_send_a_metered_copy_to_the_agent_and_the_frame_to_the_helper() -> None:
    e = engine(facts(helper=True))
    miss = [f for f in e.active.values() if f.table == T.LS_IN_LOOKUP and f.priority == 1]
    assert len(miss) == 2  # IPv4 unicast and ARP requests
    for f in miss:  # the frame to the helper first (in a clone), the metered copy to the agent last
        assert f.actions == (Clone((Load(T.R_FLAGS, 1, 2, 1), Load(T.R_CHASSIS, ip_int("192.168.100.4")),
                                    Resubmit(T.TO_CHASSIS), Resubmit(T.LS_IN_OUTPUT))),
                             Resubmit(T.LS_IN_ONDEMAND))
        assert any(m.field == T.R_FLAGS and m.value == 0 and m.mask == T.F_REDIRECT for m in f.match)
    ctl = [f for f in e.active.values() if f.table == T.LS_IN_ONDEMAND]
    assert len(ctl) == 33  # per source bucket (IPv4 and ARP senders: test_ondemand_meter.py) and the rest
    meters = e.desired_outputs("meter")
    for f in ctl:
        assert isinstance(f.actions[0], Meter) and f.actions[1] == Controller(T.OP_UNKNOWN_DST.to_bytes(4, "big"))
        assert any(isinstance(m, MeterSpec) and m.meter_id == f.actions[0].meter_id for m in meters.values())
    # the helper's chassis is reachable (pinned router there) and gets a tunnel
    assert ip_int("192.168.100.4") in to_chassis(e) and "hv3" in tunnels(e)


def test_without_a_helper_the_miss_waits_for_its_flows_then_is_looked_up_again() -> None:
    e = engine(facts())
    miss = [f for f in e.active.values() if f.table == T.LS_IN_LOOKUP and f.priority == 1]
    assert len(miss) == 2
    for f in miss:  # flagged, then paused in the metered subroutine, then looked up again
        assert f.actions == (Load(T.R_FLAGS, 1, 2, 1), Resubmit(T.LS_IN_ONDEMAND), Resubmit(T.LS_MAC_BIND),
                             Resubmit(T.LS_IN_ARP))
    for f in (f for f in e.active.values() if f.table == T.LS_IN_ONDEMAND):
        assert isinstance(f.actions[0], Meter)
        assert f.actions[1] == Controller(T.OP_UNKNOWN_DST.to_bytes(4, "big"), pause=True)


class Resumer:
    def __init__(self) -> None:
        self.resumed: list = []

    def resume(self, pin, data=None) -> None:
        self.resumed.append(pin)


def test_paused_misses_are_resumed_once_after_their_batch() -> None:
    e = engine(facts())
    od = OnDemand(e.view, True, clock=lambda: 0.0)
    known = PausedPin(P.arp_request("f2:01:0a:0a:01:02", "10.10.1.2", "10.10.1.3"), {"metadata": 1})
    unknown = PausedPin(P.arp_request("f2:01:0a:0a:01:02", "10.10.1.2", "10.10.1.99"), {"metadata": 1})
    od.on_packet_in(known)
    od.on_packet_in(unknown)
    od.on_packet_in(Pin(P.arp_request("f2:01:0a:0a:01:02", "10.10.1.2", "10.10.1.3"), {"metadata": 1}))
    conn = Resumer()
    od.resume_paused(conn)
    od.resume_paused(conn)
    assert conn.resumed == [known, unknown] and od.status()["resumed"] == 2


def test_helper_prefers_a_live_chassis_and_never_this_host() -> None:
    f = facts(helper=True)
    f[("LR", "LR-a")] = LR("LR-a", 31, "hv2")  # hv2 sorts first but is not live
    f[("LR", "LR-self")] = LR("LR-self", 32, "hv1")
    e = engine(f)
    miss = [x for x in e.active.values() if x.table == T.LS_IN_LOOKUP and x.priority == 1]
    assert miss and all(Load(T.R_CHASSIS, ip_int("192.168.100.4")) in x.actions[0].actions for x in miss)


@dataclass
class Pin:
    data: bytes
    metadata: dict = field(default_factory=dict)
    continuation: bytes | None = None


@dataclass
class PausedPin(Pin):
    continuation: bytes | None = b"frozen"


def learn(e: Engine, od: OnDemand, dp: int, frame: bytes, regs: dict | None = None) -> None:
    od.on_packet_in(Pin(frame, {"metadata": dp, **(regs or {})}))
    changed = od.take_changed()
    od.refresh(changed)
    e.process(changed)


def test_a_miss_learns_the_destination_and_its_chassis_incrementally_equal_to_full() -> None:
    f = facts()
    e = engine(f)
    od = OnDemand(e.view, True, idle=10, clock=lambda: 0.0)
    arp = P.arp_request("f2:01:0a:0a:01:02", "10.10.1.2", "10.10.1.3")
    learn(e, od, 1, arp)
    assert flows_of(e, VM2) and "hv2" in tunnels(e) and ip_int("192.168.100.3") in to_chassis(e)
    assert e.view.get(want_key("LS-A", "vm2")) and e.view.get(wantch_key("hv2"))
    f2 = {**f, want_key("LS-A", "vm2"): True, wantch_key("hv2"): True}
    assert set(engine(f2).active.values()) == set(e.active.values())
    assert od.status()["learned"] == 1 and od.status()["wanted_chassis"] == 1


def test_ip_and_router_misses_name_the_destination_or_the_next_hop() -> None:
    ip = P.icmp_frame("f2:01:0a:0a:01:02", "f2:01:0a:0a:01:03", "10.10.1.2", "10.10.1.3")
    assert miss_target(ip, {}) == ("10.10.1.3", mac_int("f2:01:0a:0a:01:03"))
    routed = P.icmp_frame("f2:01:0a:0a:02:01", "00:00:00:00:00:00", "10.10.1.2", "10.10.9.9")
    assert miss_target(routed, {T.R_NEXT_HOP: ip_int("10.10.2.2")}) == ("10.10.2.2", None)
    assert miss_target(routed, {}) == ("10.10.9.9", None)
    assert miss_target(b"\x00" * 13, {}) == (None, None)
    assert miss_target(b"\xff" * 12 + b"\x86\xdd" + b"\x00" * 60, {}) == (None, None)  # IPv6: not ours


def test_idle_ports_age_out_and_used_ones_stay() -> None:
    now = [0.0]
    e = engine(facts())
    od = OnDemand(e.view, True, idle=10, clock=lambda: now[0])
    learn(e, od, 1, P.arp_request("f2:01:0a:0a:01:02", "10.10.1.2", "10.10.1.3"))
    lookup = next(f for f in flows_of(e, VM2) if f.table == T.LS_IN_LOOKUP)
    now[0] = 5
    assert od.observe({lookup.cookie: 3}, e.owner_flows) == 0  # used: stays, clock restarts
    now[0] = 12
    assert od.observe({lookup.cookie: 3}, e.owner_flows) == 0  # idle for 7 s only
    now[0] = 15.5
    assert od.observe({lookup.cookie: 3}, e.owner_flows) == 1
    changed = od.take_changed()
    od.refresh(changed)
    e.process(changed)
    assert flows_of(e, VM2) == () and tunnels(e) == set() and to_chassis(e) == set()
    assert set(engine(facts()).active.values()) == set(e.active.values())
    # and the next miss brings it back
    learn(e, od, 1, P.arp_request("f2:01:0a:0a:01:02", "10.10.1.2", "10.10.1.3"))
    assert flows_of(e, VM2)


def test_a_deleted_wanted_port_is_forgotten() -> None:
    e = engine(facts())
    od = OnDemand(e.view, True, idle=10, clock=lambda: 0.0)
    learn(e, od, 1, P.arp_request("f2:01:0a:0a:01:02", "10.10.1.2", "10.10.1.3"))
    changed: set = set()
    e.view.apply(VM2, None, changed)
    od.refresh(changed)
    e.process(changed)
    assert od.wants == {} and e.view.get(wantch_key("hv2")) is None and tunnels(e) == set()


def test_full_mode_learns_nothing() -> None:
    e = engine(facts(on=False))
    od = OnDemand(e.view, False)
    od.on_packet_in(Pin(P.arp_request("f2:01:0a:0a:01:02", "10.10.1.2", "10.10.1.3"), {"metadata": 1}))
    assert od.take_changed() == set() and od.wants == {}


def test_aging_period_is_bounded() -> None:
    assert aging_period(2) == 0.5 and aging_period(0.1) == 0.2 and aging_period(3600) == 30.0


_IPS = ["10.10.1.3", "10.10.1.2", "10.10.2.2", "10.10.9.9", "0.0.0.0"]
_FRAMES = [P.arp_request("f2:01:0a:0a:01:02", "10.10.1.2", t) for t in _IPS] + [
    P.icmp_frame("f2:01:0a:0a:01:02", d, "10.10.1.2", t) for t in _IPS
    for d in ("f2:01:0a:0a:01:03", "00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff")]


def _packet_in(rng: random.Random) -> Pin:
    """Garbage, or ARP/IPv4 frames (often truncated) asking for addresses of the test switches, with
    random registers."""
    if rng.random() < 0.3:
        data = rng.randbytes(rng.randrange(0, 80))
    else:
        data = rng.choice(_FRAMES)
        if rng.random() < 0.5:
            data = data[:rng.randrange(0, len(data))]
    regs = {r: rng.getrandbits(32) for r in ("reg0", "reg1", "reg2", "reg10") if rng.random() < 0.3}
    return Pin(data, {"metadata": rng.choice([0, 1, 2, 3, rng.getrandbits(32)]), **regs})


@pytest.mark.fuzz
@fuzz
@given(st.integers(0, 2**64))
def test_fuzz_any_packet_in_is_handled_without_error(seed: int) -> None:
    """Whatever the datapath hands over (any frame, any registers), learning never raises and wants only
    existing remote ports."""
    od = OnDemand(FUZZ_VIEW, True, clock=lambda: 0.0)
    od.on_packet_in(_packet_in(random.Random(seed)))
    assert od.stats.misses == 1
    assert set(od.wants) <= {VM2}
    changed: set = set()
    for k in list(od.wants):  # the next example starts from the same view
        od._forget(k, changed)


FUZZ_VIEW = build_view(facts())


def gated(f: dict) -> tuple[Engine, OnDemand]:
    """Facts applied through the on-demand gate, as the daemon applies etcd changes."""
    view = View()
    od = OnDemand(view, bool(f.get(MODE_KEY)), idle=10, clock=lambda: 0.0, self_id=f[("self",)])
    changed: set = set()
    for k, v in f.items():
        od.apply(k, v, changed)
    e = Engine(view)
    e.full()
    return e, od


def test_untouched_remote_ports_wait_outside_the_view_and_wake_on_a_miss() -> None:
    e, od = gated(facts())
    assert VM2 not in e.view.facts and VM2 in od.dormant and od.status()["dormant_ports"] == 1
    assert set(e.active.values()) == set(engine(facts()).active.values())  # same flows as with it in view
    learn(e, od, 1, P.arp_request("f2:01:0a:0a:01:02", "10.10.1.2", "10.10.1.3"))
    assert VM2 in e.view.facts and VM2 not in od.dormant and flows_of(e, VM2)
    lookup = next(f for f in flows_of(e, VM2) if f.table == T.LS_IN_LOOKUP)
    assert od.observe({lookup.cookie: 0}, e.owner_flows) == 0  # the first look sets the baseline
    od.clock = lambda: 100.0
    assert od.observe({lookup.cookie: 0}, e.owner_flows) == 1
    changed = od.take_changed()
    od.refresh(changed)
    e.process(changed)
    assert VM2 in od.dormant and VM2 not in e.view.facts and flows_of(e, VM2) == ()
    assert set(e.active.values()) == set(engine(facts()).active.values())


def test_a_dormant_port_wakes_when_its_interface_appears_here_and_changes_reach_it() -> None:
    e, od = gated(facts())
    changed: set = set()
    moved = replace(e.view.facts.get(VM2) or od.dormant.records[VM2][0], mac="f2:01:0a:0a:01:33")
    od.apply(VM2, moved, changed)  # a change while dormant stays dormant, updated
    assert od.dormant.records[VM2][0].mac == "f2:01:0a:0a:01:33" and VM2 not in e.view.facts
    e.view.apply(("plugged", "vm2"), True, changed)  # a VM with iface-id vm2 plugged in here
    od.refresh(changed)
    e.process(changed)
    assert e.view.facts[VM2].mac == "f2:01:0a:0a:01:33" and VM2 not in od.dormant
    changed = set()
    od.apply(VM2, None, changed)  # deleted in etcd
    assert VM2 not in e.view.facts and VM2 not in od.dormant


def test_full_mode_gate_keeps_every_port_in_the_view() -> None:
    e, od = gated(facts(on=False))
    assert VM2 in e.view.facts and len(od.dormant) == 0


_OPS = st.lists(st.tuples(st.sampled_from(["touch", "age", "move", "delete", "readd", "plug", "helper"]),
                          st.sampled_from([("LS-A", "vm2", "10.10.1.3"), ("LS-B", "vm4", "10.10.2.3"),
                                           ("LS-A", "vm5", "10.10.1.5")])), max_size=12)


def _more_facts() -> dict:
    from tuplenet.model import LSP

    f = facts()
    f[("chassis", "hv3")] = Chassis("hv3", "192.168.100.4", 1)
    f[("lsp", "LS-B", "vm4")] = LSP("LS-B", "vm4", "10.10.2.3", "f2:01:0a:0a:02:03", None, "hv3")
    f[("lsp", "LS-A", "vm5")] = LSP("LS-A", "vm5", "10.10.1.5", "f2:01:0a:0a:01:05", None, "hv3")
    return f


@settings(derandomize=True, max_examples=max(50, FUZZ_EXAMPLES // 100), deadline=None, database=None)
@given(_OPS)
def test_property_incremental_on_demand_equals_a_full_computation(ops: list) -> None:
    """Any sequence of learning, aging, moves, deletions, local interfaces and helper changes: the flows equal
    a fresh full computation of the same view, and equal those of a view holding the dormant ports too
    (keeping them out changes nothing but the cost)."""
    now = [0.0]
    base = _more_facts()
    e, od = gated(base)
    od.clock = lambda: now[0]
    dp = {"LS-A": 1, "LS-B": 2}
    for op, (ls, name, ip) in ops:
        key = ("lsp", ls, name)
        changed: set = set()
        if op == "touch":
            od.touch(dp[ls], ip)
        elif op == "age":
            od.observe({}, e.owner_flows)
            now[0] += 20
            od.observe({}, e.owner_flows)
        elif op in ("move", "readd") and (key in e.view.facts or key in od.dormant):
            cur = e.view.facts.get(key) or od.dormant.records[key][0]
            od.apply(key, replace(cur, chassis="hv2" if cur.chassis == "hv3" else "hv3"), changed)
        elif op == "readd":
            od.apply(key, base[key], changed)
        elif op == "delete":
            od.apply(key, None, changed)
        elif op == "plug":
            e.view.apply(("plugged", name), True if ("plugged", name) not in e.view.facts else None, changed)
        elif op == "helper":
            lr = ("LR", "LR-edge")
            od.apply(lr, None if lr in e.view.facts else LR("LR-edge", 30, "hv3"), changed)
        changed |= od.take_changed()
        od.refresh(changed)
        e.process(changed)
        fresh = Engine(build_view(e.view.facts))
        fresh.full()
        assert set(e.active.values()) == set(fresh.active.values())
        merged = {**e.view.facts, **{k: rec[0] for k, rec in od.dormant.records.items()}}
        with_dormant = Engine(build_view(merged))
        with_dormant.full()
        assert set(with_dormant.active.values()) == set(e.active.values())


def test_a_learned_port_requested_on_a_chassis_brings_the_tunnel_there() -> None:
    """Unbound but requested on hv2: the lookup tunnels to hv2 (before any claim), so the demand set must
    ask for hv2's tunnel too, or the frames have nowhere to go."""
    from tuplenet.model import LSP

    f = facts()
    f[VM2] = LSP("LS-A", "vm2", "10.10.1.3", "f2:01:0a:0a:01:03", None, None, "hv2")
    e = engine(f)
    od = OnDemand(e.view, True, idle=10, clock=lambda: 0.0)
    learn(e, od, 1, P.arp_request("f2:01:0a:0a:01:02", "10.10.1.2", "10.10.1.3"))
    lookup = [fl for fl in flows_of(e, VM2) if fl.table == T.LS_IN_LOOKUP]
    assert lookup and Load(T.R_CHASSIS, ip_int("192.168.100.3")) in lookup[0].actions
    assert e.view.get(wantch_key("hv2")) and "hv2" in tunnels(e) and ip_int("192.168.100.3") in to_chassis(e)
    assert set(engine({**f, want_key("LS-A", "vm2"): True, wantch_key("hv2"): True}).active.values()) == \
        set(e.active.values())
