"""`tpctl trace --simulate --api URL`: the same trace as tpctl computes itself, answered by a running
tuplenet-api that keeps the model and the computed flows between topology changes (api/routes_trace.py)."""

from __future__ import annotations

import json

import pytest
from test_api_helpers import (  # noqa: F401  (fixtures)
    Client,
    api_fixture,
    api_server,
    prefix_fixture,
    settle,
)
from test_tpctl_helpers import fails, ok

from tuplenet.model import LR, LRP, LS, LSP, LSR, Chassis
from tuplenet.sandbox.procs import wait_for
from tuplenet.store import Store


def _mac(ip: str) -> str:
    return "f2:01:" + ":".join(f"{int(b):02x}" for b in ip.split("."))


def chain() -> list:
    """3 routers pinned alternately on 2 hosts (the 0.3 static-route chain): hv1 -> hv2 -> hv1 -> hv2."""
    ents: list = [Chassis("hv1", "192.168.100.2", 1), Chassis("hv2", "192.168.100.3", 1)]
    ents += [LS(ls, i) for i, ls in enumerate(("LS-A", "LS-B", "LS-C", "LS-D"), 1)]
    ents += [LR("LR-A", 11, "hv1"), LR("LR-B", 12, "hv2"), LR("LR-C", 13, "hv1")]
    for lr, ls, ip in (("LR-A", "LS-A", "10.10.1.1"), ("LR-A", "LS-B", "10.10.2.1"), ("LR-B", "LS-B", "10.10.2.2"),
                       ("LR-B", "LS-C", "10.10.3.2"), ("LR-C", "LS-C", "10.10.3.3"), ("LR-C", "LS-D", "10.10.4.3")):
        ents += [LRP(lr, f"{lr}_to_{ls}", ip, 24, _mac(ip), f"{ls}_to_{lr}"),
                 LSP(ls, f"{ls}_to_{lr}", ip, _mac(ip), f"{lr}_to_{ls}")]
    ents += [LSR("LR-A", "fwd", "10.10.4.0", 24, "10.10.2.2", "LR-A_to_LS-B"),
             LSR("LR-B", "fwd", "10.10.4.0", 24, "10.10.3.3", "LR-B_to_LS-C"),
             LSP("LS-A", "vma", "10.10.1.10", _mac("10.10.1.10"), None, "hv1"),
             LSP("LS-D", "vmd", "10.10.4.10", _mac("10.10.4.10"), None, "hv2")]
    return ents


@pytest.fixture
def tree(etcd, api) -> Store:
    s = Store(etcd.endpoint, prefix=api.prefix)
    for e in chain():
        s.put(e.key, e.to_value())
    c = Client(api)
    settle(c, s)
    c.close()
    yield s
    s.close()


TRACE = ("trace", "--simulate", "-s", "LS-A/vma", "--dst-ip", "10.10.4.10")


def test_the_served_trace_is_the_trace_tpctl_computes(etcd, api, tree, monkeypatch) -> None:
    monkeypatch.setenv("TUPLENET_API_TOKEN", api.read_token)  # a read: the read-only token may trace
    prefix = api.prefix
    for extra in ((), ("--brief",)):
        local = ok(etcd, prefix, *TRACE, *extra)
        assert local.rstrip().endswith("delivered") and "hv2:" in local
        assert ok(etcd, prefix, *TRACE, *extra, "--api", api.base_url) == local
    local_doc = json.loads(ok(etcd, prefix, "--json", *TRACE))
    assert json.loads(ok(etcd, prefix, "--json", *TRACE, "--api", api.base_url + "/api/v2")) == local_doc
    monkeypatch.setenv("TUPLENET_API", api.base_url)  # the environment names the server too
    assert json.loads(ok(etcd, prefix, "--json", *TRACE)) == local_doc


def test_the_served_model_follows_topology_changes(etcd, api, tree, monkeypatch) -> None:
    monkeypatch.setenv("TUPLENET_API_TOKEN", api.read_token)
    prefix = api.prefix
    assert ok(etcd, prefix, *TRACE, "--api", api.base_url).rstrip().endswith("delivered")  # warm now
    tree.delete(LSR("LR-B", "fwd", "10.10.4.0", 24, "10.10.3.3", "LR-B_to_LS-C").key)  # LR-B loses its route
    c = Client(api)
    settle(c, tree)
    c.close()
    served = ok(etcd, prefix, *TRACE, "--api", api.base_url)
    assert served == ok(etcd, prefix, *TRACE) and not served.rstrip().endswith("delivered")


def test_served_trace_errors_are_one_line(etcd, api, tree, monkeypatch) -> None:
    prefix = api.prefix
    monkeypatch.setenv("TUPLENET_API_TOKEN", "wrong")
    fails(etcd, prefix, *TRACE, "--api", api.base_url, match="answered 401")
    monkeypatch.setenv("TUPLENET_API_TOKEN", api.read_token)
    fails(etcd, prefix, "trace", "--simulate", "-s", "LS-A/nope", "--dst-ip", "10.10.4.10", "--api", api.base_url,
          match="nope")
    fails(etcd, prefix, *TRACE, "--api", "ftp://127.0.0.1:1", match="give http://HOST:PORT")
    fails(etcd, prefix, *TRACE, "--api", "http://127.0.0.1:99999", match="--api")
    port = api.port
    api.stop()
    try:
        fails(etcd, prefix, *TRACE, "--api", f"http://127.0.0.1:{port}", match="tuplenet-api at")
    finally:
        api.start()


def test_a_topology_change_is_rebuilt_before_any_trace_asks(etcd, api, tree, monkeypatch) -> None:
    monkeypatch.setenv("TUPLENET_API_TOKEN", api.read_token)
    prefix = api.prefix
    assert ok(etcd, prefix, *TRACE, "--api", api.base_url).rstrip().endswith("delivered")  # hv1, hv2 are hot
    c = Client(api)
    try:
        before = c.get("/health").json["trace"]
        assert tree.delete(LSR("LR-B", "fwd", "10.10.4.0", 24, "10.10.3.3", "LR-B_to_LS-C").key) == 1
        rev = tree.txn([], []).revision  # the delete's revision
        assert rev > before["revision"]
        wait_for(lambda: (t := c.get("/health").json["trace"])["revision"] >= rev and not t["building"],
                 timeout=20, what=f"the trace model of revision {rev}, rebuilt without a trace")
        after = c.get("/health").json["trace"]
        assert after["rebuilds"] > before["rebuilds"]
    finally:
        c.close()
    served = ok(etcd, prefix, *TRACE, "--api", api.base_url)  # walks the rebuilt model
    assert served == ok(etcd, prefix, *TRACE) and not served.rstrip().endswith("delivered")
