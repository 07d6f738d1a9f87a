"""Every route of the HTTP API against the real server process and a real etcd: answers, status codes,
error bodies, and that what the API writes is what tpctl (the same control layer) reads."""

from __future__ import annotations

import json
import os
import re

import pytest
from test_api_helpers import (  # noqa: F401  (fixtures)
    AsgiDriver,
    Client,
    api_fixture,
    api_server,
    client_fixture,
    err,
    ok,
    prefix_fixture,
    settle,
)
from test_tpctl_helpers import ok as tpctl_ok

from tuplenet.api import Auth, create_app
from tuplenet.api.proc import ApiProcess
from tuplenet.control.memstore import MemStore
from tuplenet.model import DEVICE_IDS_KEY, ip_book_key
from tuplenet.model.roaring import decode_bitmap, encode_bitmap
from tuplenet.sandbox.procs import free_port
from tuplenet.store import Store


@pytest.fixture
def store(etcd, api):
    with Store(etcd.endpoint, prefix=api.prefix) as s:
        yield s


def test_switches(client, etcd, prefix):
    assert ok(client.get("/switches")) == []
    r = client.post("/switches", {"name": " ls1 "})
    assert ok(r, 201) == {"name": "ls1", "id": 1} and r.headers["location"] == "/api/v2/switches/ls1"
    assert ok(client.post("/switches", {"name": "ls 2"}), 201) == {"name": "ls 2", "id": 2}
    assert ok(client.get("/switches")) == [{"name": "ls 2", "id": 2}, {"name": "ls1", "id": 1}]
    assert ok(client.get("/switches/ls%202")) == {"name": "ls 2", "id": 2}
    err(client.post("/switches", {"name": "ls1"}), 409, "already exists", "already_exists")
    err(client.post("/switches", {"name": "a,b"}), 400, '"," is not allowed', "invalid_argument")
    err(client.post("/switches", {"name": "  "}), 400, "only spaces")
    err(client.post("/switches", {"name": 5}), 400, "name: Input should be a valid string")
    err(client.post("/switches", {"name": "x", "id": 3}), 400, "id: Extra inputs are not permitted")
    err(client.post("/switches", {}), 400, "name: Field required")
    err(client.post("/switches", raw=b"{bad json"), 400, "invalid request")
    err(client.post("/switches", raw=b""), 400, "invalid request")
    err(client.post("/switches", ["ls9"]), 400, "invalid request")
    err(client.get("/switches/nope"), 404, "unable to get switch nope", "not_found")
    err(client.delete("/switches/nope"), 404, "unable to get switch nope")
    ok(client.post("/switches/ls1/ports", {"name": "p1", "ip": "10.0.0.2"}), 201)
    err(client.delete("/switches/ls1"), 409, 'there are remaining ports, consider using "-r"?', "not_empty")
    err(client.delete("/switches/ls1?recursive=maybe"), 400, "recursive")
    r = client.delete("/switches/ls1?recursive=true")
    assert (r.status, r.body) == (204, b"")
    assert client.delete("/switches/ls%202").status == 204
    assert ok(client.get("/switches")) == []
    assert tpctl_ok(etcd, prefix, "ls", "show") == "empty data set\n"


