"""Control layer against the in-memory store: semantics, messages, bookkeeping, races, import/export."""

from __future__ import annotations

import pytest

from tuplenet.control import (
    AlreadyExists,
    Conflict,
    ControlError,
    Controller,
    InvalidArgument,
    NotEmpty,
    NotFound,
    VersionMismatch,
    format_export,
    parse_export,
)
from tuplenet.control.memstore import MemStore
from tuplenet.model import DEVICE_IDS_KEY, LSP, VERSION_KEY, ip_book_key
from tuplenet.model.roaring import decode_bitmap


@pytest.fixture
def ctl() -> Controller:
    return Controller(MemStore())


def keys(ctl: Controller) -> set[str]:
    return set(ctl.store.data)


def test_switch_lifecycle_and_bookkeeping(ctl):
    a = ctl.add_switch(" ls1 ")
    b = ctl.add_switch("ls2")
    assert (a.name, a.id, b.id) == ("ls1", 1, 2)
    assert ctl.store.get(VERSION_KEY).value == "1"
    assert decode_bitmap(ctl.store.get(DEVICE_IDS_KEY).value) == {1, 2}
    with pytest.raises(AlreadyExists, match="/entity_view/LS/ls1 already exists"):
        ctl.add_switch("ls1")
    p = ctl.add_switch_port("ls1", "p1", "10.0.0.2")
    assert p == LSP("ls1", "p1", "10.0.0.2", "f2:01:0a:00:00:02")
    assert decode_bitmap(ctl.store.get(ip_book_key("LS", "ls1")).value) == {2}
    with pytest.raises(NotEmpty, match='failed to delete ls1: there are remaining ports, consider using "-r"?'):
        ctl.delete_switch("ls1")
    ctl.delete_switch("ls1", recursive=True)
    assert decode_bitmap(ctl.store.get(DEVICE_IDS_KEY).value) == {2}
    assert not any(k.startswith("entity_view/LS/ls1") or k == ip_book_key("LS", "ls1") for k in keys(ctl))
    assert ctl.add_switch("ls3").id == 1  # freed id reused (smallest free)
    ctl.delete_switch("ls3")
    ctl.delete_switch("ls2")
    assert keys(ctl) == {VERSION_KEY}  # 0.3: only the version key remains


def test_port_errors(ctl):
    ctl.add_switch("ls1")
    with pytest.raises(NotFound, match="unable to get switch nope: .*key not found"):
        ctl.add_switch_port("nope", "p1", "10.0.0.2")
    with pytest.raises(InvalidArgument, match="invalid IP"):
        ctl.add_switch_port("ls1", "p1", "10.0.0.256")
    with pytest.raises(InvalidArgument, match="invalid MAC address"):
        ctl.add_switch_port("ls1", "p1", "10.0.0.2", "zz")
    with pytest.raises(InvalidArgument, match='"/" is not allowed'):
        ctl.add_switch_port("ls1", "a/b", "10.0.0.2")
    ctl.add_switch_port("ls1", "p1", "10.0.0.2", "AA:BB:CC:DD:EE:FF")
    with pytest.raises(AlreadyExists, match="switch ls1 port p1 exists"):
        ctl.add_switch_port("ls1", "p1", "10.0.0.3")
    with pytest.raises(Conflict, match="lower 16 bits of 10.0.0.2 conflict with other IP"):
        ctl.add_switch_port("ls1", "p2", "10.0.0.2")
    with pytest.raises(Conflict, match="lower 16 bits of 10.1.0.2 conflict with other IP"):
        ctl.add_switch_port("ls1", "p2", "10.1.0.2")
    ctl.add_switch("ls2")
    ctl.add_switch_port("ls2", "p1", "10.0.0.2")  # same name and IP in another switch is fine
    with pytest.raises(NotFound, match="unable to get switch port p9"):
        ctl.delete_switch_port("ls1", "p9")
    ctl.delete_switch_port("ls1", "p1")
    assert ctl.store.get(ip_book_key("LS", "ls1")) is None  # empty book deleted
    ctl.add_switch_port("ls1", "p2", "10.0.0.2")


def test_patch_port_one_per_switch(ctl):
    ctl.add_switch("ls1")
    pp = ctl.add_patch_port("ls1", "pp", "hv1", "br-ex")
    assert pp.to_value() == "ip=255.255.255.255,mac=ff:ff:ff:ff:ff:ee,peer=br-ex,chassis=hv1"
    with pytest.raises(Conflict, match="lower 16 bits of 255.255.255.255"):
        ctl.add_patch_port("ls1", "pp2", "hv2", "br-ex")


