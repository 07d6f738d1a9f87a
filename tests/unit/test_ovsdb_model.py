"""The pure OVSDB planner and state extraction: 0.3 naming/ownership rules without a switch."""

from __future__ import annotations

import pytest

from tuplenet.agent.ovsdb_model import (
    D_BFD,
    D_BRIDGE,
    D_EXTIDS,
    D_PATCH,
    D_TUNNELS,
    FLOWBASED_PORT,
    OF_PROTOCOLS,
    BridgeView,
    DbView,
    Desired,
    IfaceView,
    OvsState,
    PortView,
    state_from_view,
    tunnel_port_name,
    validate_tunnels,
)
from tuplenet.agent.ovsdb_plan import AddPort, CreateBridge, DelPort, FixBridge, FixIface, Planner, plan

GOOD_BR = dict(fail_mode="secure", protocols=frozenset(OF_PROTOCOLS), other_config={"disable-in-band": "true"})
FLOWBASED = PortView(FLOWBASED_PORT, (IfaceView(FLOWBASED_PORT, "geneve",
                                                {"remote_ip": "flow", "key": "flow", "csum": "true"},
                                                {"tuplenet-role": "flowbased"}, ofport=1),))


def tun(ip: str, chassis: str, ofport: int = 5, **kw: object) -> PortView:
    name = tunnel_port_name(ip)
    return PortView(name, (IfaceView(name, "geneve", {"remote_ip": ip, "key": "flow", "csum": "true"},
                                     {"chassis-id": chassis}, ofport=ofport, **kw),))  # type: ignore[arg-type]


def vm(name: str, iface_id: str, ofport: int) -> PortView:
    return PortView(name, (IfaceView(name, "dummy", {}, {"iface-id": iface_id}, ofport=ofport),))


def view(*ports: PortView, others: dict[str, BridgeView] | None = None, **br: object) -> DbView:
    b = BridgeView("br-int", ports=ports, **{**GOOD_BR, **br})  # type: ignore[arg-type]
    return DbView(system_id="hv1", bridges={"br-int": b, **(others or {})})


def test_tunnel_port_name_is_0_3_naming() -> None:
    assert tunnel_port_name("192.168.100.2") == "tupleNet-3232261122"
    assert tunnel_port_name("0.0.0.1") == "tupleNet-1"


def test_validate_tunnels() -> None:
    assert validate_tunnels({"a": "10.0.0.1"}) == {"a": "10.0.0.1"}
    with pytest.raises(ValueError, match="bad tunnel IPv4"):
        validate_tunnels({"a": "fe80::1"})
    with pytest.raises(ValueError, match="share tunnel IP"):
        validate_tunnels({"a": "10.0.0.1", "b": "10.0.0.1"})
    with pytest.raises(ValueError, match="bad chassis"):
        validate_tunnels({"": "10.0.0.1"})


def test_missing_bridge_is_created_with_copied_datapath_type() -> None:
    v = DbView(bridges={"br-phy": BridgeView("br-phy", datapath_type="netdev"), "a": BridgeView("a")})
    p = plan(v, Desired(ensure_bridge=True, bridge_external_ids={"k": "v", "gone": None}))
    assert p.actions == [CreateBridge("br-int", "netdev", {"k": "v"})]
    assert {D_TUNNELS, D_PATCH, D_EXTIDS, D_BFD} <= p.blocked and not p.converged(D_BRIDGE)
    explicit = plan(v, Desired(ensure_bridge=True, datapath_type="system"))
    assert explicit.actions == [CreateBridge("br-int", "system", {})]


def test_missing_bridge_without_root_row_is_an_error() -> None:
    p = plan(DbView(has_root=False), Desired(ensure_bridge=True))
    assert D_BRIDGE in p.errors and not p.actions


def test_missing_bridge_not_wanted_blocks_but_creates_nothing() -> None:
    p = plan(DbView(), Desired(tunnels={"hv2": "10.0.0.2"}))
    assert not p.actions and D_TUNNELS in p.blocked


def test_existing_bridge_is_fixed_not_recreated() -> None:
    v = view(FLOWBASED, fail_mode="standalone", protocols=frozenset({"OpenFlow12"}), other_config={})
    p = plan(v, Desired(ensure_bridge=True))
    assert p.actions == [FixBridge("br-int", fail_mode="secure", protocols=tuple(sorted({"OpenFlow12", *OF_PROTOCOLS})),
                                   other_config={"disable-in-band": "true"})]
    assert plan(view(FLOWBASED), Desired(ensure_bridge=True)).actions == []


