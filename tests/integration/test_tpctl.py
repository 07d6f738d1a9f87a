"""tpctl as a subprocess against a real etcd: every command, 0.3 messages, error paths, --json, prompts."""

from __future__ import annotations

import json

import pytest
from test_tpctl_helpers import fails, ok, run

from tuplenet.control import Controller
from tuplenet.model import DEVICE_IDS_KEY, VERSION_KEY, ip_book_key
from tuplenet.model.roaring import decode_bitmap
from tuplenet.store import Store


@pytest.fixture
def store(etcd, prefix):
    s = Store(etcd.endpoint, prefix=prefix)
    yield s
    s.delete_prefix("")
    s.close()


@pytest.fixture
def ctl(store) -> Controller:
    return Controller(store)


def test_switch_commands(etcd, prefix, store):
    assert ok(etcd, prefix, "ls", "show") == "empty data set\n"
    assert ok(etcd, prefix, "-j", "ls", "show") == "[]\n"
    assert ok(etcd, prefix, "ls", "add", "ls1") == "switch ls1 created\n"
    assert ok(etcd, prefix, "ls", "a", "ls0") == "switch ls0 created\n"
    assert ok(etcd, prefix, "ls", "show") == "ls0:\n  - id: 2\n\nls1:\n  - id: 1\n\n"
    assert json.loads(ok(etcd, prefix, "ls", "s", "ls1", "-j")) == [{"name": "ls1", "id": 1}]
    assert store.get(VERSION_KEY).value == "1"
    assert decode_bitmap(store.get(DEVICE_IDS_KEY).value) == {1, 2}
    fails(etcd, prefix, "ls", "add", "ls1", match="already exists")
    fails(etcd, prefix, "ls", "add", "a/b", match='"/" is not allowed')
    fails(etcd, prefix, "ls", "add", "   ", match="string provided contains only spaces")
    fails(etcd, prefix, "ls", "add", match="require a name")
    fails(etcd, prefix, "ls", "show", "a", "b", match="require at most one name")
    fails(etcd, prefix, "ls", "show", "nope", match="not found")
    fails(etcd, prefix, "ls", "del", "nope", match="not found")
    assert ok(etcd, prefix, "ls", "d", "ls0") == "ls0 deleted\n"


def test_switch_port_commands(etcd, prefix, ctl):
    ctl.add_switch("ls1")
    assert ok(etcd, prefix, "lsp", "add", "ls1", "p1", "10.0.0.2") == "switch ls1 port p1 created\n"
    ok(etcd, prefix, "lsp", "a", "ls1", "p2", "10.0.0.3", "AA:BB:CC:DD:EE:FF", "peer1")
    assert ok(etcd, prefix, "lsp", "show", "ls1", "p2") == (
        "p2:\n  - ip     : 10.0.0.3\n  - mac    : aa:bb:cc:dd:ee:ff\n  - peer   : peer1\n  - chassis: \n\n")
    ports = json.loads(ok(etcd, prefix, "-j", "lsp", "show", "ls1"))
    assert [p["name"] for p in ports] == ["p1", "p2"]
    assert ports[0] == {"switch": "ls1", "name": "p1", "ip": "10.0.0.2", "mac": "f2:01:0a:00:00:02",
                        "peer": None, "chassis": None, "requested_chassis": None,
                        "ready": "false"}  # bound nowhere: not ready
    fails(etcd, prefix, "lsp", "add", "ls1", "p3", "10.0.0.256", match="invalid IP")
    fails(etcd, prefix, "lsp", "add", "ls1", "p3", "10.0.0.4", "zz:zz", match="invalid MAC address")
    fails(etcd, prefix, "lsp", "add", "ls1", "p1", "10.0.0.9", match="switch ls1 port p1 exists")
    fails(etcd, prefix, "lsp", "add", "nope", "p1", "10.0.0.9", match="unable to get switch nope")
    fails(etcd, prefix, "lsp", "add", "ls1", "p3", "10.0.0.2", match="lower 16 bits of 10.0.0.2 conflict")
    fails(etcd, prefix, "lsp", "add", "ls1", "p3", "10.7.0.3", match="lower 16 bits of 10.7.0.3 conflict")
    fails(etcd, prefix, "lsp", "add", "ls1", "p3", match="require a switch name, a port name, an IP")
    fails(etcd, prefix, "lsp", "show", "ls1", "p9", match="not found")
    fails(etcd, prefix, "lsp", "del", "ls1", "p9", match="not found")
    assert ok(etcd, prefix, "lsp", "d", "ls1", "p1") == "switch ls1 port p1 deleted\n"
    ok(etcd, prefix, "lsp", "add", "ls1", "p3", "10.7.0.2")  # the freed port id is usable again
    fails(etcd, prefix, "ls", "del", "ls1",
          match='failed to delete ls1: there are remaining ports, consider using "-r"?')