def test_router_link_routes_nat_and_delete(ctl):
    ctl.add_switch("ls1")
    lr = ctl.add_router("lr1", "hv1")
    assert lr.to_value() == "id=2,chassis=hv1"
    sp, rp = ctl.link("lr1", "ls1", "10.0.0.1/24")
    assert sp.to_value() == "ip=10.0.0.1,mac=f2:01:0a:00:00:01,peer=lr1_to_ls1"
    assert rp.to_value() == "ip=10.0.0.1,prefix=24,mac=f2:01:0a:00:00:01,peer=ls1_to_lr1"
    with pytest.raises(AlreadyExists, match="switch port ls1_to_lr1 exists"):
        ctl.link("lr1", "ls1", "10.0.0.9/24")
    with pytest.raises(InvalidArgument, match="invalid CIDR address: 10.0.0.1"):
        ctl.add_router_port("lr1", "x", "10.0.0.1")
    with pytest.raises(AlreadyExists, match="router port lr1_to_ls1 exists"):
        ctl.add_router_port("lr1", "lr1_to_ls1", "10.0.1.1/24")
    with pytest.raises(InvalidArgument, match="invalid next_hop: x"):
        ctl.add_static_route("lr1", "r1", "0.0.0.0/0", "x", "lr1_to_ls1")
    ctl.add_static_route("lr1", "r1", "0.0.0.0/0", "10.0.0.254", "lr1_to_ls1")
    with pytest.raises(AlreadyExists, match="router lr1 static route r1 exists"):
        ctl.add_static_route("lr1", "r1", "0.0.0.0/0", "10.0.0.254", "lr1_to_ls1")
    with pytest.raises(InvalidArgument, match="invalid translate type, must be snat/dnat: foo"):
        ctl.add_nat("lr1", "n1", "10.0.0.0/24", "foo", "1.1.1.1")
    with pytest.raises(InvalidArgument, match="invalid translate IP: 1.1.1"):
        ctl.add_nat("lr1", "n1", "10.0.0.0/24", "SNAT", "1.1.1")
    assert ctl.add_nat("lr1", "n1", "10.0.0.0/24", "SNAT", "1.1.1.1").xlate_type == "snat"
    with pytest.raises(AlreadyExists, match="router NAT n1 exists"):
        ctl.add_nat("lr1", "n1", "10.0.0.0/24", "snat", "1.1.1.1")
    with pytest.raises(NotEmpty, match="remaining ports or static routes"):
        ctl.delete_router("lr1")
    ctl.delete_router_port("lr1", "lr1_to_ls1")
    ctl.delete_static_route("lr1", "r1")
    with pytest.raises(NotEmpty, match="remaining NAT rules"):  # 0.3 left orphan lnat keys here
        ctl.delete_router("lr1")
    ctl.delete_router("lr1", recursive=True)
    assert not any(k.startswith("entity_view/LR/") for k in keys(ctl))


def test_lr_del_recursive_removes_nat(ctl):
    ctl.add_router("lr1")
    ctl.add_nat("lr1", "n1", "10.0.0.0/24", "dnat", "1.1.1.1")
    ctl.delete_router("lr1", recursive=True)
    assert not any("lnat" in k for k in keys(ctl))


def test_03_tree_without_bookkeeping(ctl):
    """A tree written raw (no globals/, no ip_book/): ids and port ids come from the tree itself."""
    s = ctl.store
    s.put("entity_view/LS/ls1", "id=7")
    s.put("entity_view/LR/lr1", "id=1")
    s.put("entity_view/LS/ls1/lsp/p1", "ip=10.0.0.2,mac=f2:01:0a:00:00:02,chassis=hv1,peer=x")
    with pytest.raises(Conflict, match="lower 16 bits"):
        ctl.add_switch_port("ls1", "p2", "10.9.0.2")
    assert ctl.add_switch("ls2").id == 2
    assert decode_bitmap(s.get(DEVICE_IDS_KEY).value) == {1, 2, 7}
    ctl.add_switch_port("ls1", "p2", "10.0.0.3")
    assert decode_bitmap(s.get(ip_book_key("LS", "ls1")).value) == {2, 3}


def test_stale_book_is_healed_not_trusted(ctl):
    ctl.add_switch("ls1")
    ctl.add_switch_port("ls1", "p1", "10.0.0.2")
    ctl.store.delete("entity_view/LS/ls1/lsp/p1")  # raw delete leaves a stale bit
    ctl.add_switch_port("ls1", "p2", "10.0.0.2")