def test_switch_ports_and_ipam(client, etcd, prefix, store):
    ok(client.post("/switches", {"name": "ls1"}), 201)
    r = client.post("/switches/ls1/ports", {"name": "p1", "ip": "10.0.0.2", "chassis": "hv1"})
    p1 = {"switch": "ls1", "name": "p1", "ip": "10.0.0.2", "mac": "f2:01:0a:00:00:02", "peer": None,
          "chassis": "hv1", "requested_chassis": None}
    assert ok(r, 201) == p1 and r.headers["location"] == "/api/v2/switches/ls1/ports/p1"
    # What tpctl reads is what the API wrote (one control layer).
    # (reads add readiness: hv1 has no agent reporting, so unknown)
    assert json.loads(tpctl_ok(etcd, prefix, "lsp", "show", "ls1", "p1", "-j")) == [{**p1, "ready": "unknown"}]
    p2 = ok(client.post("/switches/ls1/ports", {"name": "p2", "ip": "10.0.0.3", "mac": "02:AA:bb:cc:dd:ee"}), 201)
    assert p2["mac"] == "02:aa:bb:cc:dd:ee"
    # IPAM: the first free address of the subnet, the gateway (first host by default) skipped.
    got = ok(client.post("/switches/ls1/ports", {"name": "p3", "subnet": "10.0.0.0/24"}), 201)
    assert (got["ip"], got["mac"]) == ("10.0.0.4", "f2:01:0a:00:00:04")
    got = ok(client.post("/switches/ls1/ports", {"name": "p4", "subnet": "10.0.0.0/24", "gateway": "10.0.0.5",
                                                 "chassis": "hv2"}), 201)
    assert (got["ip"], got["chassis"]) == ("10.0.0.1", "hv2")  # .1 is free once the gateway is elsewhere
    assert [p["name"] for p in ok(client.get("/switches/ls1/ports"))] == ["p1", "p2", "p3", "p4"]
    assert ok(client.get("/switches/ls1/ports/p3"))["ip"] == "10.0.0.4"
    assert decode_bitmap(store.get(ip_book_key("LS", "ls1")).value) == {1, 2, 3, 4}
    # Bad input and conflicts
    err(client.post("/switches/ls1/ports", {"name": "p5"}), 400, "give exactly one of ip and subnet")
    err(client.post("/switches/ls1/ports", {"name": "p5", "ip": "10.0.0.9", "subnet": "10.0.0.0/24"}), 400,
        "exactly one")
    err(client.post("/switches/ls1/ports", {"name": "p5", "ip": "10.0.0.9", "gateway": "10.0.0.1"}), 400,
        "gateway is only used with subnet")
    err(client.post("/switches/ls1/ports", {"name": "p5", "subnet": "10.0.0.0/24", "mac": "02:00:00:00:00:01"}),
        400, "mac and peer cannot be given with subnet")
    err(client.post("/switches/ls1/ports", {"name": "p5", "ip": "10.0.0.256"}), 400, "invalid IP")
    err(client.post("/switches/ls1/ports", {"name": "p5", "ip": "10.0.0.9", "mac": "zz"}), 400, "invalid MAC")
    err(client.post("/switches/ls1/ports", {"name": "p5", "subnet": "10.0.0.0/33"}), 400)
    err(client.post("/switches/ls1/ports", {"name": "p1", "ip": "10.0.0.9"}), 409, "switch ls1 port p1 exists",
        "already_exists")
    err(client.post("/switches/ls1/ports", {"name": "p5", "ip": "10.9.0.2"}), 409, "conflict", "conflict")
    err(client.post("/switches/nope/ports", {"name": "p5", "ip": "10.0.0.9"}), 404, "unable to get switch nope")
    err(client.get("/switches/nope/ports"), 404, "unable to get switch nope")
    err(client.get("/switches/ls1/ports/nope"), 404, "unable to get switch port nope")
    err(client.delete("/switches/ls1/ports/nope"), 404)
    # A subnet that is full
    ok(client.post("/switches", {"name": "tiny"}), 201)
    ok(client.post("/switches/tiny/ports", {"name": "a", "subnet": "10.1.0.0/30"}), 201)
    err(client.post("/switches/tiny/ports", {"name": "b", "subnet": "10.1.0.0/30"}), 400, "no free IP left")
    assert client.delete("/switches/ls1/ports/p2").status == 204
    assert decode_bitmap(store.get(ip_book_key("LS", "ls1")).value) == {1, 2, 4}
    assert ok(client.get("/toolbox/ip-conflicts")) == {"problems": []}