def test_requested_chassis_at_add_and_move(etcd, prefix, ctl, store):
    ctl.add_switch("ls1")
    key = "entity_view/LS/ls1/lsp/vm1"
    assert ok(etcd, prefix, "lsp", "add", "ls1", "vm1", "10.0.0.2", "--requested-chassis", "hv1") == \
        "switch ls1 port vm1 created\n"
    assert store.get(key).value == "ip=10.0.0.2,mac=f2:01:0a:00:00:02,requested_chassis=hv1"
    ok(etcd, prefix, "lsp", "a", "ls1", "vm2", "10.0.0.3", "02:00:00:00:00:03", "--requested-chassis=hv2")
    assert store.get("entity_view/LS/ls1/lsp/vm2").value == "ip=10.0.0.3,mac=02:00:00:00:00:03,requested_chassis=hv2"
    assert ok(etcd, prefix, "lsp", "show", "ls1", "vm1") == (
        "vm1:\n  - ip               : 10.0.0.2\n  - mac              : f2:01:0a:00:00:02\n  - peer             : \n"
        "  - chassis          : \n  - requested_chassis: hv1\n  - ready            : false\n\n")
    # Moving a port bound on a live host: only requested_chassis changes, the new host's claim does the rest.
    store.put(key, store.get(key).value.replace("requested_chassis=hv1", "chassis=hv1"))
    assert ok(etcd, prefix, "lsp", "set-requested", "ls1", "vm1", "hv2") == "switch ls1 port vm1 requested on hv2\n"
    assert store.get(key).value == "ip=10.0.0.2,mac=f2:01:0a:00:00:02,chassis=hv1,requested_chassis=hv2"
    [vm1] = json.loads(ok(etcd, prefix, "-j", "lsp", "show", "ls1", "vm1"))
    assert (vm1["chassis"], vm1["requested_chassis"]) == ("hv1", "hv2")
    assert ok(etcd, prefix, "lsp", "set-requested", "ls1", "vm1", "--clear") == \
        "switch ls1 port vm1: requested chassis cleared\n"
    assert store.get(key).value == "ip=10.0.0.2,mac=f2:01:0a:00:00:02,chassis=hv1"
    assert "requested_chassis" not in ok(etcd, prefix, "lsp", "show", "ls1", "vm1")  # 0.3's fields when unset