def test_race_on_port_id_one_wins(ctl):
    """A writer that commits between our read and our txn makes us re-plan and see the conflict."""
    ctl.add_switch("ls1")
    other = Controller(ctl.store)
    ctl.store.before_txn = lambda s: other.add_switch_port("ls1", "theirs", "10.0.0.2")
    with pytest.raises(Conflict, match="lower 16 bits of 10.0.0.2"):
        ctl.add_switch_port("ls1", "mine", "10.0.0.2")
    assert [p.name for p in ctl.list_switch_ports("ls1")] == ["theirs"]


def test_race_different_ips_both_succeed(ctl):
    ctl.add_switch("ls1")
    other = Controller(ctl.store)
    ctl.store.before_txn = lambda s: other.add_switch_port("ls1", "theirs", "10.0.0.3")
    ctl.add_switch_port("ls1", "mine", "10.0.0.2")
    assert decode_bitmap(ctl.store.get(ip_book_key("LS", "ls1")).value) == {2, 3}


def test_race_port_added_during_switch_delete(ctl):
    ctl.add_switch("ls1")
    other = Controller(ctl.store)
    ctl.store.before_txn = lambda s: other.add_switch_port("ls1", "late", "10.0.0.2")
    with pytest.raises(NotEmpty):
        ctl.delete_switch("ls1")


def test_version_guard(ctl):
    ctl.store.put(VERSION_KEY, "2")
    with pytest.raises(VersionMismatch, match="db accessed by higher version controller: 2, local: 1"):
        ctl.add_switch("ls1")
    ctl.store.put(VERSION_KEY, "0")
    ctl.add_switch("ls1")
    assert ctl.store.get(VERSION_KEY).value == "1"


def test_ipam(ctl):
    ctl.add_switch("ls1")
    got = [ctl.allocate_switch_port("ls1", f"c{i}", "172.16.1.1/28").ip for i in range(13)]
    assert got == [f"172.16.1.{i}" for i in range(2, 15)]
    with pytest.raises(InvalidArgument, match="no free IP"):
        ctl.allocate_switch_port("ls1", "c13", "172.16.1.1/28")
    assert ctl.get_switch_port("ls1", "c0").mac == "f2:01:ac:10:01:02"


def test_chassis(ctl):
    s = ctl.store
    s.put("entity_view/chassis/hv1", "ip=192.168.0.1,tick=1")
    s.put("entity_view/chassis/hv2", "ip=192.168.0.1,tick=2")
    s.put("entity_view/chassis/hv3", "ip=192.168.0.3,tick=3")
    s.put("liveness/chassis/hv3", "ip=192.168.0.3")
    assert [(c.name, live) for c, live in ctl.list_chassis()] == [("hv1", False), ("hv2", False), ("hv3", True)]
    assert ctl.delete_chassis("192.168.0.1") == ["hv1", "hv2"]
    with pytest.raises(NotFound, match="failed to get chassis by ip 192.168.0.9"):
        ctl.delete_chassis("192.168.0.9")
    with pytest.raises(NotFound, match="unable to get chassis nope"):
        ctl.delete_chassis("nope")
    assert ctl.delete_chassis("hv3") == ["hv3"]


def test_toolbox(ctl):
    s = ctl.store
    s.put("entity_view/LS/a", "id=3")
    s.put("entity_view/LR/b", "id=3")
    s.put("entity_view/LS/a/lsp/p1", "ip=10.0.0.2,mac=f2:01:0a:00:00:02")
    s.put("entity_view/LS/a/lsp/p2", "ip=10.0.0.2,mac=f2:01:0a:00:00:03")
    s.put("entity_view/LS/a/lsp/p3", "ip=10.1.0.2,mac=f2:01:0a:00:00:04")
    s.put(ip_book_key("LS", "gone"), "OjAAAAAAAAA=")
    assert ctl.find_id_conflicts() == ["a has the same id of b: 3"]
    msgs = ctl.find_ip_conflicts()
    assert msgs[0] == "in a, p1 use the same IP as p2: 10.0.0.2" and "share port id 2" in msgs[1]
    assert ctl.sync_device_map() == {3}
    assert ctl.rebuild_ip_books() == 2
    assert decode_bitmap(s.get(ip_book_key("LS", "a")).value) == {2}
    assert s.get(ip_book_key("LS", "gone")) is None
    assert ctl.rebuild_ip_books() == 0
    assert Controller.decode_id_string("OjAAAAEAAAAAAAIAEAAAAG8A3gBNAQ==") == [111, 222, 333]