def test_tunnels_converged_means_no_writes() -> None:
    v = view(FLOWBASED, tun("10.0.0.2", "hv2"), tun("10.0.0.3", "hv3"))
    p = plan(v, Desired(ensure_bridge=True, tunnels={"hv2": "10.0.0.2", "hv3": "10.0.0.3"}))
    assert p.actions == [] and p.converged(D_TUNNELS)


def test_tunnel_ip_change_replaces_and_removed_chassis_deleted() -> None:
    v = view(FLOWBASED, tun("10.0.0.2", "hv2"), tun("10.0.0.3", "hv3"), vm("vm1", "lsp1", 7))
    p = plan(v, Desired(tunnels={"hv2": "10.0.0.22"}))
    added = [a.spec.name for a in p.actions if isinstance(a, AddPort)]
    deleted = {a.name for a in p.actions if isinstance(a, DelPort)}
    assert added == ["tupleNet-167772182"]
    assert deleted == {"tupleNet-167772162", "tupleNet-167772163"}  # never vm1
    spec = next(a.spec for a in p.actions if isinstance(a, AddPort))
    assert spec.options == {"remote_ip": "10.0.0.22", "key": "flow", "csum": "true"}
    assert spec.external_ids == {"chassis-id": "hv2"} and spec.type == "geneve"


def test_unmanaged_tunnels_are_left_alone() -> None:
    v = view(FLOWBASED, tun("10.0.0.2", "hv2"))
    assert plan(v, Desired(ensure_bridge=True)).actions == []


def test_same_name_other_chassis_is_fixed_in_place() -> None:
    v = view(FLOWBASED, tun("10.0.0.2", "old"))
    p = plan(v, Desired(tunnels={"new": "10.0.0.2"}))
    assert p.actions == [FixIface("tupleNet-167772162", D_TUNNELS, external_ids={"chassis-id": "new"})]


def test_wrong_options_fixed_in_place_and_foreign_keys_kept() -> None:
    port = tun("10.0.0.2", "hv2")
    iface = port.ifaces[0]
    bad = PortView(port.name, (IfaceView(iface.name, "vxlan", {"remote_ip": "10.0.0.2"},
                                         {"chassis-id": "hv2", "owner": "someone"}, ofport=5),))
    p = plan(view(FLOWBASED, bad), Desired(tunnels={"hv2": "10.0.0.2"}))
    assert p.actions == [FixIface(port.name, D_TUNNELS, type="geneve",
                                  options={"remote_ip": "10.0.0.2", "key": "flow", "csum": "true"})]


def test_port_on_wrong_bridge_is_moved() -> None:
    other = BridgeView("br-x", ports=(tun("10.0.0.2", "hv2"),))
    p = plan(view(FLOWBASED, others={"br-x": other}), Desired(tunnels={"hv2": "10.0.0.2"}))
    assert p.actions[0] == DelPort("br-x", "tupleNet-167772162", D_TUNNELS)
    assert isinstance(p.actions[1], AddPort) and p.actions[1].spec.bridge == "br-int"


def test_bfd_only_on_referenced_chassis() -> None:
    v = view(FLOWBASED, tun("10.0.0.2", "hv2"), tun("10.0.0.3", "hv3"))
    p = plan(v, Desired(tunnels={"hv2": "10.0.0.2", "hv3": "10.0.0.3"}, bfd={"hv2": True}))
    assert p.actions == [FixIface("tupleNet-167772162", D_BFD, bfd={"enable": "true"})]
    assert p.converged(D_TUNNELS) and not p.converged(D_BFD)
    new = plan(view(FLOWBASED), Desired(tunnels={"hv2": "10.0.0.2"}, bfd={"hv2": False}))
    assert new.actions[0].spec.bfd == {"enable": "false"}  # type: ignore[union-attr]
    assert D_BFD in new.blocked


def test_patch_ports_need_peer_bridge_and_keep_br_int_side() -> None:
    d = Desired(patch_ports={"lsp-ext": "br-ext"})
    assert plan(view(), d).actions == []
    ext = BridgeView("br-ext")
    p = plan(view(others={"br-ext": ext}), d)
    specs = {a.spec.name: a.spec for a in p.actions if isinstance(a, AddPort)}
    assert specs["lsp-ext"].bridge == "br-int" and specs["lsp-ext"].options == {"peer": "lsp-ext-peer"}
    assert specs["lsp-ext"].external_ids == {"iface-id": "lsp-ext", "tuplenet-role": "patch"}
    assert specs["lsp-ext-peer"].bridge == "br-ext" and specs["lsp-ext-peer"].options == {"peer": "lsp-ext"}
    assert specs["lsp-ext-peer"].external_ids == {"iface-id": "lsp-ext-peer", "tuplenet-role": "patch"}
    # Peer bridge gone: the br-int side stays while the lsp is wanted, and goes with it.
    inner = PortView("lsp-ext", (IfaceView("lsp-ext", "patch", {"peer": "lsp-ext-peer"},
                                           {"iface-id": "lsp-ext", "tuplenet-role": "patch"}, ofport=3),))
    assert plan(view(inner), d).actions == []
    assert plan(view(inner), Desired(patch_ports={})).actions == [DelPort("br-int", "lsp-ext", D_PATCH)]