def test_requested_chassis_errors_write_nothing(etcd, prefix, ctl, store):
    ctl.add_switch("ls1")
    ctl.add_switch_port("ls1", "vm1", "10.0.0.2", chassis="hv1")
    ctl.add_patch_port("ls1", "pp", "hv1", "br-ex")
    before = {kv.key: (kv.value, kv.mod_revision) for kv in store.get_prefix("")[0]}
    usage = "require a switch name, a port name and a chassis name (or --clear)"
    fails(etcd, prefix, "lsp", "add", "ls1", "vm2", "10.0.0.3", "--requested-chassis", "a,b",
          match="""invalid requested chassis 'a,b': "," is not allowed""")
    fails(etcd, prefix, "lsp", "add", "ls1", "vm2", "10.0.0.3", "--requested-chassis",
          match="argument --requested-chassis: expected one argument")
    fails(etcd, prefix, "lsp", "add", "ls1", "vm2", "10.0.0.3", "", "up", "--requested-chassis", "hv2",
          match="a requested chassis is for VM ports: vm2 faces router port up")
    fails(etcd, prefix, "lsp", "set-requested", "ls1", "vm1", match=usage)
    fails(etcd, prefix, "lsp", "set-requested", "ls1", match=usage)
    fails(etcd, prefix, "lsp", "set-requested", "ls1", "vm1", "hv2", "x", match=usage)
    fails(etcd, prefix, "lsp", "set-requested", "ls1", "vm1", "hv2", "--clear",
          match="give a chassis name or --clear, not both")
    fails(etcd, prefix, "lsp", "set-requested", "ls1", "vm1", "", match="invalid requested chassis ''")
    fails(etcd, prefix, "lsp", "set-requested", "ls1", "vm1", "a/b", match='"/" is not allowed')
    fails(etcd, prefix, "lsp", "set-requested", "ls1", "p9", "hv2", match="unable to get switch port p9")
    fails(etcd, prefix, "lsp", "set-requested", "nope", "vm1", "hv2", match="unable to get switch nope")
    fails(etcd, prefix, "lsp", "set-requested", "ls1", "pp", "hv2", match="pp is a patch port")
    fails(etcd, prefix, "lsp", "add", "ls1", "vm2", "10.0.0.3", "--clear", match="unrecognized arguments: --clear")
    assert {kv.key: (kv.value, kv.mod_revision) for kv in store.get_prefix("")[0]} == before
    assert "set-requested" in run(etcd, prefix, "lsp", "--help").out
    assert "--requested-chassis CHASSIS" in run(etcd, prefix, "lsp", "add", "--help").out


def test_patchport(etcd, prefix, ctl):
    ctl.add_switch("ls1")
    assert ok(etcd, prefix, "patchport", "add", "ls1", "pp", "hv1", "br-ex") == "switch ls1 patchport pp created\n"
    [pp] = json.loads(ok(etcd, prefix, "lsp", "show", "ls1", "pp", "-j"))
    assert (pp["ip"], pp["mac"], pp["peer"], pp["chassis"]) == ("255.255.255.255", "ff:ff:ff:ff:ff:ee", "br-ex", "hv1")
    fails(etcd, prefix, "patchport", "add", "ls1", "pp2", "hv1", "br-ex", match="lower 16 bits of 255.255.255.255")
    fails(etcd, prefix, "patchport", "add", "ls1", "pp2", "hv1", match="require a switch name, a port name, chassis")


