"""Agents' etcd traffic through `etcd grpc-proxy` (the fan-out tier): the store and a real agent cluster work
through it, a proxy restart loses no watch event, and identical watches are coalesced into one etcd
watcher."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator

import pytest
from test_store import Collector

from agent_cluster import Cluster, tutorial
from tuplenet.sandbox.etcd import EtcdServer
from tuplenet.sandbox.etcd_proxy import GrpcProxy
from tuplenet.sandbox.procs import wait_for
from tuplenet.sandbox.sim import SimNetwork
from tuplenet.store import AuthFailed, Compare, EtcdSecurity, Op, Store


@pytest.fixture
def proxy(etcd: EtcdServer, tmp_path) -> Iterator[GrpcProxy]:
    px = GrpcProxy(str(tmp_path / "proxy"), [etcd.endpoint]).start()
    yield px
    px.stop()


def etcd_watchers(server: EtcdServer) -> int:
    """etcd's own count of watchers (each coalesced proxy watch is one)."""
    text = urllib.request.urlopen(server.url + "/metrics", timeout=5).read().decode()
    return int(float(re.search(r"^etcd_debugging_mvcc_watcher_total (\S+)$", text, re.M).group(1)))


def proxy_calls(px: GrpcProxy, method: str) -> int:
    """Calls of `method` the proxy has served (its gRPC server metrics)."""
    text = urllib.request.urlopen(f"http://{px.endpoint}/metrics", timeout=5).read().decode()
    return sum(int(float(m)) for m in re.findall(
        rf'^grpc_server_started_total\{{grpc_method="{method}"[^}}]*\}} (\S+)$', text, re.M))


def test_store_through_the_proxy(proxy: GrpcProxy, prefix: str) -> None:
    with Store(proxy.endpoint, prefix=prefix, transport="grpc") as s:
        first = s.put("k/a", "1")
        assert s.get("k/a").value == "1"
        assert s.txn([Compare.value("k/a", "=", "1")], [Op.put("k/b", "2")]).succeeded
        big = "v" * 50_000  # 40 x 50 kB: pages above the proxy's default 1.5 MiB answer limit
        s.txn_batches([Op.put(f"big/{i:03d}", big) for i in range(40)])
        kvs, _ = s.get_prefix("big/")
        assert len(kvs) == 40 and all(kv.value == big for kv in kvs)
        lease = s.lease_grant(5)
        s.put("k/leased", "x", lease=lease.id)
        assert lease.refresh() == 5
        lease.revoke()
        assert s.get("k/leased") is None
        col = Collector(s.watch("k/", first))
        try:
            col.wait_revision(s.put("k/c", "3"))
            assert [(e.type, e.kv.key) for e in col.events] == [
                ("PUT", "k/a"), ("PUT", "k/b"), ("PUT", "k/leased"), ("DELETE", "k/leased"), ("PUT", "k/c")]
        finally:
            col.stop()


def test_watch_resumes_across_a_proxy_kill(proxy: GrpcProxy, etcd: EtcdServer, prefix: str) -> None:
    with Store(proxy.endpoint, prefix=prefix, transport="grpc", timeout=10) as s, \
            Store(etcd.endpoint, prefix=prefix) as direct:
        start = direct.put("w/0", "a")
        col = Collector(s.watch("w/", start))
        try:
            col.wait_revision(start)
            proxy.stop(kill=True)
            during = [direct.put(f"w/{i}", "b") for i in range(1, 4)]  # written while the proxy is down
            proxy.start()
            after = direct.put("w/4", "c")
            col.wait_revision(after, timeout=20)
            assert [e.kv.mod_revision for e in col.events] == [start, *during, after]
            assert col.watch.reconnects >= 1
        finally:
            col.stop()