def test_requested_chassis_at_creation_and_move(client, etcd, prefix, store):
    ok(client.post("/switches", {"name": "ls1"}), 201)
    vm1 = ok(client.post("/switches/ls1/ports", {"name": "vm1", "ip": "10.0.0.2", "requested_chassis": "hv1"}), 201)
    assert (vm1["chassis"], vm1["requested_chassis"]) == (None, "hv1")
    key = "entity_view/LS/ls1/lsp/vm1"
    assert store.get(key).value == "ip=10.0.0.2,mac=f2:01:0a:00:00:02,requested_chassis=hv1"
    got = ok(client.post("/switches/ls1/ports", {"name": "vm2", "subnet": "10.0.0.0/24", "requested_chassis": "hv2"}),
             201)
    assert (got["ip"], got["requested_chassis"]) == ("10.0.0.3", "hv2")
    assert ok(client.get("/switches/ls1/ports/vm2"))["requested_chassis"] == "hv2"
    # Move a port bound on a live host: only requested_chassis changes (the new host's claim rewrites chassis).
    store.put(key, "ip=10.0.0.2,mac=f2:01:0a:00:00:02,chassis=hv1")
    moved = ok(client.post("/switches/ls1/ports/vm1/requested-chassis", {"requested_chassis": "hv2"}))
    assert moved == {**vm1, "chassis": "hv1", "requested_chassis": "hv2"}
    assert store.get(key).value == "ip=10.0.0.2,mac=f2:01:0a:00:00:02,chassis=hv1,requested_chassis=hv2"
    [shown] = json.loads(tpctl_ok(etcd, prefix, "lsp", "show", "ls1", "vm1", "-j"))
    assert shown["requested_chassis"] == "hv2"
    cleared = ok(client.post("/switches/ls1/ports/vm1/requested-chassis", {"requested_chassis": None}))
    assert (cleared["chassis"], cleared["requested_chassis"]) == ("hv1", None)
    assert store.get(key).value == "ip=10.0.0.2,mac=f2:01:0a:00:00:02,chassis=hv1"
    assert ok(client.get("/switches/ls1/ports/vm1"))["requested_chassis"] is None


def test_requested_chassis_errors_write_nothing(client, store):
    ok(client.post("/switches", {"name": "ls1"}), 201)
    ok(client.post("/switches/ls1/ports", {"name": "vm1", "ip": "10.0.0.2"}), 201)
    ok(client.post("/switches/ls1/patch-ports", {"name": "pp", "chassis": "hv1", "peer_bridge": "br-ex"}), 201)
    before = {kv.key: (kv.value, kv.mod_revision) for kv in store.get_prefix("")[0]}
    path = "/switches/ls1/ports/vm1/requested-chassis"
    err(client.post("/switches/ls1/ports", {"name": "vm2", "ip": "10.0.0.3", "requested_chassis": "a,b"}), 400,
        """invalid requested chassis 'a,b': "," is not allowed""", "invalid_argument")
    err(client.post("/switches/ls1/ports", {"name": "vm2", "ip": "10.0.0.3", "requested_chassis": 5}), 400,
        "requested_chassis: Input should be a valid string")
    err(client.post("/switches/ls1/ports", {"name": "vm2", "ip": "10.0.0.3", "peer": "up", "requested_chassis": "x"}),
        400, "a requested chassis is for VM ports: vm2 faces router port up")
    err(client.post(path, {}), 400, "requested_chassis: Field required")
    err(client.post(path, {"requested_chassis": ""}), 400, "invalid requested chassis ''")
    err(client.post(path, {"requested_chassis": "a/b"}), 400, '"/" is not allowed')
    err(client.post(path, {"requested_chassis": ["hv1"]}), 400, "requested_chassis: Input should be a valid string")
    err(client.post(path, {"requested_chassis": "hv1", "chassis": "hv2"}), 400, "chassis: Extra inputs")
    err(client.post("/switches/ls1/ports/pp/requested-chassis", {"requested_chassis": "hv2"}), 400,
        "pp is a patch port")
    err(client.post("/switches/ls1/ports/p9/requested-chassis", {"requested_chassis": "hv2"}), 404,
        "unable to get switch port p9", "not_found")
    err(client.post("/switches/nope/ports/vm1/requested-chassis", {"requested_chassis": "hv2"}), 404,
        "unable to get switch nope")
    assert {kv.key: (kv.value, kv.mod_revision) for kv in store.get_prefix("")[0]} == before