def test_router_commands(etcd, prefix, ctl, store):
    ctl.add_switch("ls1")
    assert ok(etcd, prefix, "lr", "add", "lr1", "hv1") == "router lr1 created\n"
    assert ok(etcd, prefix, "lr", "a", "lr2") == "router lr2 created\n"
    assert ok(etcd, prefix, "lr", "show", "lr1") == "lr1:\n  - id     : 2\n  - chassis: hv1\n\n"
    assert json.loads(ok(etcd, prefix, "-j", "lr", "s")) == [
        {"name": "lr1", "id": 2, "chassis": "hv1"}, {"name": "lr2", "id": 3, "chassis": None}]
    assert ok(etcd, prefix, "lr", "link", "lr1", "ls1", "10.0.0.1/24") == "lr1 linked to ls1\n"
    fails(etcd, prefix, "lr", "link", "lr1", "ls1", "10.0.0.9/24", match="switch port ls1_to_lr1 exists")
    fails(etcd, prefix, "lr", "link", "lr1", "nope", "10.0.0.9/24", match="unable to get switch nope")
    fails(etcd, prefix, "lr", "link", "lr1", "ls1", match="require a router, a switch name and a CIDR")
    assert store.get("entity_view/LS/ls1/lsp/ls1_to_lr1").value == "ip=10.0.0.1,mac=f2:01:0a:00:00:01,peer=lr1_to_ls1"
    assert store.get("entity_view/LR/lr1/lrp/lr1_to_ls1").value == \
        "ip=10.0.0.1,prefix=24,mac=f2:01:0a:00:00:01,peer=ls1_to_lr1"
    # lrp
    assert ok(etcd, prefix, "lrp", "add", "lr1", "up", "192.168.0.2/24") == "router lr1 port up created\n"
    fails(etcd, prefix, "lrp", "add", "lr1", "x", "192.168.0.3", match="invalid CIDR address: 192.168.0.3")
    fails(etcd, prefix, "lrp", "add", "lr1", "x", "192.168.0.3/24", "bad", match="invalid MAC address")
    fails(etcd, prefix, "lrp", "add", "lr1", "up", "192.168.1.3/24", match="router port up exists")
    fails(etcd, prefix, "lrp", "add", "lr1", "x", "172.16.0.1/24", match="lower 16 bits of 172.16.0.1")
    assert ok(etcd, prefix, "lrp", "show", "lr1", "up") == (
        "up:\n  - ip    : 192.168.0.2\n  - prefix: 24\n  - mac   : f2:01:c0:a8:00:02\n  - peer  : \n\n")
    assert len(json.loads(ok(etcd, prefix, "lrp", "s", "lr1", "-j"))) == 2
    # lsr
    assert ok(etcd, prefix, "lsr", "add", "lr1", "r1", "0.0.0.0/0", "192.168.0.1", "up") == \
        "router lr1 static router r1 created\n"
    fails(etcd, prefix, "lsr", "add", "lr1", "r2", "0.0.0.0/0", "x", "up", match="invalid next_hop: x")
    fails(etcd, prefix, "lsr", "add", "lr1", "r2", "0.0.0.0", "1.1.1.1", "up", match="invalid CIDR address")
    fails(etcd, prefix, "lsr", "add", "lr1", "r1", "0.0.0.0/0", "1.1.1.1", "up", match="router lr1 static route r1 exists")
    assert json.loads(ok(etcd, prefix, "-j", "lsr", "show", "lr1")) == [
        {"router": "lr1", "name": "r1", "ip": "0.0.0.0", "prefix": 0, "next_hop": "192.168.0.1", "outport": "up"}]
    # lnat
    assert ok(etcd, prefix, "lnat", "add", "lr1", "n1", "10.0.0.0/24", "SNAT", "192.168.0.2") == \
        "router lr1 NAT n1 created\n"
    fails(etcd, prefix, "lnat", "add", "lr1", "n2", "10.0.0.0/24", "xnat", "1.1.1.1",
          match="invalid translate type, must be snat/dnat: xnat")
    fails(etcd, prefix, "lnat", "add", "lr1", "n2", "10.0.0.0/24", "dnat", "1.1.1", match="invalid translate IP: 1.1.1")
    fails(etcd, prefix, "lnat", "add", "lr1", "n1", "10.0.0.0/24", "dnat", "1.1.1.1", match="router NAT n1 exists")
    assert ok(etcd, prefix, "lnat", "show", "lr1", "n1") == (
        "n1:\n  - ip        : 10.0.0.0\n  - prefix    : 24\n  - xlate_type: snat\n  - xlate_ip  : 192.168.0.2\n\n")
    assert len(json.loads(ok(etcd, prefix, "lnat", "show", "lr1", "-j"))) == 1
    # deletes, including the NAT-only refusal 0.3 lacked
    fails(etcd, prefix, "lr", "del", "lr1", match="there are remaining ports or static routes, consider using")
    ok(etcd, prefix, "lrp", "del", "lr1", "up")
    ok(etcd, prefix, "lrp", "d", "lr1", "lr1_to_ls1")
    assert ok(etcd, prefix, "lsr", "del", "lr1", "r1") == "router lr1 static router r1 deleted\n"
    fails(etcd, prefix, "lsr", "del", "lr1", "r1", match="not found")
    fails(etcd, prefix, "lr", "del", "lr1", match="there are remaining NAT rules")
    assert ok(etcd, prefix, "lnat", "del", "lr1", "n1") == "router lr1 NAT n1 deleted\n"
    assert ok(etcd, prefix, "lr", "del", "lr1") == "lr1 deleted\n"
    assert store.get(ip_book_key("LR", "lr1")) is None


