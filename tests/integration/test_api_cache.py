"""The read cache of the API server: read-your-writes through the server, other writers visible as soon as
the watch delivers them, `Cache-Control: no-cache` straight from etcd, and no stale answers while etcd is
unreachable (503 instead), recovering when etcd is back."""

from __future__ import annotations

import os

from test_api_helpers import (  # noqa: F401  (fixtures)
    Client,
    api_fixture,
    api_server,
    client_fixture,
    err,
    ok,
    prefix_fixture,
)

from tuplenet.api.proc import ApiProcess
from tuplenet.sandbox.etcd import EtcdServer
from tuplenet.sandbox.procs import wait_for
from tuplenet.store import Store


def test_read_your_writes(client):
    assert ok(client.get("/health"))["cache"]["usable"] is True
    ok(client.post("/switches", {"name": "ls1"}), 201)
    for i in range(40):
        port = ok(client.post("/switches/ls1/ports", {"name": f"p{i}", "subnet": "10.0.0.0/24"}), 201)
        # the very next read sees the write (reads add readiness: bound nowhere yet, so not ready)
        assert ok(client.get(f"/switches/ls1/ports/p{i}")) == {**port, "ready": "false"}
        assert len(ok(client.get("/switches/ls1/ports"))) == i + 1
        if i % 2:
            assert client.delete(f"/switches/ls1/ports/p{i}").status == 204
            err(client.get(f"/switches/ls1/ports/p{i}"), 404)
            ok(client.post("/switches/ls1/ports", {"name": f"p{i}", "ip": port["ip"]}), 201)


def test_other_writers_show_up_and_no_cache_reads_etcd(client, api, etcd):
    with Store(etcd.endpoint, prefix=api.prefix) as store:
        store.put("entity_view/LS/outside", "id=9")
        r = client.request("GET", "/switches/outside")
        # Straight from etcd: there at once.
        direct = Client(api)
        direct.conn.request("GET", "/api/v2/switches/outside", headers={
            "Authorization": f"Bearer {api.token}", "Cache-Control": "no-cache"})
        resp = direct.conn.getresponse()
        assert (resp.status, resp.read()) == (200, b'{"name":"outside","id":9}')
        direct.close()
        # Through the cache: as soon as the watch delivers it (a stale answer before that is allowed).
        assert r.status in (200, 404)
        wait_for(lambda: client.get("/switches/outside").status == 200, timeout=10, what="the watch")
        store.delete("entity_view/LS/outside")
        wait_for(lambda: client.get("/switches/outside").status == 404, timeout=10, what="the watch (delete)")


def test_unreachable_etcd_means_503_not_stale_reads(tmp_path):
    etcd = EtcdServer(str(tmp_path / "etcd")).start()
    api = ApiProcess(str(tmp_path / "api"), etcd.endpoint, "/cache-outage/",
                     extra_args=("-t", "1")).start()  # each request gives up on a dead etcd after 1 s
    c = Client(api)
    try:
        ok(c.post("/switches", {"name": "ls1"}), 201)
        wait_for(lambda: c.get("/health").json["cache"]["usable"], timeout=10, what="a usable cache")
        assert ok(c.get("/switches/ls1"))["id"] == 1
        etcd.stop()
        # Within the probe grace (2.5 s) plus a probe interval, reads stop coming from memory.
        wait_for(lambda: c.get("/switches/ls1").status == 503, timeout=15, what="reads to fail over to etcd")
        err(c.get("/switches"), 503, "etcd unavailable")
        err(c.post("/switches", {"name": "ls2"}), 503, "etcd unavailable")
        etcd.start()
        wait_for(lambda: c.get("/switches/ls1").status == 200, timeout=30, what="reads after etcd is back")
        ok(c.post("/switches", {"name": "ls2"}), 201)
        assert [s["name"] for s in ok(c.get("/switches"))] == ["ls1", "ls2"]
        wait_for(lambda: c.get("/health").json["cache"]["usable"], timeout=10, what="the cache again")
        assert os.path.exists(os.path.join(api.basedir, "api.log"))
    finally:
        c.close()
        api.stop()
        etcd.stop()


def test_cache_bookkeeping_is_exact():
    """Pure: applying watch events keeps keys sorted and exact; read-only txns answer at one revision."""
    import random

    from tuplenet.api.cache import TreeCache
    from tuplenet.store import KV, Compare, Event, Op, StoreError

    cache = TreeCache(None)  # type: ignore[arg-type]  (no store: nothing is started)
    model: dict[str, str] = {}
    rng = random.Random(7)
    rev = 0
    for _ in range(3000):
        rev += 1
        key = f"entity_view/LS/s{rng.randrange(5)}" + rng.choice(["", f"/lsp/p{rng.randrange(20)}"])
        if rng.random() < 0.35:
            model.pop(key, None)
            cache._apply([Event("DELETE", KV(key, "", rev, 0, 0, 0))], rev)
        else:
            model[key] = f"v{rev}"
            cache._apply([Event("PUT", KV(key, f"v{rev}", rev, rev, 1, 0))], rev)
        if rev % 100 == 0:
            for prefix in ("", "entity_view/LS/s1", "entity_view/LS/s1/", "zz"):
                kvs, at = cache.get_prefix(prefix)
                assert at == rev
                assert [(kv.key, kv.value) for kv in kvs] == sorted((k, v) for k, v in model.items()
                                                                    if k.startswith(prefix))
    res = cache.txn([], [Op.get("entity_view/LS/s1"), Op.get_prefix("entity_view/LS/s2/")])
    assert res.succeeded and res.revision == rev
    assert (res.responses[0].value if res.responses[0] else None) == model.get("entity_view/LS/s1")
    assert cache.wait_for(rev, 0.01) and not cache.wait_for(rev + 1, 0.01)
    for bad in (([Compare.missing("x")], [Op.get("x")]), ([], [Op.put("x", "1")])):
        try:
            cache.txn(*bad)
        except StoreError:
            pass
        else:
            raise AssertionError("a write through the read cache must be refused")