def test_patch_port(client):
    ok(client.post("/switches", {"name": "ext"}), 201)
    body = {"name": "pp", "chassis": "hv1", "peer_bridge": "br-ex"}
    r = client.post("/switches/ext/patch-ports", body)
    assert ok(r, 201) == {"switch": "ext", "name": "pp", "ip": "255.255.255.255", "mac": "ff:ff:ff:ff:ff:ee",
                          "peer": "br-ex", "chassis": "hv1", "requested_chassis": None}
    assert r.headers["location"] == "/api/v2/switches/ext/ports/pp"
    err(client.post("/switches/ext/patch-ports", {**body, "name": "pp2"}), 409)
    err(client.post("/switches/ext/patch-ports", {"name": "pp3", "chassis": "hv1"}), 400, "peer_bridge: Field required")
    err(client.post("/switches/nope/patch-ports", body), 404)


def test_mirrors(client):
    ok(client.post("/switches", {"name": "ls1"}), 201)
    ok(client.post("/switches/ls1/ports", {"name": "vm1", "ip": "10.0.0.2"}), 201)
    body = {"name": "m1", "port": "ls1/vm1", "target": "erspan:192.0.2.9:7", "direction": "in"}
    r = client.post("/mirrors", body)
    assert ok(r, 201) == {"name": "m1", "port": "ls1/vm1", "switch": "ls1", "lsp": "vm1", "direction": "in",
                          "target": "erspan:192.0.2.9:7"}
    assert r.headers["location"] == "/api/v2/mirrors/m1"
    assert [m["name"] for m in ok(client.get("/mirrors"))] == ["m1"]
    assert ok(client.get("/mirrors/m1"))["target"] == "erspan:192.0.2.9:7"
    err(client.post("/mirrors", body), 409)
    err(client.post("/mirrors", {**body, "name": "m2", "target": "carrier-pigeon:x"}), 400)
    err(client.post("/mirrors", {**body, "name": "m3", "port": "ls1/nope"}), 404)
    ok(client.delete("/mirrors/m1"), 204)
    err(client.get("/mirrors/m1"), 404)
    err(client.delete("/mirrors/m1"), 404)


