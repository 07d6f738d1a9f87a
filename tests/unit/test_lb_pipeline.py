"""Load balancer flows and groups (pipeline/lb.py), computed by the engine from small views: what each
stage holds, health verdicts leaving the group, all down -> drop, affinity by multipath, hairpin, routers,
the stage contract, and incremental == full."""

from __future__ import annotations

from topo_helpers import build_view, tutorial_facts

from tuplenet.agent import stages as S
from tuplenet.agent.engine import Engine
from tuplenet.agent.flow import Ct, CtClear, Multipath, Nat, Resubmit, SetField, ToGroup, ip_int
from tuplenet.agent.outputs import Group, group_is_ours
from tuplenet.agent.pipeline import lb as L
from tuplenet.model import LR
from tuplenet.model.lb import Backend, LoadBalancer

VIP = "10.10.1.100"
B1, B2 = Backend("10.10.1.2", 8080), Backend("10.10.1.3", 8080)  # vm1 (hv1), vm2 (hv2) in LS-A


def _lb(**kw) -> LoadBalancer:
    args = {"dp_kind": "LS", "dp": "LS-A", "name": "web", "vip": VIP, "port": 80, "backends": (B1, B2)}
    args.update(kw)
    return LoadBalancer(**args)


def _facts(*lbs: LoadBalancer, down: tuple = ()) -> dict:
    f = tutorial_facts()
    for lb in lbs:
        f[(lb.kind, lb.dp, lb.name)] = lb
    for lb, b in down:
        f[("lbh", lb.dp_kind, lb.dp, lb.name, b.text())] = True
    return f


def _engine(facts: dict) -> Engine:
    e = Engine(build_view(facts))
    e.full()
    return e


def _table(e: Engine, name: str) -> list:
    t = S.table(name)
    return sorted((f for f in e.active.values() if f.table == t and f.priority), key=lambda f: -f.priority)


def _groups(e: Engine) -> list[Group]:
    return list(e.desired_outputs("group").values())


def test_switch_lb_flows_and_group():
    e = _engine(_facts(_lb()))
    entry = _table(e, "ls_in_lb")
    vip = [f for f in entry if f.priority == 10]
    assert len(vip) == 1 and vip[0].actions == (Ct(zone=1, table=S.table("ls_in_lb_sel"), nat=Nat()),)
    assert {m.field: m.value for m in vip[0].match}["nw_dst"] == ip_int(VIP)
    sel = _table(e, "ls_in_lb_sel")
    assert len(sel) == 1 and isinstance(sel[0].actions[0], ToGroup)
    gid = sel[0].actions[0].group_id
    assert group_is_ours(gid) and gid & 0x8000
    groups = [g for g in _groups(e) if g.group_id == gid]
    assert len(groups) == 1 and groups[0].type == "select"
    dnats = [b.actions[0] for b in groups[0].buckets]
    assert [(c.commit, c.zone, c.nat) for c in dnats] == [
        (True, 1, Nat("dst", ip_int(b.ip), 8080)) for b in (B1, B2)]
    # egress un-DNAT per backend, ARP for the VIP, MAC rewrite for backends in the switch
    assert len(_table(e, "ls_out_lb")) == 2
    nat = _table(e, "ls_in_lb_nat")
    assert {a.value for f in nat if f.priority == 5 for a in f.actions if isinstance(a, SetField)} == {
        0xF2010A0A0102, 0xF2010A0A0103}
    hairpin = [f for f in nat if f.priority == 10]
    assert len(hairpin) == 2 and all(isinstance(f.actions[0], CtClear) for f in hairpin)
    assert all(f.actions[-1].nat == Nat("src", ip_int(VIP)) for f in hairpin)
    arp = [f for f in e.active.values() if f.table == S.table("arp_respond")
           and any(m.field == "arp_tpa" and m.value == ip_int(VIP) for m in f.match)]
    assert len(arp) == 1


def test_health_verdict_removes_backend_and_all_down_drops():
    lb = _lb()
    e = _engine(_facts(lb, down=((lb, B1),)))
    gid = _table(e, "ls_in_lb_sel")[0].actions[0].group_id
    (g,) = [g for g in _groups(e) if g.group_id == gid]
    assert [b.actions[0].nat.ip for b in g.buckets] == [ip_int(B2.ip)]
    e = _engine(_facts(lb, down=((lb, B1), (lb, B2))))
    sel = _table(e, "ls_in_lb_sel")
    assert len(sel) == 1 and sel[0].actions == (Resubmit(S.table("drop")),)
    assert not [g for g in _groups(e) if g.group_id & 0x8000]
    # established connections to a down backend still get un-DNATed
    assert len(_table(e, "ls_out_lb")) == 2


def test_affinity_uses_multipath_on_source_ip():
    e = _engine(_facts(_lb(affinity=60)))
    sel = _table(e, "ls_in_lb_sel")
    mp = [f for f in sel if f.priority == 10]
    assert len(mp) == 1 and isinstance(mp[0].actions[0], Multipath)
    assert mp[0].actions[0].fields == "nw_src" and mp[0].actions[0].n_links == 2
    per_backend = [f for f in sel if f.priority == 5]
    assert sorted(f.actions[0].nat.ip for f in per_backend) == sorted(ip_int(b.ip) for b in (B1, B2))


