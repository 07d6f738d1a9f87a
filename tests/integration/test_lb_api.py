"""Load balancer routes of the HTTP API against the real server process and etcd: create, list, get,
backends, delete, on a switch and a router; error statuses; what the API writes tpctl reads."""

from __future__ import annotations

from test_api_helpers import (  # noqa: F401  (fixtures)
    api_fixture,
    api_server,
    client_fixture,
    err,
    ok,
    prefix_fixture,
)
from test_tpctl_helpers import ok as tpctl_ok


def test_load_balancer_routes(client, etcd, api):
    ok(client.post("/switches", {"name": "ls1"}), 201)
    ok(client.post("/routers", {"name": "lr1", "chassis": "hv1"}), 201)
    body = {"name": "web", "vip": "10.0.0.100", "port": 80, "backends": ["10.0.0.2:8080", "10.0.0.3:8080"]}
    r = client.post("/switches/ls1/lbs", body)
    assert ok(r, 201) == {"switch": "ls1", "name": "web", "vip": "10.0.0.100", "port": 80, "protocol": "tcp",
                          "backends": ["10.0.0.2:8080", "10.0.0.3:8080"], "affinity": 0, "check": "none",
                          "interval": 5, "rise": 2, "fall": 2}
    assert r.headers["location"] == "/api/v2/switches/ls1/lbs/web"
    ok(client.post("/routers/lr1/lbs", {"name": "dns", "vip": "10.9.0.1", "port": 53, "protocol": "udp",
                                         "affinity": 30}), 201)
    assert [x["name"] for x in ok(client.get("/switches/ls1/lbs"))] == ["web"]
    assert ok(client.get("/routers/lr1/lbs/dns"))["protocol"] == "udp"
    got = ok(client.post("/switches/ls1/lbs/web/backends", {"add": ["10.0.0.4:8080"], "remove": ["10.0.0.2:8080"]}))
    assert got["backends"] == ["10.0.0.3:8080", "10.0.0.4:8080"]
    assert "10.0.0.4:8080" in tpctl_ok(etcd, api.prefix, "lb", "show", "ls", "ls1", "web")
    err(client.post("/switches/ls1/lbs", body), 409)
    err(client.post("/switches/ls1/lbs", {**body, "name": "w2", "vip": "10.0.0.101", "protocol": "sctp"}), 400)
    err(client.post("/switches/nope/lbs", {**body, "name": "w3"}), 404)
    err(client.post("/switches/ls1/lbs", {**body, "name": "w4", "port": "80"}), 400, "port")
    err(client.post("/switches/ls1/lbs/web/backends", {"remove": ["10.0.0.9:1"]}), 404)
    ok(client.delete("/switches/ls1/lbs/web"), 204)
    err(client.get("/switches/ls1/lbs/web"), 404)
    err(client.delete("/switches/ls1/lbs/web"), 404)