def test_routers_links_ports_routes_nats(client, etcd, prefix, store):
    assert ok(client.post("/routers", {"name": "lr1"}), 201) == {"name": "lr1", "id": 1, "chassis": None}
    r = client.post("/routers", {"name": "edge", "chassis": "hv9"})
    assert ok(r, 201) == {"name": "edge", "id": 2, "chassis": "hv9"}
    assert r.headers["location"] == "/api/v2/routers/edge"
    err(client.post("/routers", {"name": "lr1"}), 409, "already exists")
    assert [x["name"] for x in ok(client.get("/routers"))] == ["edge", "lr1"]
    assert ok(client.get("/routers/edge"))["chassis"] == "hv9"
    err(client.get("/routers/nope"), 404, "unable to get router nope")

    ok(client.post("/switches", {"name": "ls1"}), 201)
    r = client.post("/routers/lr1/links", {"switch": "ls1", "cidr": "10.0.0.1/24"})
    link = ok(r, 201)
    assert link["switch_port"] == {"switch": "ls1", "name": "ls1_to_lr1", "ip": "10.0.0.1",
                                   "mac": "f2:01:0a:00:00:01", "peer": "lr1_to_ls1", "chassis": None,
                                   "requested_chassis": None}
    assert link["router_port"] == {"router": "lr1", "name": "lr1_to_ls1", "ip": "10.0.0.1", "prefix": 24,
                                   "mac": "f2:01:0a:00:00:01", "peer": "ls1_to_lr1"}
    assert r.headers["location"] == "/api/v2/routers/lr1/ports/lr1_to_ls1"
    err(client.post("/routers/lr1/links", {"switch": "ls1", "cidr": "10.0.0.1/24"}), 409, "exists")
    err(client.post("/routers/lr1/links", {"switch": "nope", "cidr": "10.0.1.1/24"}), 404)
    err(client.post("/routers/lr1/links", {"switch": "ls1", "cidr": "10.0.1.1"}), 400)

    rp = ok(client.post("/routers/lr1/ports", {"name": "up", "cidr": "192.168.1.2/24", "peer": "x"}), 201)
    assert (rp["prefix"], rp["mac"], rp["peer"]) == (24, "f2:01:c0:a8:01:02", "x")
    err(client.post("/routers/lr1/ports", {"name": "up", "cidr": "192.168.2.2/24"}), 409, "router port up exists")
    err(client.post("/routers/lr1/ports", {"name": "bad", "cidr": "192.168.2.2/99"}), 400)
    assert [p["name"] for p in ok(client.get("/routers/lr1/ports"))] == ["lr1_to_ls1", "up"]
    assert ok(client.get("/routers/lr1/ports/up"))["ip"] == "192.168.1.2"

    route = {"name": "default", "cidr": "0.0.0.0/0", "next_hop": "192.168.1.1", "outport": "up"}
    assert ok(client.post("/routers/lr1/routes", route), 201) == {
        "router": "lr1", "name": "default", "ip": "0.0.0.0", "prefix": 0, "next_hop": "192.168.1.1",
        "outport": "up"}
    err(client.post("/routers/lr1/routes", route), 409, "static route default exists")
    err(client.post("/routers/lr1/routes", {**route, "name": "r2", "next_hop": "x"}), 400, "invalid next_hop")
    err(client.post("/routers/nope/routes", route), 404)
    assert [x["name"] for x in ok(client.get("/routers/lr1/routes"))] == ["default"]
    assert ok(client.get("/routers/lr1/routes/default"))["next_hop"] == "192.168.1.1"
    assert "next_hop: 192.168.1.1" in tpctl_ok(etcd, prefix, "lsr", "show", "lr1")

    nat = {"name": "out", "cidr": "10.0.0.0/24", "xlate_type": "SNAT", "xlate_ip": "192.168.1.2"}
    assert ok(client.post("/routers/lr1/nats", nat), 201)["xlate_type"] == "snat"
    err(client.post("/routers/lr1/nats", nat), 409, "router NAT out exists")
    err(client.post("/routers/lr1/nats", {**nat, "name": "n2", "xlate_type": "bnat"}), 400,
        "invalid translate type")
    err(client.post("/routers/lr1/nats", {**nat, "name": "n2", "xlate_ip": "1.2.3"}), 400, "invalid translate IP")
    assert [x["name"] for x in ok(client.get("/routers/lr1/nats"))] == ["out"]
    assert ok(client.get("/routers/lr1/nats/out"))["xlate_ip"] == "192.168.1.2"
    err(client.get("/routers/lr1/nats/nope"), 404)

    err(client.delete("/routers/lr1"), 409, "remaining ports or static routes", "not_empty")
    for path in ("/routers/lr1/nats/out", "/routers/lr1/routes/default", "/routers/lr1/ports/up"):
        assert client.delete(path).status == 204
        err(client.delete(path), 404)
    assert client.delete("/routers/lr1?recursive=true").status == 204
    assert client.delete("/routers/edge").status == 204
    assert ok(client.get("/routers")) == []
    assert decode_bitmap(store.get(DEVICE_IDS_KEY).value) == {3}  # ls1 (made after both routers) keeps its id