def test_udp_and_router_lb_on_pinned_router():
    rlb = LoadBalancer("LR", "LR-central", "dns", "10.10.9.9", 53, "udp", (Backend("10.10.2.2", 5353),))
    f = _facts(rlb)
    f[("LR", "LR-central")] = LR("LR-central", 3, "hv1")
    e = _engine(f)
    entry = _table(e, "lr_in_lb")
    assert {f.priority for f in entry} == {10, 5, 4}
    vip = [f for f in entry if f.priority == 10][0]
    assert {m.field for m in vip.match} >= {"udp_dst", "nw_dst"} and vip.actions[0].zone == 3
    f[("LR", "LR-central")] = LR("LR-central", 3, "hv2")  # pinned elsewhere: nothing here
    e = _engine(f)
    assert not _table(e, "lr_in_lb")


def test_group_ids_distinct_and_stable():
    lbs = [_lb(name=f"lb{i}", vip=f"10.10.1.{100 + i}") for i in range(60)]
    e = _engine(_facts(*lbs))
    gids = [f.actions[0].group_id for f in _table(e, "ls_in_lb_sel")]
    assert len(gids) == 60 and len(set(gids)) == 60
    e2 = _engine(_facts(*lbs[:30]))
    assert set(f.actions[0].group_id for f in _table(e2, "ls_in_lb_sel")) <= set(gids)


def test_stage_contract_and_incremental_equals_full():
    lb = _lb()
    full = _facts(lb, _lb(name="aff", vip="10.10.1.101", affinity=5),
                  LoadBalancer("LR", "LR-central", "r", "10.10.9.9", 80, "tcp", (B1,)), down=((lb, B2),))
    e = _engine(full)
    for f in e.active.values():
        st = S.stage_of(f.table)
        assert st is not None and st.band(f.priority) is not None, f
        assert {m.field for m in f.match} <= st.matches, f
    inc = Engine(build_view(tutorial_facts()))
    inc.full()
    changed: set = set()
    for k, v in full.items():
        if k[0] in ("ls_lb", "lr_lb", "lbh"):
            inc.view.apply(k, v, changed)
    inc.process(changed)
    assert set(inc.desired()) == set(e.desired())
    assert inc.desired_outputs("group") == e.desired_outputs("group")


def test_offline_trace_follows_the_vip_to_a_backend():
    """The trace interpreter walks the load balancer's flows: ct -> select group -> DNAT to backend:port, the
    backend's MAC as destination, delivered (the group's first bucket: vm2 on hv2, through the tunnel); with
    the client as the first backend, the hairpin: delivered back to it from the VIP."""
    from tuplenet.trace import packet as TP
    from tuplenet.trace.fabric import Fabric, Model

    fab = Fabric(Model(_facts(_lb(backends=(B2, B1)))))
    pkt = TP.packet(dl_src=0xF2010A0A0102, dl_dst=L.lb_mac(VIP), dl_type=0x0800, nw_proto=6, nw_src=ip_int("10.10.1.2"),
                    nw_dst=ip_int(VIP), nw_ttl=64, tcp_src=40000, tcp_dst=80)
    t = fab.trace("LS-A", "vm1", pkt)
    (out,) = t.outcomes
    assert (out["result"], out["chassis"], out["port"]) == ("delivered", "hv2", "vm2"), t.outcomes
    assert (out["packet"]["nw_dst"], out["packet"]["tcp_dst"]) == (ip_int(B2.ip), 8080)
    assert out["packet"]["dl_dst"] == 0xF2010A0A0103
    t = Fabric(Model(_facts(_lb(backends=(B1, B2))))).trace("LS-A", "vm1", pkt)
    (out,) = t.outcomes
    assert (out["result"], out["chassis"], out["port"]) == ("delivered", "hv1", "vm1"), t.outcomes
    assert (out["packet"]["nw_src"], out["packet"]["nw_dst"]) == (ip_int(VIP), ip_int(B1.ip))


def test_shared_backends_get_one_hairpin_flow_per_load_balancer():
    """Two VIPs over the same backends: each hairpin SNAT matches its own connections (ct_mark tag set by
    its DNAT), so neither loses its VIP to the other (same match, different actions would conflict)."""
    a, b = _lb(), _lb(name="web2", vip="10.10.1.101")
    e = _engine(_facts(a, b))
    hairpin = [f for f in _table(e, "ls_in_lb_nat") if f.priority == 10]
    assert len(hairpin) == 4
    assert {f.actions[-1].nat.ip for f in hairpin} == {ip_int(a.vip), ip_int(b.vip)}
    tags = {m.value >> L.TAG_OFS for f in hairpin for m in f.match if m.field == "ct_mark"}
    assert tags == {L.lb_tag(("ls_lb", "LS-A", "web")), L.lb_tag(("ls_lb", "LS-A", "web2"))}
    buckets = [bk for g in _groups(e) for bk in g.buckets]
    assert {bk.actions[0].exec[0].value for bk in buckets} == tags


def test_router_hairpin_covers_the_backends_subnet():
    """A router VIP's client on a backend's own subnet would get the reply straight over the link (missing the
    router's un-DNAT): the router SNATs to the VIP for the whole subnet of the port facing the backend."""
    rlb = LoadBalancer("LR", "LR-central", "r", "10.10.9.9", 80, "tcp", (B1, Backend("192.168.7.7", 80)))
    f = _facts(rlb)
    f[("LR", "LR-central")] = LR("LR-central", 3, "hv1")
    hairpin = [f for f in _table(_engine(f), "lr_in_lb_nat") if f.priority == 10]
    srcs = sorted((m.value, m.mask) for f in hairpin for m in f.match if m.field == "nw_src")
    assert srcs == [(ip_int("10.10.1.0"), 0xFFFFFF00), (ip_int("192.168.7.7"), None)]