def test_bad_records_are_skipped_with_warning(ctl):
    ctl.store.put("entity_view/LS/good", "id=1")
    ctl.store.put("entity_view/LS/bad", "id=zero")
    assert [s.name for s in ctl.list_switches()] == ["good"]
    assert ctl.warnings == ["entity_view/LS/bad: bad id: invalid id: zero"]
    with pytest.raises(ControlError, match="bad record"):
        ctl.get_switch("bad")
    ctl.delete_switch("bad")  # a bad record can still be removed


def _build(ctl: Controller) -> None:
    ctl.add_switch("ls1")
    ctl.add_router("lr1")
    ctl.link("lr1", "ls1", "10.0.0.1/24")
    for i in range(2, 300):
        ctl.store.put(f"entity_view/LS/ls1/lsp/p{i}",
                      f"ip=10.0.{i // 256}.{i % 256},mac=f2:01:0a:00:00:01,chassis=hv1,future=x")
    ctl.add_static_route("lr1", "r", "0.0.0.0/0", "10.0.0.254", "lr1_to_ls1")
    ctl.add_nat("lr1", "n", "10.0.0.0/24", "snat", "1.1.1.1")
    ctl.store.put("entity_view/chassis/hv1", "ip=1.1.1.1,tick=5")


def test_export_import_roundtrip(ctl):
    _build(ctl)
    records, _ = ctl.export_records()
    text = format_export(records, "test")
    dst = Controller(MemStore())
    result = dst.import_records(parse_export(text))
    assert result.created == len(records) and result.ids_assigned == 0 and result.batches >= 3
    assert dst.export_records()[0] == records
    assert decode_bitmap(dst.store.get(ip_book_key("LS", "ls1")).value) == set(range(1, 300))
    assert decode_bitmap(dst.store.get(DEVICE_IDS_KEY).value) == {1, 2}
    with pytest.raises(InvalidArgument, match="already exists"):
        dst.import_records(parse_export(text))
    assert dst.import_records(parse_export(text), overwrite=True).replaced == len(records)


def test_import_validation_is_all_or_nothing(ctl):
    text = ("entity_view/LS/a\tid=1\n"
            "entity_view/LS/a/lsp/p1\tip=10.0.0.2,mac=f2:01:0a:00:00:02\n"
            "entity_view/LS/a/lsp/p2\tip=10.0.0.2,mac=f2:01:0a:00:00:02\n"
            "entity_view/LS/b/lsp/p1\tip=10.0.0.2,mac=f2:01:0a:00:00:02\n"
            "entity_view/LS/a/lsp/p3\tip=10.0.0.300,mac=f2:01:0a:00:00:02\n"
            "globals/x\ty\n")
    with pytest.raises(InvalidArgument) as exc:
        ctl.import_records(parse_export(text))
    msg = str(exc.value)
    assert "nothing written" in msg and "lower 16 bits" in msg and "switch b not found" in msg
    assert "invalid IP" in msg and "not a topology key" in msg and "\n" not in msg
    assert ctl.store.data == {VERSION_KEY: ctl.store.data[VERSION_KEY]}


def test_import_allocates_missing_and_taken_ids(ctl):
    ctl.add_switch("old")  # takes id 1
    text = "entity_view/LS/a\tid=1\nentity_view/LS/b\t\nentity_view/LR/c\tid=5\nentity_view/LR/d\tid=5\n"
    result = ctl.import_records(parse_export(text))
    ids = {s.name: s.id for s in ctl.list_switches() + ctl.list_routers()}
    assert ids["c"] == 5 and ids["old"] == 1 and len(set(ids.values())) == 5 and result.ids_assigned == 3
    assert ctl.find_id_conflicts() == []


def test_import_rolls_back_on_concurrent_change(ctl):
    _build(ctl)
    records, _ = ctl.export_records()
    dst = Controller(MemStore())
    dst.add_switch("zz")
    calls = {"n": 0}

    def meddle(store):
        calls["n"] += 1
        if calls["n"] == 3:  # after two import batches committed, a writer takes a key of a later batch
            store.put("entity_view/chassis/hv1", "ip=9.9.9.9,tick=1")
        else:
            store.before_txn = meddle

    before = dict(dst.store.data)
    dst.store.before_txn = meddle
    with pytest.raises(ControlError, match="import aborted"):
        dst.import_records([(0, k, v) for k, v in records])
    after = {k: v for k, v in dst.store.data.items() if k != "entity_view/chassis/hv1"}
    assert after.keys() == before.keys()