def test_chassis(client, store):
    assert ok(client.get("/chassis")) == []
    store.put("entity_view/chassis/hv1", "ip=192.168.0.1,tick=100")
    store.put("entity_view/chassis/hv2", "ip=192.168.0.1,tick=200")
    store.put("entity_view/chassis/hv3", "ip=192.168.0.3,tick=300")
    lease = store.lease_grant(30)
    store.put("liveness/chassis/hv3", "ip=192.168.0.3", lease=lease.id)
    settle(client, store)
    assert ok(client.get("/chassis")) == [
        {"name": "hv1", "ip": "192.168.0.1", "tick": 100, "live": False},
        {"name": "hv2", "ip": "192.168.0.1", "tick": 200, "live": False},
        {"name": "hv3", "ip": "192.168.0.3", "tick": 300, "live": True}]
    assert ok(client.get("/chassis/hv3")) == {"name": "hv3", "ip": "192.168.0.3", "tick": 300, "live": True}
    err(client.get("/chassis/hv9"), 404, "unable to get chassis hv9")
    assert ok(client.delete("/chassis/192.168.0.1")) == {"deleted": ["hv1", "hv2"]}
    err(client.delete("/chassis/192.168.0.9"), 404, "failed to get chassis by ip 192.168.0.9")
    assert ok(client.delete("/chassis/hv3")) == {"deleted": ["hv3"]}
    lease.revoke()


def test_toolbox(client, store):
    store.put("entity_view/LS/a", "id=3")
    store.put("entity_view/LR/b", "id=3")
    store.put("entity_view/LS/a/lsp/p1", "ip=10.0.0.2,mac=f2:01:0a:00:00:02")
    store.put("entity_view/LS/a/lsp/p2", "ip=10.0.0.2,mac=f2:01:0a:00:00:03")
    settle(client, store)
    assert ok(client.get("/toolbox/ip-conflicts")) == {"problems": ["in a, p1 use the same IP as p2: 10.0.0.2"]}
    assert ok(client.get("/toolbox/id-conflicts")) == {"problems": ["a has the same id of b: 3"]}
    assert ok(client.post("/toolbox/sync-device-map")) == {"device_ids": [3]}
    assert decode_bitmap(store.get(DEVICE_IDS_KEY).value) == {3}
    assert ok(client.post("/toolbox/rebuild-ip-book")) == {"books_changed": 1}
    assert ok(client.post("/toolbox/rebuild-ip-book")) == {"books_changed": 0}
    book = store.get(ip_book_key("LS", "a")).value
    assert ok(client.get(f"/toolbox/decode-id-string?value={book}")) == {"members": [{"id": 2, "ip": "0.0.0.2"}]}
    value = encode_bitmap({1, 65535}).replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
    assert [m["id"] for m in ok(client.get(f"/toolbox/decode-id-string?value={value}"))["members"]] == [1, 65535]
    err(client.get("/toolbox/decode-id-string?value=!!"), 400, "not a base64 roaring bitmap")
    err(client.get("/toolbox/decode-id-string"), 400, "value: Field required")