def test_identical_watches_are_coalesced(proxy: GrpcProxy, etcd: EtcdServer, prefix: str) -> None:
    """20 agents watching one prefix through the proxy cost etcd about one watcher; directly, 20."""
    base = etcd_watchers(etcd)
    stores = [Store(proxy.endpoint, prefix=prefix, transport="grpc") for _ in range(20)]
    cols = [Collector(s.watch("")) for s in stores]
    try:
        wait_for(lambda: all(c.watch.revision > 0 for c in cols), timeout=10, what="20 watches created")
        rev = stores[0].put("x", "1")
        for c in cols:
            c.wait_revision(rev)

        def coalesced() -> bool:  # watches that joined at different revisions merge once they are level
            stores[0].put("x", "2")
            return etcd_watchers(etcd) - base <= 3

        wait_for(coalesced, timeout=10, interval=0.2, what="the proxy to coalesce 20 watches")
    finally:
        for c in cols:
            c.stop()
        for s in stores:
            s.close()
    direct = [Store(etcd.endpoint, prefix=prefix, transport="grpc") for _ in range(20)]
    cols = [Collector(s.watch("")) for s in direct]
    try:
        wait_for(lambda: all(c.watch.revision > 0 for c in cols), timeout=10, what="20 direct watches")
        assert etcd_watchers(etcd) - base >= 20
    finally:
        for c in cols:
            c.stop()
        for s in direct:
            s.close()


def test_agents_converge_through_the_proxy(proxy: GrpcProxy, sim3: SimNetwork, etcd: EtcdServer,
                                          prefix: str) -> None:
    # `proxy` before `sim3`: the agents are stopped before the proxy is (else each waits out its etcd timeout)
    c = Cluster(sim3, etcd.endpoint, prefix)  # the test writes and checks through the gateway, directly
    try:
        vms = tutorial(c)
        for name in ("hv1", "hv2", "hv3"):
            c.host(name).start_agent(proxy.endpoint, prefix)  # the agents only know the proxy
        for name in ("hv1", "hv2", "hv3"):
            wait_for(lambda n=name: c.status(n), timeout=20, what=f"agent on {name} ready")
        c.wait_converged()
        assert proxy_calls(proxy, "LeaseGrant") >= 3  # every agent registered through the proxy
        for name in ("hv1", "hv2", "hv3"):
            assert c.store.get(f"liveness/chassis/{name}").lease != 0  # leases kept alive through the proxy
        flows = c.flows("hv1")
        assert any("f2:01:0a:0a:02:03" in f for f in flows)  # vm4 on hv3 reachable from hv1
        watches = proxy_calls(proxy, "Watch")
        c.delete(vms["vm4"])
        for name in ("hv1", "hv2", "hv3"):  # their watches through the proxy delivered the delete
            wait_for(lambda n=name: not any("f2:01:0a:0a:02:03" in f for f in c.flows(n)), timeout=10,
                     what=f"vm4's flows gone from {name} after its port was deleted")
        assert watches >= 1
    finally:
        c.store.close()


def test_etcd_users_through_the_proxy(tmp_path) -> None:
    """The proxy passes the auth token on: a user works, no user is AuthFailed with the usual hint."""
    server = EtcdServer(str(tmp_path / "etcd")).start()
    px = None
    try:
        def gw(path: str, body: dict) -> None:
            req = urllib.request.Request(server.url + path, json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
            urllib.request.urlopen(req, timeout=5).read()

        gw("/v3/auth/user/add", {"name": "root", "password": "pw"})
        gw("/v3/auth/role/add", {"name": "root"})
        gw("/v3/auth/user/grant", {"user": "root", "role": "root"})
        gw("/v3/auth/enable", {})
        px = GrpcProxy(str(tmp_path / "proxy"), [server.endpoint]).start()  # its /health says false: no token
        root = EtcdSecurity(user="root", password="pw")
        with Store(px.endpoint, prefix="/a/", transport="grpc", security=root) as s:
            rev = s.put("k", "v")
            assert s.get("k").value == "v"
            col = Collector(s.watch("", rev))
            try:
                col.wait_revision(rev)
            finally:
                col.stop()
            lease = s.lease_grant(5)
            assert lease.refresh() == 5
            lease.revoke()
        with Store(px.endpoint, prefix="/a/", transport="grpc", timeout=2) as s:
            with pytest.raises(AuthFailed, match="authentication enabled; give a user with --user"):
                s.get("k")
    finally:
        if px is not None:
            px.stop()
        server.stop()