def test_recursive_delete_confirmation(etcd, prefix, ctl, store):
    for name in ("ls1", "ls2"):
        ctl.add_switch(name)
        ctl.add_switch_port(name, "p1", "10.0.0.2")
    ctl.add_router("lr1")
    ctl.add_nat("lr1", "n1", "10.0.0.0/24", "snat", "1.1.1.1")
    prompt = "all data under this device will be deleted\nconfirm? [yes/no] "
    for answer in ("no\n", "", "yess\n"):
        r = run(etcd, prefix, "ls", "del", "-r", "ls1", stdin=answer)
        assert (r.rc, r.out, r.err) == (1, prompt, "operation canceled\n")
    assert store.get("entity_view/LS/ls1/lsp/p1") is not None
    assert ok(etcd, prefix, "ls", "del", "-r", "ls1", stdin="yes\n") == prompt + "ls1 deleted\n"
    assert ok(etcd, prefix, "ls", "d", "-r", "ls2", stdin="y\n") == prompt + "ls2 deleted\n"
    assert ok(etcd, prefix, "lr", "del", "-r", "--yes", "lr1") == "lr1 deleted\n"  # removes NAT rules too
    assert store.get_prefix("entity_view/")[0] == [] and store.get_prefix("ip_book/")[0] == []


def test_chassis_show_with_liveness_and_delete(etcd, prefix, store):
    assert ok(etcd, prefix, "ch", "show") == "empty data set\n"
    store.put("entity_view/chassis/hv1", "ip=192.168.0.1,tick=100")
    store.put("entity_view/chassis/hv2", "ip=192.168.0.1,tick=200")
    store.put("entity_view/chassis/hv3", "ip=192.168.0.3,tick=300")
    lease = store.lease_grant(30)
    store.put("liveness/chassis/hv3", "ip=192.168.0.3", lease=lease.id)
    assert ok(etcd, prefix, "ch", "show", "hv3") == "hv3:\n  - ip  : 192.168.0.3\n  - tick: 300\n  - live: yes\n\n"
    rows = json.loads(ok(etcd, prefix, "-j", "ch", "s"))
    assert [(r["name"], r["tick"], r["live"]) for r in rows] == [("hv1", 100, False), ("hv2", 200, False),
                                                                 ("hv3", 300, True)]
    assert ok(etcd, prefix, "ch", "del", "192.168.0.1") == "hv1 deleted\nhv2 deleted\n"
    fails(etcd, prefix, "ch", "del", "192.168.0.9", match="failed to get chassis by ip 192.168.0.9")
    fails(etcd, prefix, "ch", "del", "hv9", match="unable to get chassis hv9")
    assert ok(etcd, prefix, "ch", "d", "hv3") == "hv3 deleted\n"
    lease.revoke()


def test_reads_a_tree_written_in_03_format(etcd, prefix, store):
    """Keys put exactly as 0.3 tools and agents wrote them, without any bookkeeping keys."""
    raw = {
        "entity_view/LS/ls1": "id=7",
        "entity_view/LS/ls1/lsp/vm1": "ip=10.0.0.2,mac=f2:01:0a:00:00:02,chassis=hv1,peer=x",
        "entity_view/LS/ls1/lsp/ls1_to_lr1": "ip=10.0.0.1,mac=f2:01:0a:00:00:01,peer=lr1_to_ls1",
        "entity_view/LR/lr1": "id=3",
        "entity_view/LR/lr1/lrp/lr1_to_ls1": "ip=10.0.0.1,prefix=24,mac=f2:01:0a:00:00:01,peer=",
        "entity_view/LR/lr1/lsr/default": "ip=0.0.0.0,prefix=0,next_hop=10.0.0.254,outport=lr1_to_ls1",
        "entity_view/LR/lr1/lnat/n1": "ip=10.0.0.0,prefix=24,xlate_type=snat,xlate_ip=1.1.1.1",
        "entity_view/chassis/hv1": "ip=192.168.100.1,tick=1530000000",
    }
    for k, v in raw.items():
        store.put(k, v)
    assert ok(etcd, prefix, "ls", "show") == "ls1:\n  - id: 7\n\n"
    vm1 = json.loads(ok(etcd, prefix, "lsp", "show", "ls1", "vm1", "-j"))[0]
    assert (vm1["chassis"], vm1["peer"]) == ("hv1", "x")
    assert json.loads(ok(etcd, prefix, "lrp", "show", "lr1", "-j"))[0]["peer"] is None
    assert "next_hop: 10.0.0.254" in ok(etcd, prefix, "lsr", "show", "lr1")
    assert "xlate_ip  : 1.1.1.1" in ok(etcd, prefix, "lnat", "show", "lr1")
    assert "tick: 1530000000" in ok(etcd, prefix, "ch", "show")
    # Writes work on it: port ids and device ids are taken from the tree itself.
    fails(etcd, prefix, "lsp", "add", "ls1", "vm2", "10.9.0.2", match="lower 16 bits of 10.9.0.2 conflict")
    ok(etcd, prefix, "lsp", "add", "ls1", "vm2", "10.0.0.3")
    assert decode_bitmap(store.get(ip_book_key("LS", "ls1")).value) == {1, 2, 3}
    assert ok(etcd, prefix, "ls", "add", "ls2") == "switch ls2 created\n"
    assert json.loads(ok(etcd, prefix, "ls", "show", "ls2", "-j"))[0]["id"] == 1
    assert decode_bitmap(store.get(DEVICE_IDS_KEY).value) == {1, 3, 7}
    # Untouched records keep their exact 0.3 text.
    for k, v in raw.items():
        assert store.get(k).value == v
    # A bad record is skipped with a warning, the rest still shows.
    store.put("entity_view/LS/bad", "id=x")
    r = run(etcd, prefix, "ls", "show")
    assert r.rc == 0 and "ls1:" in r.out and "bad" not in r.out and "entity_view/LS/bad" in r.err