def test_export_import_round_trip(client, api, etcd, prefix, tmp_path):
    ok(client.post("/switches", {"name": "ls1"}), 201)
    ok(client.post("/switches/ls1/ports", {"name": "p1", "ip": "10.0.0.2"}), 201)
    ok(client.post("/routers", {"name": "lr1"}), 201)
    ok(client.post("/routers/lr1/links", {"switch": "ls1", "cidr": "10.0.0.1/24"}), 201)
    r = client.get("/export")
    assert r.status == 200 and r.headers["content-type"].startswith("text/plain")
    assert r.text.splitlines()[0].startswith(f"# tuplenet export: prefix={prefix} revision=")
    assert "entity_view/LS/ls1/lsp/p1\tip=10.0.0.2,mac=f2:01:0a:00:00:02" in r.text.splitlines()
    assert r.text.splitlines()[1:] == tpctl_ok(etcd, prefix, "export").splitlines()[1:]
    # Into a second prefix through a second server
    other = prefix.rstrip("/") + "-copy/"
    copy = ApiProcess(str(tmp_path / "api"), etcd.endpoint, other).start()
    c2 = Client(copy)
    try:
        assert ok(c2.post("/import", raw=r.body, content_type="text/plain")) == {
            "created": 5, "replaced": 0, "ids_assigned": 0, "batches": 1, "present": 0, "resumed": False}
        assert c2.get("/export").text.splitlines()[1:] == r.text.splitlines()[1:]
        before = c2.get("/export").text.splitlines()[1:]
        bad = r.text + "entity_view/LS/zz\tid=1\nentity_view/LS/ls1/lsp/p9\tip=10.0.0.300,mac=x\n"
        err(c2.post("/import", raw=bad.encode(), content_type="text/plain"), 400)
        err(c2.post("/import", raw=b"\xff\xfe", content_type="text/plain"), 400, "not UTF-8")
        assert c2.get("/export").text.splitlines()[1:] == before  # nothing written
        assert ok(c2.post("/import?overwrite=true", raw=r.body, content_type="text/plain"))["replaced"] == 5
        err(c2.post("/import?resume=maybe", raw=r.body, content_type="text/plain"), 400, "resume")
        err(c2.delete("/import"), 404, "no import is in progress")
    finally:
        c2.close()
        copy.stop()
        with Store(etcd.endpoint, prefix=other) as s:
            s.delete_prefix("")


def test_graph(client):
    ok(client.post("/switches", {"name": "ls1"}), 201)
    ok(client.post("/switches/ls1/ports", {"name": "vm1", "ip": "10.0.0.2"}), 201)
    ok(client.post("/routers", {"name": "lr1"}), 201)
    ok(client.post("/routers/lr1/links", {"switch": "ls1", "cidr": "10.0.0.1/24"}), 201)
    dot = client.get("/graph")
    assert dot.status == 200 and dot.headers["content-type"].startswith("text/vnd.graphviz")
    assert dot.text.startswith("digraph tuplenet {") and '"LR/lr1" -> "LS/ls1"' in dot.text
    assert client.get("/graph?format=dot").body == dot.body
    svg = client.get("/graph?format=svg")
    assert svg.status == 200 and svg.headers["content-type"] == "image/svg+xml"
    assert b"<svg" in svg.body and b"vm1" in svg.body and b"10.0.0.1/24" in svg.body
    text = client.get("/graph?format=text")
    assert text.headers["content-type"].startswith("text/plain")
    assert "lr1_to_ls1 10.0.0.1/24 --- ls1" in text.text and "vm1" in text.text
    err(client.get("/graph?format=png"), 400, "format")


def test_trace(client, api, store):
    ok(client.post("/switches", {"name": "ls1"}), 201)
    ok(client.post("/switches/ls1/ports", {"name": "vm1", "ip": "10.0.0.2", "chassis": "hv1"}), 201)
    ok(client.post("/switches/ls1/ports", {"name": "vm2", "ip": "10.0.0.3", "chassis": "hv2"}), 201)
    store.put("entity_view/chassis/hv1", "ip=192.168.100.1,tick=1")
    store.put("entity_view/chassis/hv2", "ip=192.168.100.2,tick=1")
    doc = ok(client.get("/trace?src_port=ls1/vm1&dst_ip=10.0.0.3"))
    assert doc["source"] == "ls1/vm1" and doc["packet"]["nw_dst"] == "10.0.0.3"
    text = client.get("/trace?src_port=ls1/vm1&dst_ip=10.0.0.3&format=text&brief=true")
    assert text.status == 200 and text.text.startswith("trace from ls1/vm1: icmp 10.0.0.2 > 10.0.0.3")
    assert "hv1:" in text.text and "hv2:" in text.text  # over the tunnel to the other chassis
    reader = Client(api, token=api.read_token)
    assert reader.get("/trace?src_port=ls1/vm1&dst_ip=10.0.0.3").status == 200  # a read
    reader.close()
    err(client.get("/trace?src_port=ls1/nope&dst_ip=10.0.0.3"), 400, "nope")
    err(client.get("/trace?src_port=ls1/vm1&dst_ip=10.0.0.3&proto=sctp"), 400, "protocol must be one of")
    err(client.get("/trace?dst_ip=10.0.0.3"), 400, "src_port: Field required")


