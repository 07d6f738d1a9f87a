"""Reads without a round trip to etcd: every key under the prefix in memory, kept current by one watch.

The control layer reads through it exactly as through a Store (get, get_prefix, read-only txn), so answers
and messages are the same as tpctl's. Guarantees, documented in docs/api.md:
- read-your-writes through this server: a write answers only once the cache has applied its revision;
- other writers (tpctl, agents, other servers) show up as soon as the watch delivers them (milliseconds);
- the cache is used only while a liveness probe (every PROBE_INTERVAL s) reaches etcd, so an unreachable
  etcd makes reads fall back to etcd (503) instead of answering from an old state;
- `Cache-Control: no-cache` on a request reads straight from etcd (linearizable).
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from tuplenet.store import KV, Compacted, Compare, Op, Store, StoreError, TxnResult

log = logging.getLogger("tuplenet.api")
PROBE_INTERVAL = 1.0
PROBE_GRACE = 2.5  # the cache stays usable this long after the last successful probe
RETRY_DELAY = 0.5


TOPOLOGY_PREFIX = "entity_view/"

class TreeCache:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._data: dict[str, KV] = {}
        self._keys: list[str] = []  # sorted, for prefix scans
        self.revision = 0  # every change under the prefix up to here is applied
        self.topology_revision = 0  # the last change under entity_view/ (GET /trace keeps its model until then)
        # called with topology_revision after a listing and after each applied change under entity_view/,
        # outside the lock, on the watch thread: it must only take note (GET /trace's warmer does)
        self.on_topology: Callable[[int], None] | None = None
        self._listed = False
        self._live_until = 0.0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._watch: Any = None
        self._threads: list[threading.Thread] = []

    # ---- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> TreeCache:
        for target, name in ((self._follow, "api-cache-watch"), (self._probe, "api-cache-probe")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        watch = self._watch
        if watch is not None:
            watch.close()
        for t in self._threads:
            t.join(timeout=5)

    @property
    def usable(self) -> bool:
        return self._listed and time.monotonic() < self._live_until

    def _probe(self) -> None:
        while not self._stop.is_set():
            try:
                self.store.txn([], [])
                self._live_until = time.monotonic() + PROBE_GRACE
            except StoreError:
                self._live_until = 0.0
            self._stop.wait(PROBE_INTERVAL)

    def _follow(self) -> None:
        """List, then watch from the next revision; start over after compaction or any failure."""
        while not self._stop.is_set():
            try:
                kvs, rev = self.store.get_prefix("")
                with self._cond:
                    self._data = {kv.key: kv for kv in kvs}
                    self._keys = sorted(self._data)
                    self.revision = self.topology_revision = rev
                    self._listed = True
                    self._cond.notify_all()
                self._live_until = time.monotonic() + PROBE_GRACE
                self._announce(rev)
                self._watch = self.store.watch("", start_revision=rev + 1)
                for batch in self._watch:
                    self._apply(batch.events, batch.revision)
            except Compacted:
                log.info("api cache: watch compacted; listing again")
            except Exception as exc:  # noqa: BLE001 - the cache must outlive any etcd trouble
                with self._cond:
                    self._listed = False
                if not self._stop.is_set():
                    log.warning("api cache: %s; reads go to etcd until it is back", exc)
                    self._stop.wait(RETRY_DELAY)

    def _apply(self, events: Sequence[Any], revision: int) -> None:
        topology = False
        with self._cond:
            data, keys = self._data, self._keys
            for ev in events:
                key = ev.kv.key
                if key.startswith(TOPOLOGY_PREFIX):
                    self.topology_revision = max(self.topology_revision, revision)
                    topology = True
                if ev.type == "DELETE":
                    if data.pop(key, None) is not None:
                        del keys[bisect.bisect_left(keys, key)]
                else:
                    if key not in data:
                        bisect.insort(keys, key)
                    data[key] = ev.kv
            self.revision = max(self.revision, revision)
            self._cond.notify_all()
            topology_revision = self.topology_revision
        if topology:
            self._announce(topology_revision)

    def _announce(self, topology_revision: int) -> None:
        hook = self.on_topology
        if hook is not None:
            try:
                hook(topology_revision)
            except Exception:  # noqa: BLE001 - a listener's bug must not stop the cache
                log.exception("api cache: topology listener failed")

    def wait_for(self, revision: int, timeout: float) -> bool:
        """Block until the cache has applied `revision` (True) or `timeout` seconds passed (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: self.revision >= revision, timeout)

    # ---- the read side of the Store API (what tuplenet.control reads with) ----------------------------------

    def get(self, key: str) -> KV | None:
        return self._data.get(key)

    def _scan(self, prefix: str) -> list[KV]:
        keys, data = self._keys, self._data
        out = []
        for i in range(bisect.bisect_left(keys, prefix), len(keys)):
            key = keys[i]
            if not key.startswith(prefix):
                break
            out.append(data[key])
        return out

    def get_prefix(self, key_prefix: str = "", page_size: int = 1000,
                   on_page: Callable[[list[KV], bool], None] | None = None) -> tuple[list[KV], int]:
        """As Store.get_prefix, from memory (one page)."""
        with self._cond:
            kvs, rev = self._scan(key_prefix), self.revision
        if on_page is not None:
            on_page(kvs, True)
        return kvs, rev

    def txn(self, compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()) -> TxnResult:
        if compares or any(op.kind not in ("get", "get_prefix") for op in success):
            raise StoreError("the read cache takes read-only transactions")  # a bug, never user input
        with self._cond:
            responses = [self._data.get(op.key) if op.kind == "get" else self._scan(op.key) for op in success]
            return TxnResult(True, self.revision, responses)


class RevisionRecorder:
    """A Store wrapper for one write request: remembers the revision of the write it committed."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.revision = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def txn(self, compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()) -> TxnResult:
        result = self._store.txn(compares, success, failure)
        if result.succeeded and any(op.kind in ("put", "delete", "delete_prefix") for op in success):
            self.revision = max(self.revision, result.revision)
        return result

    def txn_batches(self, ops: Sequence[Op], compares: Sequence[Compare] = ()) -> list[TxnResult]:
        results = self._store.txn_batches(ops, compares)
        for r in results:
            if r.succeeded:
                self.revision = max(self.revision, r.revision)
        return results
