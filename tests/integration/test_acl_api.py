"""ACL, port group and address set routes of the HTTP API against the real server process and etcd: create,
list, get, change members, delete, hits; error statuses; what the API writes tpctl reads."""

from __future__ import annotations

import json

from test_api_helpers import (  # noqa: F401  (fixtures)
    api_fixture,
    api_server,
    client_fixture,
    err,
    ok,
    prefix_fixture,
)
from test_tpctl_helpers import ok as tpctl_ok

from tuplenet.sandbox.procs import wait_for
from tuplenet.store import Store


def test_acl_routes(client, etcd, api):
    ok(client.post("/switches", {"name": "ls1"}), 201)
    ok(client.post("/switches/ls1/ports", {"name": "vm1", "ip": "10.0.0.2"}), 201)
    r = client.post("/address-sets", {"name": "clients", "addresses": ["10.0.0.0/24", "10.1.0.5"]})
    assert ok(r, 201) == {"name": "clients", "addresses": ["10.0.0.0/24", "10.1.0.5"]}
    assert r.headers["location"] == "/api/v2/address-sets/clients"
    got = ok(client.post("/address-sets/clients/addresses", {"add": ["10.2.0.1"], "remove": ["10.1.0.5"]}))
    assert got["addresses"] == ["10.0.0.0/24", "10.2.0.1"]
    ok(client.post("/port-groups", {"name": "web", "ports": ["ls1/vm1"]}), 201)
    err(client.post("/port-groups", {"name": "bad", "ports": ["ls1/ghost"]}), 404)
    rule = {"name": "http", "direction": "out", "priority": 100, "action": "allow-related", "src": "$clients",
            "proto": "tcp", "dport": "80-443"}
    r = client.post("/port-groups/web/acls", rule)
    assert ok(r, 201) == {"port_group": "web", "name": "http", "direction": "out", "priority": 100,
                          "action": "allow-related", "src": "$clients", "proto": "tcp", "dport": "80-443", "hits": 0}
    assert r.headers["location"] == "/api/v2/port-groups/web/acls/http"
    ok(client.post("/switches/ls1/acls", {"name": "deny", "direction": "in", "priority": 1, "action": "drop"}), 201)
    store = Store(etcd.endpoint, prefix=api.prefix)
    try:
        store.put("communicate/acl_hits/hv1", json.dumps({"entity_view/port_group/web/acl/http": 3}))
    finally:
        store.close()
    wait_for(lambda: ok(client.get("/port-groups/web/acls/http"))["hits"] == 3, timeout=5, what="hits via the cache")
    assert [x["name"] for x in ok(client.get("/switches/ls1/acls"))] == ["deny"]
    assert "match    : src=$clients proto=tcp dport=80-443" in tpctl_ok(etcd, api.prefix, "acl", "show", "pg", "web")
    err(client.post("/port-groups/web/acls", rule), 409)
    err(client.post("/port-groups/web/acls", {**rule, "name": "h2", "dport": "90-80"}), 400)
    err(client.post("/port-groups/web/acls", {**rule, "name": "h3", "priority": "1"}), 400, "priority")
    err(client.post("/switches/nope/acls", {**rule, "name": "h4"}), 404)
    ok(client.delete("/port-groups/web/acls/http"), 204)
    err(client.get("/port-groups/web/acls/http"), 404)
    ok(client.delete("/port-groups/web"), 204)
    ok(client.delete("/address-sets/clients"), 204)
    err(client.delete("/address-sets/clients"), 404)
    assert ok(client.get("/address-sets")) == [] and ok(client.get("/port-groups")) == []