def test_health_and_unknown_routes(client):
    h = ok(client.get("/health"))
    assert h["status"] == "ok" and h["revision"] > 0 and re.match(r"\d+\.\d+", h["version"])
    err(client.get("/nothing"), 404, "Not Found")
    err(client.request("PUT", "/switches"), 405)


def test_etcd_down_is_503_and_the_server_stays_up(etcd, prefix, tmp_path):
    dead = f"127.0.0.1:{free_port()}"
    proc = ApiProcess(str(tmp_path / "api"), dead, prefix, extra_args=("-t", "0.3")).start()
    c = Client(proc)
    try:
        for path in ("/health", "/switches"):
            err(c.get(path), 503, "etcd unavailable", "unavailable")
        err(c.post("/switches", {"name": "x"}), 503, "etcd unavailable")
        assert proc.proc.poll() is None
    finally:
        c.close()
        proc.stop()


def test_bad_records_are_skipped_in_lists(client, store):
    store.put("entity_view/LS/good", "id=1")
    store.put("entity_view/LS/bad", "id=x")
    settle(client, store)
    assert ok(client.get("/switches")) == [{"name": "good", "id": 1}]
    err(client.get("/switches/bad"), 409, "bad record in etcd")


def test_openapi_document_is_served_and_committed(client):
    served = ok(client.get("/openapi.json"))
    path = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "openapi.json")
    with open(path, encoding="utf-8") as fh:
        committed = json.load(fh)
    assert served == committed, "docs/openapi.json is stale: run .venv/bin/python -m tuplenet.api.openapi"
    assert served["security"] == [{"bearer": []}]
    ops = {(m.upper(), p) for p, item in served["paths"].items() for m in item}
    assert len(ops) == 73 and ("POST", "/api/v2/switches/{switch}/ports") in ops and ("POST", "/api/v2/mirrors") in ops


def test_request_bodies_over_the_limit_get_413(api):
    # Real server: a declared length over the 64 MiB default is refused before a byte of body is read.
    conn = api.connection()
    conn.putrequest("POST", "/api/v2/import")
    conn.putheader("Authorization", f"Bearer {api.token}")
    conn.putheader("Content-Length", str(100 << 20))
    conn.endheaders()
    resp = conn.getresponse()
    assert (resp.status, resp.read()) == (413, b'{"error": "request body larger than 67108864 bytes", '
                                               b'"kind": "too_large"}')
    conn.close()
    # In process with a small cap: also when the body arrives without a length and is counted as it comes.
    app = create_app(MemStore(), Auth(["t"]), max_body=100)
    drive = AsgiDriver(app)
    auth = [(b"authorization", b"Bearer t"), (b"content-type", b"application/json")]
    for path, body in (("/api/v2/switches", b'{"name":"' + b"x" * 200 + b'"}'), ("/api/v2/import", b"x" * 200)):
        status, _, raw = drive("POST", path, headers=auth, body=body)
        assert (status, json.loads(raw)["kind"]) == (413, "too_large")
    assert drive("POST", "/api/v2/switches", headers=auth, body=b'{"name":"a"}')[0] == 201
    drive.close()
