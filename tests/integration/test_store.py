"""The store against a real etcd: kv, paging, txns, leases, watch across kill -9, compaction, failover."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tuplenet.sandbox.etcd import EtcdServer
from tuplenet.sandbox.procs import free_port, wait_for
from tuplenet.store import (
    AsyncStore,
    Compacted,
    Compare,
    Event,
    LeaseExpired,
    Op,
    Store,
    StoreError,
    TxnConflict,
    Unavailable,
    WatchBatch,
)
from tuplenet.store.codec import kv_size
from tuplenet.store.watch import Watch


@pytest.fixture
def store(etcd: EtcdServer, prefix: str):
    s = Store(etcd.endpoint, prefix=prefix, timeout=5.0)
    yield s
    s.close()


class Collector:
    """Drains a watch in a thread; tests poll `events` with a timeout instead of sleeping."""

    def __init__(self, watch: Watch) -> None:
        self.watch = watch
        self.batches: list[WatchBatch] = []
        self.events: list[Event] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for batch in self.watch:
                self.batches.append(batch)
                self.events.extend(batch.events)
        except BaseException as exc:  # noqa: BLE001 - checked by the test
            self.error = exc

    def wait_revision(self, revision: int, timeout: float = 15.0) -> None:
        def reached() -> bool:
            return self.error is not None or bool(self.events and self.events[-1].kv.mod_revision >= revision)

        wait_for(reached, timeout=timeout, what=f"watch to reach revision {revision}")
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        self.watch.close()
        self.thread.join(timeout=5)
        assert not self.thread.is_alive(), "watch did not stop after close()"


def test_put_get_delete(store: Store) -> None:
    rev = store.put("entity_view/LS/ls1", "id=1")
    kv = store.get("entity_view/LS/ls1")
    assert kv is not None
    assert (kv.key, kv.value, kv.mod_revision, kv.version) == ("entity_view/LS/ls1", "id=1", rev, 1)
    rev2 = store.put("entity_view/LS/ls1", "id=2, ünïcode")
    kv = store.get("entity_view/LS/ls1")
    assert kv is not None and kv.value == "id=2, ünïcode" and kv.mod_revision == rev2 > rev
    assert kv.create_revision == rev and kv.version == 2
    assert store.get("entity_view/LS/missing") is None
    assert store.delete("entity_view/LS/ls1") == 1
    assert store.delete("entity_view/LS/ls1") == 0
    assert store.get("entity_view/LS/ls1") is None


def test_prefix_without_leading_slash(etcd: EtcdServer, prefix: str) -> None:
    name = prefix.strip("/") + "-name"
    with Store([etcd.endpoint], prefix=name, timeout=5.0) as s:
        assert s.prefix == name + "/"
        s.put("k", "v")
        with Store(etcd.endpoint, prefix="", timeout=5.0) as raw:
            assert raw.get(name + "/k") is not None
        assert s.delete_prefix("") == 1


def test_get_prefix_paging(store: Store) -> None:
    keys = [f"dir/k{i:03d}" for i in range(25)]
    store.txn_batches([Op.put(k, f"v{k}") for k in keys] + [Op.put("dir0", "x"), Op.put("dirx", "x"),
                                                             Op.put("di", "x")])
    for page_size in (1, 3, 7, 25, 1000):
        kvs, rev = store.get_prefix("dir/", page_size=page_size)
        assert [kv.key for kv in kvs] == keys
        assert all(kv.value == f"v{kv.key}" for kv in kvs)
        assert rev >= max(kv.mod_revision for kv in kvs)
    assert store.get_prefix("nothing/") == ([], store.revision())
    everything, _ = store.get_prefix("", page_size=4)
    assert [kv.key for kv in everything] == sorted(keys + ["di", "dir0", "dirx"])


def test_get_prefix_pages_are_pinned_to_one_revision(store: Store) -> None:
    store.txn_batches([Op.put(f"p/{i}", "old") for i in range(6)])
    page, rev, more = store.get_prefix_page("p/", None, 3)
    assert more and [kv.key for kv in page] == ["p/0", "p/1", "p/2"]
    store.put("p/4", "new")
    store.delete("p/5")
    rest, rev2, more = store.get_prefix_page("p/", page[-1].key, 3, rev)
    assert not more
    assert [(kv.key, kv.value) for kv in rest] == [("p/3", "old"), ("p/4", "old"), ("p/5", "old")]
    assert rev2 > rev  # the header says "now"; the data is from `rev`
    kvs, _ = store.get_prefix("p/", page_size=2)
    assert [(kv.key, kv.value) for kv in kvs][-2:] == [("p/3", "old"), ("p/4", "new")]


def test_get_prefix_shows_each_page_as_it_arrives(store: Store) -> None:
    store.txn_batches([Op.put(f"q/{i:02d}", str(i)) for i in range(23)])
    pages: list[tuple[list[str], bool]] = []
    kvs, _ = store.get_prefix("q/", page_size=5, on_page=lambda p, first: pages.append(([kv.key for kv in p], first)))
    assert [k for p, _ in pages for k in p] == [kv.key for kv in kvs] == [f"q/{i:02d}" for i in range(23)]
    assert [first for _, first in pages] == [True] + [False] * (len(pages) - 1) and len(pages) > 4


def test_get_prefix_starts_over_when_compacted_mid_read(store: Store, monkeypatch) -> None:
    store.txn_batches([Op.put(f"r/{i:02d}", "old") for i in range(10)])
    real = store._range_page
    calls: list[int] = []

    def compact_after_first_page(full_prefix, start, limit, revision):
        calls.append(revision)
        answer = real(full_prefix, start, limit, revision)
        if len(calls) == 1:
            store.put("r/05", "new")
            store.compact(store.put("zz", "bump"))
        return answer

    monkeypatch.setattr(store, "_range_page", compact_after_first_page)
    pages: list[tuple[list[str], bool]] = []
    kvs, rev = store.get_prefix("r/", page_size=4, on_page=lambda p, first: pages.append(([kv.key for kv in p], first)))
    assert [kv.key for kv in kvs] == [f"r/{i:02d}" for i in range(10)]
    # the caller saw the first attempt's first page, then the whole second attempt, which says it starts over
    restart = max(i for i, (_, first) in enumerate(pages) if first)
    assert restart > 0 and [k for p, _ in pages[restart:] for k in p] == [kv.key for kv in kvs]
    assert kvs[5].value == "new" and rev > calls[1]  # the second, failed page was pinned to the old revision
    assert calls[0] == 0 and calls[2] == 0  # ... and the read started over


def test_big_values_are_written_and_read_in_bounded_requests(store: Store, monkeypatch) -> None:
    value = "v" * 50_000
    results = store.txn_batches([Op.put(f"big/{i:03d}", value) for i in range(150)])
    assert len(results) >= 8  # cut by bytes (about 1 MiB per txn), not just by the 128-op limit
    real = store._range_page
    sizes: list[int] = []

    def record(full_prefix, start, limit, revision):
        answer = real(full_prefix, start, limit, revision)
        sizes.append(sum(kv_size(kv) for kv in answer.get("kvs", ())))  # gateway dicts or gRPC raw tuples
        return answer

    monkeypatch.setattr(store, "_range_page", record)
    kvs, _ = store.get_prefix("big/")
    assert len(kvs) == 150 and all(kv.value == value for kv in kvs)
    assert len(sizes) > 1 and max(sizes) < 5 << 20  # ~4 MiB pages


def test_get_prefix_100k_keys(store: Store) -> None:
    n, value = 100_000, "ip=10.0.1.2,mac=f2:01:0a:00:01:02,chassis=hv3," + "x" * 55
    ops = [Op.put(f"entity_view/LS/ls{i // 1000}/lsp/p{i:06d}", value) for i in range(n)]
    t0 = time.monotonic()
    with ThreadPoolExecutor(4) as pool:  # concurrent txns let etcd share fsyncs; each call is still batched
        list(pool.map(store.txn_batches, [ops[i::4] for i in range(4)]))
    t1 = time.monotonic()
    kvs, rev = store.get_prefix("entity_view/")
    t2 = time.monotonic()
    assert len(kvs) == n
    assert [kv.key for kv in kvs] == sorted(op.key for op in ops)
    assert all(kv.value == value and kv.mod_revision <= rev for kv in kvs)
    print(f"100k keys: write {t1 - t0:.1f}s, get_prefix {t2 - t1:.2f}s")
    assert t2 - t0 < 60  # ~11 s on an idle 2-vCPU VM; this bound only catches pathological regressions
    assert store.delete_prefix("entity_view/") == n


def test_txn_compare_and_swap(store: Store) -> None:
    create = store.txn([Compare.missing("lock")], [Op.put("lock", "a")], [Op.get("lock")])
    assert create.succeeded and create.responses == [create.revision]
    again = store.txn([Compare.missing("lock")], [Op.put("lock", "b")], [Op.get("lock")])
    assert not again.succeeded and again.responses[0].value == "a"
    with pytest.raises(TxnConflict):
        again.ensure("take lock")
    kv = again.responses[0]
    swap = store.txn([Compare.mod_revision("lock", "=", kv.mod_revision), Compare.value("lock", "=", "a")],
                     [Op.put("lock", "c"), Op.get("lock")])
    assert swap.succeeded and swap.responses[1].value == "c"
    stale = store.txn([Compare.mod_revision("lock", "=", kv.mod_revision)], [Op.delete("lock")])
    assert not stale.succeeded and store.get("lock").value == "c"
    delete = store.txn([Compare.exists("lock"), Compare.version("lock", "=", 2)], [Op.delete("lock")])
    assert delete.responses == [1]


def test_txn_start_over_the_gateway_sends_nothing(etcd: EtcdServer, prefix: str) -> None:
    """Sending without waiting is the gRPC transport's (test_store_grpc.py): the gateway says so, writes
    nothing, and its caller uses txn()."""
    with Store(etcd.endpoint, prefix=prefix, transport="json") as s:
        assert s.txn_start([Compare.missing("k")], [Op.put("k", "v")], lambda r, e: None) is False
        assert s.get("k") is None


def test_txn_over_128_ops_rejected(store: Store) -> None:
    with pytest.raises(StoreError, match="at most 128"):
        store.txn([], [Op.put(f"k{i}", "v") for i in range(129)])
    assert store.get_prefix("") == ([], store.revision())


def test_txn_batches(store: Store) -> None:
    ops = [Op.put(f"b/{i:03d}", str(i)) for i in range(300)] + [Op.delete("b/000"), Op.put("b/000", "again")]
    results = store.txn_batches(ops, [Compare.missing("guard")])
    assert [r.succeeded for r in results] == [True] * 4
    assert len({r.revision for r in results}) == 4  # one atomic txn each
    kvs, _ = store.get_prefix("b/")
    assert len(kvs) == 300 and kvs[0].value == "again"
    store.put("guard", "1")
    blocked = store.txn_batches([Op.put("b/new", "x")] * 1 + [Op.put(f"c/{i}", "x") for i in range(200)],
                                [Compare.missing("guard")])
    assert [r.succeeded for r in blocked] == [False]
    assert store.get("b/new") is None and store.get_prefix("c/")[0] == []


def test_lease_keepalive_expiry_revoke(store: Store) -> None:
    lease = store.lease_grant(2)
    store.put("chassis/hv1", "ip=1", lease=lease.id)
    assert store.get("chassis/hv1").lease == lease.id
    assert lease.refresh() == 2
    lease.start_keepalive(interval=0.3)
    deadline = time.monotonic() + 4.0  # twice the ttl: only the keepalive keeps the key
    while time.monotonic() < deadline:
        assert store.get("chassis/hv1") is not None
        time.sleep(0.2)
    lease.stop()
    wait_for(lambda: store.get("chassis/hv1") is None, timeout=10, what="leased key to expire")
    assert lease.time_to_live() == -1
    other = store.lease_grant(30)
    store.put("chassis/hv2", "ip=2", lease=other.id)
    other.revoke()
    assert store.get("chassis/hv2") is None
    other.revoke()  # already gone: not an error
    with pytest.raises(LeaseExpired):
        store.put("chassis/hv2", "ip=2", lease=other.id)


def test_lease_regrant_after_expiry(store: Store) -> None:
    regrants: list[int] = []

    def on_regrant(new_id: int) -> None:
        store.put("chassis/hv1", "ip=1", lease=new_id)
        regrants.append(new_id)

    lease = store.lease_grant(5)
    first = lease.id
    store.put("chassis/hv1", "ip=1", lease=first)
    lease.start_keepalive(interval=0.2, on_regrant=on_regrant)
    try:
        store.lease(first, 5).revoke()  # as if it had expired while etcd was unreachable
        wait_for(lambda: regrants, timeout=10, what="lease re-grant")
        assert lease.id == regrants[0] != first
        kv = wait_for(lambda: store.get("chassis/hv1"), timeout=5, what="key re-put")
        assert kv.lease == lease.id
    finally:
        lease.revoke()


def test_watch_replays_history_from_start_revision(store: Store) -> None:
    r1 = store.put("w/a", "1")
    r2 = store.put("w/b", "2")
    r3 = store.delete("w/a") and store.revision()
    store.put("other", "not watched")
    r4 = store.txn([], [Op.put("w/c", "3"), Op.put("w/d", "4")]).revision
    col = Collector(store.watch("w/", r1))
    try:
        col.wait_revision(r4)
        got = [(e.type, e.kv.key, e.kv.value, e.kv.mod_revision) for e in col.events]
        assert got == [("PUT", "w/a", "1", r1), ("PUT", "w/b", "2", r2), ("DELETE", "w/a", "", r3),
                       ("PUT", "w/c", "3", r4), ("PUT", "w/d", "4", r4)]
        assert col.batches[-1].revision == r4
    finally:
        col.stop()
    col2 = Collector(store.watch("w/", r2 + 1))
    try:
        col2.wait_revision(r4)
        assert [e.kv.mod_revision for e in col2.events] == [r3, r4, r4]
    finally:
        col2.stop()


def test_watch_close_while_idle_and_store_close(store: Store, etcd: EtcdServer, prefix: str) -> None:
    col = Collector(store.watch("idle/", 0))
    wait_for(lambda: col.watch._conn is not None and col.watch.revision > 0, timeout=5, what="watch created")
    t0 = time.monotonic()
    col.stop()
    assert time.monotonic() - t0 < 1.0
    other = Store(etcd.endpoint, prefix=prefix)
    col2 = Collector(other.watch("idle/", 0))
    wait_for(lambda: col2.watch.revision > 0, timeout=5, what="watch created")
    other.close()
    col2.thread.join(timeout=2)
    assert not col2.thread.is_alive() and col2.error is None


def test_watch_survives_kill_9_and_restart(tmp_path) -> None:
    server = EtcdServer(str(tmp_path / "etcd")).start()
    try:
        s = Store(server.endpoint, prefix="/tn/", timeout=20.0)
        expected: list[tuple[str, str, int]] = []

        def put(key: str, value: str) -> None:
            expected.append(("PUT", key, s.put(key, value)))

        for i in range(5):
            put(f"before/{i}", "x")
        start = expected[0][2]
        col = Collector(s.watch("", start))
        for i in range(5):
            put(f"watching/{i}", "y")
        expected.append(("DELETE", "before/0", s.txn([], [Op.delete("before/0")]).revision))
        col.wait_revision(expected[-1][2])
        server.stop(kill=True)
        with pytest.raises(Unavailable):
            Store(server.endpoint, prefix="/tn/", timeout=0.3).put("x", "y")
        during = threading.Thread(target=put, args=("during/0", "z"))  # retries until etcd is back
        during.start()
        server.start()
        during.join(timeout=20)
        assert not during.is_alive()
        for i in range(5):
            put(f"after/{i}", "w")
        # A CAS txn is not retried once sent; it must not be sent on a pooled connection the kill left dead.
        server.stop(kill=True)
        server.start()
        cas = s.txn([Compare.exists("after/0")], [Op.put("after/0", "cas")])
        assert cas.succeeded
        expected.append(("PUT", "after/0", cas.revision))
        col.wait_revision(expected[-1][2], timeout=20)
        got = [(e.type, e.kv.key, e.kv.mod_revision) for e in col.events]
        assert got == expected
        assert col.watch.reconnects >= 1
        col.stop()
        s.close()
    finally:
        server.stop()


def test_compaction_raises_compacted_and_relist_works(store: Store) -> None:
    first = store.put("c/a", "1")
    store.put("c/b", "2")
    store.delete("c/a")
    compact_at = store.put("c/c", "3")
    store.compact(compact_at)
    store.compact(compact_at - 1)  # already compacted: no-op
    with pytest.raises(Compacted) as info:
        list(store.watch("c/", first))
    assert info.value.compact_revision == compact_at
    kvs, rev = store.get_prefix("c/")
    assert [(kv.key, kv.value) for kv in kvs] == [("c/b", "2"), ("c/c", "3")]
    col = Collector(store.watch("c/", rev + 1))
    try:
        after = store.put("c/d", "4")
        col.wait_revision(after)
        assert [(e.kv.key, e.kv.mod_revision) for e in col.events] == [("c/d", after)]
    finally:
        col.stop()


def test_failover_to_second_endpoint(etcd: EtcdServer, prefix: str) -> None:
    dead = f"127.0.0.1:{free_port()}"
    with Store(f"{dead},{etcd.endpoint}", prefix=prefix, timeout=5.0) as s:
        t0 = time.monotonic()
        rev = s.put("k", "v")
        assert s.get("k").mod_revision == rev
        assert time.monotonic() - t0 < 1.0
        assert s.status().endpoint == etcd.endpoint
        assert [m.client_urls for m in s.members()] == [[etcd.url]]
        col = Collector(s.watch("", rev))
        try:
            col.wait_revision(rev, timeout=5)
        finally:
            col.stop()


def test_failover_past_a_hung_endpoint(etcd: EtcdServer, prefix: str) -> None:
    """An endpoint that accepts connections but never answers costs one attempt slot, not the deadline."""
    import socket

    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(16)
    try:
        with Store([f"127.0.0.1:{hung.getsockname()[1]}", etcd.endpoint], prefix=prefix, timeout=2.0) as s:
            t0 = time.monotonic()
            assert s.put("k", "v") > 0
            assert time.monotonic() - t0 > 0.9  # the hung endpoint had its 1 s slot, then the good one
            t0 = time.monotonic()
            assert s.get("k").value == "v"
            assert time.monotonic() - t0 < 0.9  # the endpoint that answered is tried first now
    finally:
        hung.close()


def test_unavailable_names_endpoints() -> None:
    dead = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    with Store(dead, timeout=0.5) as s:
        t0 = time.monotonic()
        with pytest.raises(Unavailable) as info:
            s.get("k")
        elapsed = time.monotonic() - t0
    message = str(info.value)
    assert all(ep in message for ep in dead) and "\n" not in message
    assert 0.3 < elapsed < 3.0


def test_async_store(store: Store) -> None:
    async def main() -> None:
        astore = AsyncStore(store)
        rev = await astore.put("a/k", "v")
        assert (await astore.get("a/k")).mod_revision == rev
        result = await astore.txn([Compare.missing("a/k2")], [Op.put("a/k2", "v2")])
        assert result.succeeded
        kvs, _ = await astore.get_prefix("a/")
        assert [kv.key for kv in kvs] == ["a/k", "a/k2"]
        assert await astore.delete("a/k2") == 1
        watch = astore.watch("a/", rev)
        seen: list[tuple[str, str]] = []
        async with watch:
            last = await astore.put("a/k3", "v3")
            async for batch in watch:
                seen.extend((e.type, e.kv.key) for e in batch.events)
                if batch.revision >= last:
                    break
        assert seen == [("PUT", "a/k"), ("PUT", "a/k2"), ("DELETE", "a/k2"), ("PUT", "a/k3")]
        assert watch.watch.closed

    asyncio.run(asyncio.wait_for(main(), timeout=30))