def test_bridge_external_ids_set_and_delete() -> None:
    v = view(external_ids={"a": "1", "b": "2"})
    p = plan(v, Desired(bridge_external_ids={"a": "1", "b": None, "c": "3"}))
    assert p.actions == [FixBridge("br-int", external_ids={"b": None, "c": "3"}, domain=D_EXTIDS)]


def test_state_from_view() -> None:
    unbound = PortView("vm2", (IfaceView("vm2", "dummy", {}, {"iface-id": "lsp2"}, ofport=-1),))
    v = view(FLOWBASED, tun("10.0.0.2", "hv2", ofport=4, bfd_status={"state": "up"}), tun("10.0.0.3", "hv3", ofport=-1),
             vm("vm1", "lsp1", 7), unbound, external_ids={"k": "v"})
    st = state_from_view(v, "br-int", connected=True, seqno=0)
    assert st.system_id == "hv1" and st.bridge_exists and st.bridges == frozenset({"br-int"})
    assert st.bindings == {"lsp1": 7}
    assert st.tunnels == {"hv2": 4} and st.tunnel_ips == {"hv2": "10.0.0.2", "hv3": "10.0.0.3"}
    assert st.tunnel_bfd == {"hv2": {"state": "up"}}
    assert st.flowbased_ofport == 1 and st.bridge_external_ids == {"k": "v"}
    assert st.same_as(state_from_view(v, "br-int", connected=True, seqno=9))
    assert not st.same_as(state_from_view(v, "br-int", connected=False, seqno=0))
    assert not state_from_view(DbView(), "br-int", True, 0).bridge_exists
    assert OvsState().bindings == {}  # constructible with defaults (agent unit tests)


def test_incremental_planner_notices_changed_rows_and_wishes() -> None:
    planner = Planner()
    d = Desired(tunnels={"hv2": "10.0.0.2"})
    good = view(FLOWBASED, tun("10.0.0.2", "hv2"))
    assert planner.plan(good, d, generation=1).actions == []
    assert planner.plan(good, d, generation=1).actions == []  # memo hit
    # The row changed (a new IfaceView): compared again.
    broken = view(FLOWBASED, tun("10.0.0.2", "intruder"))
    assert planner.plan(broken, d, generation=1).actions == [
        FixIface("tupleNet-167772162", D_TUNNELS, external_ids={"chassis-id": "hv2"})]
    # The wish changed (new generation): wanted ports recomputed.
    d.tunnels = {}
    assert planner.plan(good, d, generation=2).actions == [DelPort("br-int", "tupleNet-167772162", D_TUNNELS)]
    # A peer bridge appearing changes the wanted ports even with the same generation.
    d.patch_ports = {"lsp": "br-ext"}
    assert not any(isinstance(a, AddPort) for a in planner.plan(good, d, generation=3).actions)
    with_ext = view(FLOWBASED, tun("10.0.0.2", "hv2"), others={"br-ext": BridgeView("br-ext")})
    added = {a.spec.name for a in planner.plan(with_ext, d, generation=3).actions if isinstance(a, AddPort)}
    assert added == {"lsp", "lsp-peer"}


def test_patch_port_named_like_a_foreign_port_touches_nothing() -> None:
    """A patch lsp named like someone else's port (eth0, a VM tap, the bridge's own port) is never retyped,
    moved or deleted; a 0.3 patch port already pointing at the wanted peer is adopted."""
    ext = BridgeView("br-ext", ports=(PortView("br-ext", (IfaceView("br-ext", "internal"),)),))
    eth0 = PortView("eth0", (IfaceView("eth0", "system", {}, {"other": "x"}, ofport=7),))
    tap = vm("tap1", "vm1", 8)
    own = PortView("br-int", (IfaceView("br-int", "internal", ofport=65534),))
    v = view(eth0, tap, own, others={"br-ext": ext})
    p = plan(v, Desired(patch_ports={"eth0": "br-ext", "tap1": "br-ext", "br-int": "br-ext"}))
    assert p.actions == []
    assert set(p.foreign) == {"eth0", "tap1", "br-int"}
    old = PortView("p03", (IfaceView("p03", "patch", {"peer": "p03-peer"}, {"iface-id": "p03"}, ofport=9),))
    p = plan(view(old, others={"br-ext": ext}), Desired(patch_ports={"p03": "br-ext"}))
    assert not p.foreign and FixIface("p03", D_PATCH, external_ids={"tuplenet-role": "patch"}) in p.actions