def test_link_with_mac_and_port_with_empty_mac(ctl):
    ctl.add_switch("ls1")
    ctl.add_router("lr1")
    sp, rp = ctl.link("lr1", "ls1", "10.0.0.1/24", "02:00:00:00:00:01")  # 0.3 could not take a MAC here
    assert sp.mac == rp.mac == "02:00:00:00:00:01"
    p = ctl.add_switch_port("ls1", "p1", "10.0.0.2", "", "lr9")
    assert (p.mac, p.peer) == ("f2:01:0a:00:00:02", "lr9")
    with pytest.raises(InvalidArgument, match='"," is not allowed'):
        ctl.add_switch_port("ls1", "p2", "10.0.0.3", None, "a,b")


@pytest.mark.parametrize("name,bridge,reason", [
    ("p", "br-int", "peer bridge cannot be the integration bridge br-int"),
    ("br-int", "br-ex", "patch port name br-int is the name of a bridge"),
    ("br-ex", "br-ex", "patch port name br-ex is the name of a bridge"),
    ("x", "x-peer", "patch port name x-peer is the name of a bridge"),
    ("tupleNet-3232235777", "br-ex", "reserved prefix tupleNet-"),
    ("tupleNet-flowbased", "br-ex", "reserved prefix tupleNet-"),
    ("p", "tupleNet-1", "reserved prefix tupleNet-"),
    ("p", "br-way-too-long-name", "invalid OVS bridge name"),
    ("p", "br:1", "invalid OVS bridge name"),
    ("p", "br ex", "invalid OVS bridge name"),
    ("p", "brü", "invalid OVS bridge name"),
    ("pé", "br-ex", "invalid OVS port name"),
    ("p q", "br-ex", "invalid OVS port name"),
    ("p" * 61, "br-ex", "invalid OVS port name"),
])
def test_patch_port_names_the_agent_cannot_own_are_refused(ctl, name, bridge, reason):
    ctl.add_switch("ls1")
    before = dict(ctl.store.data)
    with pytest.raises(InvalidArgument, match=reason):
        ctl.add_patch_port("ls1", name, "hv1", bridge)
    with pytest.raises(InvalidArgument, match=reason):  # the same record through lsp add
        ctl.add_switch_port("ls1", name, "255.255.255.255", None, bridge)
    assert ctl.store.data == before
    text = format_export([("entity_view/LS/ls1", "id=1"),
                          (f"entity_view/LS/ls1/lsp/{name}",
                           f"ip=255.255.255.255,mac=ff:ff:ff:ff:ff:ee,peer={bridge},chassis=hv1")])
    with pytest.raises(InvalidArgument, match=reason):
        ctl.import_records(parse_export(text), overwrite=True)
    assert ctl.store.data == before


# ---- requested chassis (where a port is requested: binding and early tunnels, docs/architecture.md) ---------

VM1 = "entity_view/LS/ls1/lsp/vm1"


def test_requested_chassis_at_creation(ctl):
    ctl.add_switch("ls1")
    p = ctl.add_switch_port("ls1", "vm1", "10.0.0.2", requested_chassis=" hv2 ")
    assert p.requested_chassis == "hv2" and p.chassis is None
    assert ctl.store.get(VM1).value == "ip=10.0.0.2,mac=f2:01:0a:00:00:02,requested_chassis=hv2"
    assert ctl.add_switch_port("ls1", "vm2", "10.0.0.3", requested_chassis="").requested_chassis is None
    got = ctl.allocate_switch_port("ls1", "c1", "10.0.0.0/24", chassis="hv1", requested_chassis="hv2")
    assert (got.ip, got.chassis, got.requested_chassis) == ("10.0.0.4", "hv1", "hv2")
    assert ctl.get_switch_port("ls1", "c1") == got


@pytest.mark.parametrize("value,message", [
    ("a,b", """invalid requested chassis 'a,b': "," is not allowed"""),
    ("a/b", """invalid requested chassis 'a/b': "/" is not allowed"""),
    ("h\nv", "invalid requested chassis 'h\\nv': control characters are not allowed in names"),
])
def test_requested_chassis_bad_names_write_nothing(ctl, value, message):
    ctl.add_switch("ls1")
    ctl.add_switch_port("ls1", "vm1", "10.0.0.2")
    before = dict(ctl.store.data)
    for call in (lambda: ctl.add_switch_port("ls1", "vm2", "10.0.0.3", requested_chassis=value),
                 lambda: ctl.allocate_switch_port("ls1", "vm2", "10.0.0.0/24", requested_chassis=value),
                 lambda: ctl.set_requested_chassis("ls1", "vm1", value)):
        with pytest.raises(InvalidArgument) as exc:
            call()
        assert str(exc.value) == message
    assert ctl.store.data == before


