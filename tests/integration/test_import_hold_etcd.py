"""The agent's etcd side (TopologySync, real etcd) during imports: a running import is applied in one step
when its marker goes; an agent starting during an interrupted import starts from the tree before it and holds
the rest (and any other change) until `--resume` completes it."""

from __future__ import annotations

import queue
import time

import pytest

from tuplenet.agent.etcdsync import TopologySync
from tuplenet.control import Controller
from tuplenet.control.importwrite import ImportInterrupted
from tuplenet.model import IMPORT_MARKER_KEY
from tuplenet.store import Store, StoreError


@pytest.fixture
def store(etcd, prefix):
    s = Store(etcd.endpoint, prefix=prefix)
    yield s
    s.delete_prefix("")
    s.close()


def _records(switches: int = 3, ports: int = 150) -> list[tuple[int, str, str]]:
    out = []
    for s in range(switches):
        out.append((0, f"entity_view/LS/imp{s}", f"id={s + 100}"))
        out += [(0, f"entity_view/LS/imp{s}/lsp/p{p}", f"ip=10.{s}.0.{p + 2},mac=f2:01:00:00:00:01")
                for p in range(ports)]
    return out


class _Sink:
    """Collects what the sync emits, like the agent's queue, and keeps the applied state."""

    def __init__(self) -> None:
        self.q: queue.Queue = queue.Queue()
        self.batches: list[tuple[str, list, int]] = []
        self.state: dict[tuple, object] = {}

    def emit(self, kind: str, changes: list, rev: int) -> None:
        self.q.put((kind, changes, rev))

    def drain_until(self, sync: TopologySync, store: Store, timeout: float = 10.0) -> None:
        target = store.revision()
        deadline = time.monotonic() + timeout
        while sync.revision < target or not self.q.empty():
            assert time.monotonic() < deadline, f"sync stuck at {sync.revision} < {target}"
            try:
                self.apply(*self.q.get(timeout=0.05))
            except queue.Empty:
                pass

    def apply(self, kind: str, changes: list, rev: int) -> None:
        self.batches.append((kind, changes, rev))
        for fkey, obj, _ in changes:
            if obj is None:
                self.state.pop(fkey, None)
            else:
                self.state[fkey] = obj


def _tree(store: Store) -> set[tuple]:
    return {("LS", *k.split("/")[2:3]) if k.count("/") == 2 else ("lsp", k.split("/")[2], k.split("/")[4])
            for k in (kv.key for kv in store.get_prefix("entity_view/")[0]) if k != IMPORT_MARKER_KEY}


def test_running_import_is_applied_in_one_step(store):
    Controller(store).add_switch("pre")
    sink = _Sink()
    sync = TopologySync(store, sink.emit)
    changes, rev = sync.topology_listing()
    sink.apply("list", changes, rev)
    sync.start(rev)
    try:
        result = Controller(store).import_records(_records())
        assert result.batches >= 4
        sink.drain_until(sync, store)
    finally:
        sync.stop()
    imported = [b for b in sink.batches if any(c[0][1].startswith("imp") for c in b[1])]
    assert len(imported) == 1 and len(imported[0][1]) == len(_records())  # all at once, at the marker delete
    assert set(sink.state) == _tree(store)


class _FailAt:
    """A store whose n-th transaction from now raises StoreError (etcd gone mid-import)."""

    def __init__(self, store: Store, n: int) -> None:
        self._s, self._n = store, n

    def __getattr__(self, name: str):
        return getattr(self._s, name)

    def txn(self, *a, **kw):
        self._n -= 1
        if self._n == 0:
            raise StoreError("etcd unavailable")
        return self._s.txn(*a, **kw)


def test_agent_starting_during_an_interrupted_import_holds_it_until_resumed(store):
    Controller(store).add_switch("pre")
    before = _tree(store)
    with pytest.raises(ImportInterrupted):
        Controller(_FailAt(store, 4)).import_records(_records())
    assert store.get(IMPORT_MARKER_KEY) is not None and len(_tree(store)) > len(before)
    sink = _Sink()
    sync = TopologySync(store, sink.emit)
    changes, rev = sync.topology_listing()
    sink.apply("list", changes, rev)
    assert set(sink.state) == before  # the tree before the import, not the half-written one
    sync.start(rev)
    try:
        Controller(store).add_switch("during")  # any change is held too (one consistent step later)
        sink.drain_until(sync, store)
        assert set(sink.state) == before and sync.hold.status()["holding"] is not None
        assert sync.hold.status()["held_changes"] > 1
        Controller(store).import_records(_records(), resume=True)
        sink.drain_until(sync, store)
    finally:
        sync.stop()
    assert store.get(IMPORT_MARKER_KEY) is None
    assert set(sink.state) == _tree(store) and ("LS", "during") in sink.state
    assert sync.hold.status()["holding"] is None


def test_a_streamed_start_listing_is_the_whole_answer_without_an_import(store):
    Controller(store).import_records(_records())
    pages: list[list] = []
    instead, side, rev = TopologySync(store, lambda *a: None).streamed_listing(pages.append)
    assert instead is None and len(pages) > 1  # the agent applied the pages as they came, nothing else to do
    assert {c[0] for p in pages for c in p} == _tree(store) and rev == store.revision()


def test_a_streamed_start_listing_during_an_interrupted_import_says_what_to_hold_instead(store):
    Controller(store).add_switch("pre")
    before = _tree(store)
    with pytest.raises(ImportInterrupted):
        Controller(_FailAt(store, 4)).import_records(_records())
    pages: list[list] = []
    instead, side, rev = TopologySync(store, lambda *a: None).streamed_listing(pages.append)
    assert len({c[0] for p in pages for c in p}) > len(before)  # the pages showed the half-written tree ...
    assert instead is not None and {c[0] for c in instead} == before  # ... the view must hold the tree before