def test_toolbox(etcd, prefix, store):
    store.put("entity_view/LS/a", "id=3")
    store.put("entity_view/LR/b", "id=3")
    store.put("entity_view/LS/a/lsp/p1", "ip=10.0.0.2,mac=f2:01:0a:00:00:02")
    store.put("entity_view/LS/a/lsp/p2", "ip=10.0.0.2,mac=f2:01:0a:00:00:03")
    r = run(etcd, prefix, "toolbox", "find-ip-conflict")
    assert r.rc == 1 and r.out == "in a, p1 use the same IP as p2: 10.0.0.2\n"
    r = run(etcd, prefix, "toolbox", "find-id-conflict")
    assert r.rc == 1 and r.out == "a has the same id of b: 3\n"  # routers first, as 0.3
    assert ok(etcd, prefix, "toolbox", "sync-device-map") == "done\n"
    assert decode_bitmap(store.get(DEVICE_IDS_KEY).value) == {3}
    assert ok(etcd, prefix, "toolbox", "rebuild-ip-book") == "done\n"
    assert decode_bitmap(store.get(ip_book_key("LS", "a")).value) == {2}
    out = ok(etcd, prefix, "toolbox", "decode-id-string", store.get(ip_book_key("LS", "a")).value)
    assert out == "2 => 0.0.0.2\n"
    store.delete("entity_view/LS/a/lsp/p2")
    store.delete("entity_view/LR/b")
    assert ok(etcd, prefix, "toolbox", "find-ip-conflict") == "looks good!\n"
    assert ok(etcd, prefix, "toolbox", "find-id-conflict") == "looks good!\n"
    fails(etcd, prefix, "toolbox", "decode-id-string", "!!", match="not a base64 roaring bitmap")


def test_usage_errors(etcd, prefix):
    fails(etcd, prefix, "bogus", match="invalid choice")
    fails(etcd, prefix, "lsp", match="require a subcommand of lsp")
    fails(etcd, prefix, "lnat", "del", "lr1", match="require router, NAT name")
    assert "patchport" in run(etcd, prefix, "--help").out


def test_patchport_refuses_names_the_agent_cannot_own(etcd, prefix, store):
    ok(etcd, prefix, "ls", "add", "ls1")
    before = {kv.key: kv.value for kv in store.get_prefix("")[0]}
    fails(etcd, prefix, "patchport", "add", "ls1", "p", "hv1", "br-int",
          match="peer bridge cannot be the integration bridge br-int")
    for name in ("br-int", "tupleNet-flowbased", "br-ex"):
        fails(etcd, prefix, "patchport", "add", "ls1", name, "hv1", "br-ex", match=f"patch port name {name}")
    fails(etcd, prefix, "lsp", "add", "ls1", "p", "255.255.255.255", "ff:ff:ff:ff:ff:ee", "br-int",
          match="integration bridge")
    assert {kv.key: kv.value for kv in store.get_prefix("")[0]} == before
    assert ok(etcd, prefix, "patchport", "add", "ls1", "p", "hv1", "br-ex") == "switch ls1 patchport p created\n"