def test_set_requested_chassis_moves_keeps_chassis_and_clears(ctl):
    ctl.add_switch("ls1")
    ctl.add_switch_port("ls1", "vm1", "10.0.0.2", chassis="hv1")
    ctl.store.put(VM1, ctl.store.get(VM1).value + ",future=x")  # a field of a newer tool survives the rewrite
    moved = ctl.set_requested_chassis("ls1", "vm1", "hv2")
    assert (moved.chassis, moved.requested_chassis) == ("hv1", "hv2")  # the agents hand it over, not us
    assert ctl.store.get(VM1).value == "ip=10.0.0.2,mac=f2:01:0a:00:00:02,chassis=hv1,requested_chassis=hv2,future=x"
    rev = ctl.store.rev
    assert ctl.set_requested_chassis("ls1", "vm1", " hv2 ") == moved
    assert ctl.store.rev == rev  # already so: nothing written (an agent's claim CAS is not disturbed)
    cleared = ctl.set_requested_chassis("ls1", "vm1", None)
    assert (cleared.chassis, cleared.requested_chassis) == ("hv1", None)
    assert ctl.store.get(VM1).value == "ip=10.0.0.2,mac=f2:01:0a:00:00:02,chassis=hv1,future=x"
    rev = ctl.store.rev
    ctl.set_requested_chassis("ls1", "vm1", None)
    assert ctl.store.rev == rev


def test_set_requested_chassis_refusals(ctl):
    ctl.add_switch("ls1")
    ctl.add_router("lr1")
    ctl.link("lr1", "ls1", "10.0.0.1/24")
    ctl.add_patch_port("ls1", "pp", "hv1", "br-ex")
    ctl.add_switch_port("ls1", "vm1", "10.0.0.2")
    before = dict(ctl.store.data)
    with pytest.raises(NotFound, match="unable to get switch nope"):
        ctl.set_requested_chassis("nope", "vm1", "hv2")
    with pytest.raises(NotFound, match="unable to get switch port p9: unable to read key"):
        ctl.set_requested_chassis("ls1", "p9", "hv2")
    with pytest.raises(InvalidArgument, match="invalid requested chassis '': string provided contains only spaces"):
        ctl.set_requested_chassis("ls1", "vm1", "")  # never read as "clear"
    with pytest.raises(InvalidArgument, match='"/" is not allowed'):
        ctl.set_requested_chassis("ls1", "vm1/x", "hv2")
    with pytest.raises(InvalidArgument, match="for VM ports: pp is a patch port"):
        ctl.set_requested_chassis("ls1", "pp", "hv2")
    with pytest.raises(InvalidArgument, match="for VM ports: ls1_to_lr1 faces router port lr1_to_ls1"):
        ctl.set_requested_chassis("ls1", "ls1_to_lr1", "hv2")
    with pytest.raises(InvalidArgument, match="for VM ports: vm2 faces router port up"):
        ctl.add_switch_port("ls1", "vm2", "10.0.0.3", None, "up", requested_chassis="hv2")
    assert ctl.store.data == before
    ctl.store.put(VM1, "ip=10.0.0.2,mac=zz")
    with pytest.raises(ControlError, match="bad record in etcd"):
        ctl.set_requested_chassis("ls1", "vm1", "hv2")


def test_set_requested_chassis_replans_after_a_claim(ctl):
    """An agent's claim lands between our read and our write: the compare fails, the re-plan keeps the claim."""
    ctl.add_switch("ls1")
    ctl.add_switch_port("ls1", "vm1", "10.0.0.2")

    def claim(store: MemStore) -> None:
        store.put(VM1, "ip=10.0.0.2,mac=f2:01:0a:00:00:02,chassis=hv3")

    ctl.store.before_txn = lambda s: setattr(s, "before_txn", claim)  # our read passes, our write meets the claim
    port = ctl.set_requested_chassis("ls1", "vm1", "hv2")
    assert (port.chassis, port.requested_chassis) == ("hv3", "hv2")
    assert ctl.store.get(VM1).value == "ip=10.0.0.2,mac=f2:01:0a:00:00:02,chassis=hv3,requested_chassis=hv2"