def test_patch_port_problems() -> None:
    from tuplenet.agent.ovsdb_model import patch_port_problem

    assert patch_port_problem("p1", "br-ext", "br-int") is None
    assert "integration bridge" in patch_port_problem("p1", "br-int", "br-int")
    assert "bridge" in patch_port_problem("br-int", "br-ext", "br-int")
    assert "tunnel" in patch_port_problem("tupleNet-1", "br-ext", "br-int")
    assert "valid" in patch_port_problem("a b", "br-ext", "br-int")


def test_readiness_marks_planned_per_ofport() -> None:
    marked = PortView("vm2", (IfaceView("vm2", "dummy", {}, {"iface-id": "lsp2", "tuplenet-installed": "true"},
                                        ofport=4),))
    v = view(vm("vm1", "lsp1", 3), marked)
    p = plan(v, Desired(installed={"lsp1": 3}))
    assert p.actions == [FixIface("vm1", "marks", external_ids={"tuplenet-installed": "true"}),
                         FixIface("vm2", "marks", external_ids={"tuplenet-installed": None})]
    assert plan(v, Desired(installed={"lsp1": 99, "lsp2": 4})).actions == []
    assert plan(v, Desired()).actions == []  # not managed yet: marks left as they are


def test_our_patch_ports_are_not_vm_bindings() -> None:
    ours = PortView("p1", (IfaceView("p1", "patch", {"peer": "p1-peer"}, {"iface-id": "p1", "tuplenet-role": "patch"},
                                     ofport=3),))
    st = state_from_view(view(ours, vm("tap", "p1", 4), vm("vm1", "lsp1", 5)), "br-int", connected=True, seqno=0)
    assert st.bindings == {"p1": 4, "lsp1": 5}
    assert st.patch_ofports == {"p1": 3}


# ---- bridge IPFIX (agent/ovsdb_ipfix.py) ----

def _ipfix_spec(**kw: object):
    from tuplenet.agent.ovsdb_ipfix import IpfixSpec

    return IpfixSpec(**{"targets": ("127.0.0.1:4739",), "sampling": 64, "obs_domain_id": 7, "obs_point_id": 0,
                        **kw})  # type: ignore[arg-type]


def _ipfix_row(ours: bool = True, **kw: object):
    from tuplenet.agent.ovsdb_ipfix import IpfixView

    return IpfixView(**{"targets": frozenset({"127.0.0.1:4739"}), "sampling": 64, "obs_domain_id": 7,
                        "obs_point_id": 0, "external_ids": {"tuplenet-role": "ipfix"} if ours else {},
                        **kw})  # type: ignore[arg-type]


def test_ipfix_created_fixed_in_place_and_removed() -> None:
    from tuplenet.agent.ovsdb_ipfix import ClearIpfix, FixIpfix, SetIpfix

    spec = _ipfix_spec()
    assert plan(view(), Desired(ipfix=spec, ipfix_managed=True)).actions == [SetIpfix("br-int", spec)]
    assert plan(view(ipfix=_ipfix_row()), Desired(ipfix=spec, ipfix_managed=True)).actions == []
    # Only the columns that differ are set, on the same row (the exporter keeps its state).
    p = plan(view(ipfix=_ipfix_row()), Desired(ipfix=_ipfix_spec(sampling=1, cache_active_timeout=5),
                                               ipfix_managed=True))
    assert p.actions == [FixIpfix("br-int", {"sampling": [1], "cache_active_timeout": [5]})]
    p = plan(view(ipfix=_ipfix_row(other_config={"x": "1"})), Desired(ipfix=spec, ipfix_managed=True))
    assert p.actions == [FixIpfix("br-int", {"other_config": {}})]
    assert plan(view(ipfix=_ipfix_row()), Desired(ipfix=None, ipfix_managed=True)).actions == [ClearIpfix("br-int")]
    assert plan(view(), Desired(ipfix=None, ipfix_managed=True)).actions == []
    assert plan(view(), Desired(ipfix=None, ipfix_managed=True)).converged("ipfix")


def test_ipfix_not_managed_touches_nothing() -> None:
    assert plan(view(ipfix=_ipfix_row()), Desired()).actions == []
    assert plan(view(), Desired()).actions == []


def test_ipfix_row_we_did_not_create_is_never_touched() -> None:
    foreign = _ipfix_row(ours=False, sampling=2)
    p = plan(view(ipfix=foreign), Desired(ipfix=_ipfix_spec(), ipfix_managed=True))
    assert p.actions == [] and "did not create" in p.errors["ipfix"]
    p = plan(view(ipfix=foreign), Desired(ipfix=None, ipfix_managed=True))
    assert p.actions == [] and not p.errors and p.converged("ipfix")


def test_ipfix_waits_for_the_bridge() -> None:
    p = plan(DbView(system_id="hv1", bridges={}), Desired(ipfix=_ipfix_spec(), ipfix_managed=True))
    assert "ipfix" in p.blocked and not p.actions


def test_ipfix_row_columns() -> None:
    from tuplenet.agent.ovsdb_ipfix import row_columns

    cols = row_columns(_ipfix_spec(other_config=(("enable-tunnel-sampling", "false"),)))
    assert cols == {"targets": ["127.0.0.1:4739"], "sampling": [64], "obs_domain_id": [7], "obs_point_id": [0],
                    "cache_active_timeout": [], "cache_max_flows": [],
                    "other_config": {"enable-tunnel-sampling": "false"}, "external_ids": {"tuplenet-role": "ipfix"}}


@pytest.mark.parametrize(("kw", "msg"), [
    ({"targets": ()}, "at least one"),
    ({"targets": ("127.0.0.1",)}, "bad IPFIX collector"),
    ({"targets": ("host:80",)}, "bad IPFIX collector"),
    ({"targets": ("127.0.0.1:0",)}, "bad IPFIX collector"),
    ({"targets": ("127.0.0.1:65536",)}, "bad IPFIX collector"),
    ({"sampling": 0}, "sampling"),
    ({"sampling": None}, "sampling"),
    ({"sampling": 1 << 32}, "sampling"),
    ({"obs_domain_id": -1}, "obs_domain_id"),
    ({"cache_active_timeout": 4201}, "cache_active_timeout"),
    ({"other_config": (("", "x"),)}, "other_config"),
])
def test_validate_ipfix_rejects(kw: dict, msg: str) -> None:
    from tuplenet.agent.ovsdb_ipfix import validate_ipfix

    with pytest.raises(ValueError, match=msg):
        validate_ipfix(_ipfix_spec(**kw))


def test_validate_ipfix_normalises_targets() -> None:
    from tuplenet.agent.ovsdb_ipfix import validate_ipfix

    spec = validate_ipfix(_ipfix_spec(targets=("10.0.0.2:9", "10.0.0.1:9", "10.0.0.2:9")))
    assert spec.targets == ("10.0.0.1:9", "10.0.0.2:9")


def test_ipfix_wish_from_the_agent_settings() -> None:
    from tuplenet.agent.ovsdb_ipfix import IpfixSpec
    from tuplenet.agent.pipeline.ovswishes import ipfix_wishes

    (w,) = ipfix_wishes(("ipfix",), ("10.0.0.9:4739", 64, "192.168.100.2"))
    assert (w.kind, w.key) == ("ipfix", ())
    assert w.value == IpfixSpec(("10.0.0.9:4739",), 64, obs_domain_id=3232261122, obs_point_id=0,
                                other_config=(("enable-tunnel-sampling", "false"),))
    hash(w.value)  # a wish value must be hashable


def test_ipfix_fact_drives_the_wish_through_the_engine() -> None:
    """The daemon's ("ipfix",) fact becomes one "ipfix" wish; changing it changes the wish, dropping it
    removes the wish (the daemon then pushes an empty set: our row is removed)."""
    from tuplenet.agent.engine import Engine
    from tuplenet.agent.view import View

    v = View()
    v.apply(("self",), "hv1", set())
    v.apply(("ipfix",), ("10.0.0.9:4739", 64, "10.0.0.1"), set())
    e = Engine(v)
    e.full()
    (w,) = e.desired_outputs("wish", "ipfix").values()
    assert w.value.sampling == 64 and w.value.obs_domain_id == 0x0A000001
    changed: set[tuple] = set()
    v.apply(("ipfix",), ("10.0.0.9:4739", 1, "10.0.0.1"), changed)
    d = e.process(changed)
    assert [(c[0], c[2].value.sampling) for c in d.of("wish", "ipfix")] == [(("wish", "ipfix"), 1)]
    changed = set()
    v.apply(("ipfix",), None, changed)
    d = e.process(changed)
    assert [(c[0], c[2]) for c in d.of("wish", "ipfix")] == [(("wish", "ipfix"), None)]
    assert e.desired_outputs("wish", "ipfix") == {}
