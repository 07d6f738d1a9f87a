"""etcd → view facts: the initial listing, then a watch that resumes across disconnects and re-lists on
compaction. Runs in its own thread and hands decoded batches to the agent's queue."""

from __future__ import annotations

import threading
from collections.abc import Callable

from ..lazylog import get_logger
from ..model import ModelError, decode, parse_key
from ..store import KV, Compacted, Store, StoreError
from .importhold import ImportHold

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

log = get_logger(__name__)  # logging loads with the first message (lazylog)

TOPOLOGY = "entity_view/"
# Every fact kind a record under TOPOLOGY decodes to (model.parse_key): what a re-listing replaces.
TOPOLOGY_KINDS = frozenset(("LS", "LR", "lsp", "lrp", "lsr", "lnat", "chassis", "mirror", "address_set",
                            "port_group", "acl", "pg_acl", "ls_lb", "lr_lb"))

Change = tuple[tuple, "Any", "KV | None"]  # (fact key, entity or None, the KV it came from)


class Decoder:
    """Turns KVs into fact changes; reports a malformed record once per value and skips it (the previous
    good version, if any, stays in force until the record is fixed)."""

    def __init__(self) -> None:
        self._bad: dict[str, str] = {}
        self.bad_records = 0

    def change(self, kv: KV, deleted: bool) -> Change | None:
        parsed = parse_key(kv.key)
        if parsed is None:
            return None
        kind, ident = parsed
        fkey = (kind, *ident)
        if deleted:
            self._bad.pop(kv.key, None)
            return fkey, None, None
        try:
            obj = decode(kind, ident, kv.value)
        except ModelError as exc:
            if self._bad.get(kv.key) != kv.value:
                self._bad[kv.key] = kv.value
                self.bad_records += 1
                log.error("ignoring malformed record %s", exc)
            return None
        if self._bad.pop(kv.key, None) is not None:
            log.info("record %s is valid again", kv.key)
        return fkey, obj, kv


LIVENESS = "liveness/chassis/"
FactOf = Callable[[str], "tuple | None"]  # key below the prefix -> fact key (None: not ours)


def _live_fact(rest: str) -> tuple | None:
    return ("live", rest) if rest else None


def _health_fact(rest: str) -> tuple | None:
    """`communicate/lb_health/<LS|LR>/<dp>/<lb>/<ip>:<port>` -> ("lbh", kind, dp, lb, "ip:port"): present means
    the backend is out of service, whatever the value says (model/lb.py)."""
    from ..model.lb import HEALTH_PREFIX, parse_health_key

    try:
        hk = parse_health_key(HEALTH_PREFIX + rest)
    except ModelError:
        return None
    return ("lbh", hk.dp_kind, hk.dp, hk.lb, hk.backend.text())


class PrefixSync:
    """Keys under one prefix as present/absent facts (value True): `liveness/chassis/<id>` (lease-backed,
    see chassis.py) -> `("live", id)`, which the binding claim rule reads (a port recorded on a live chassis
    is never taken); load-balancer health verdicts -> `("lbh", ...)`. Listed with the topology, then watched
    in its own thread; a compacted watch re-lists and emits only the difference."""

    def __init__(self, store: Store, emit: Callable[[str, list[Change], int], None], prefix: str = LIVENESS,
                 fact: FactOf = _live_fact, name: str = "liveness") -> None:
        self.store = store
        self.emit = emit
        self.prefix = prefix
        self.fact = fact
        self.name = name
        self.live: set[tuple] = set()  # fact keys present
        self.revision = 0
        self._watch = None
        self._stop = threading.Event()

    def _fact_of(self, key: str) -> tuple | None:
        return self.fact(key[len(self.prefix):]) if key.startswith(self.prefix) else None

    def listing(self) -> list[Change]:
        kvs, rev = self.store.get_prefix(self.prefix)
        self.revision = rev
        new = {f for kv in kvs if (f := self._fact_of(kv.key)) is not None}
        out: list[Change] = [(f, None, None) for f in sorted(self.live - new)]
        out += [(f, True, None) for f in sorted(new - self.live)]
        self.live = new
        return out

    def start(self) -> None:
        threading.Thread(target=self._run, name=f"etcd-{self.name}", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._watch = self.store.watch(self.prefix, self.revision + 1)
                for batch in self._watch:
                    if self._stop.is_set():
                        return
                    out: list[Change] = []
                    for ev in batch.events:
                        f = self._fact_of(ev.kv.key)
                        if f is None:
                            continue
                        if ev.type == "DELETE":
                            self.live.discard(f)
                            out.append((f, None, None))
                        else:
                            self.live.add(f)
                            out.append((f, True, None))
                    self.revision = max(self.revision, batch.revision)
                    if out:
                        self.emit("etcd", out, self.revision)
            except Compacted:
                self._relist()
            except StoreError as exc:
                if self._stop.is_set():
                    return
                log.warning("etcd %s watch failed: %s; retrying", self.name, exc)
                self._stop.wait(0.5)
            except Exception:  # never let the watch thread die silently
                log.exception("etcd %s watch crashed; retrying", self.name)
                self._stop.wait(0.5)

    def _relist(self) -> None:
        while not self._stop.is_set():
            try:
                out = self.listing()
            except StoreError as exc:
                log.warning("%s re-list failed: %s; retrying", self.name, exc)
                self._stop.wait(0.5)
                continue
            if out:
                self.emit("etcd", out, self.revision)
            return


LivenessSync = PrefixSync


def health_sync(store: Store, emit: Callable[[str, list[Change], int], None]) -> PrefixSync:
    """Load-balancer health verdicts (written by the checking agents, healthcheck_service.py) as facts."""
    from ..model.lb import HEALTH_PREFIX

    return PrefixSync(store, emit, HEALTH_PREFIX, _health_fact, "lb-health")


class TopologySync:
    """Owns the etcd side of the agent's view."""

    def __init__(self, store: Store, emit: Callable[[str, list[Change], int], None]) -> None:
        self.store = store
        self.emit = emit
        self.decoder = Decoder()
        self.liveness = LivenessSync(store, emit)
        self.health = health_sync(store, emit)
        # Changes are held while a `tpctl import` is half written (see importhold).
        self.hold = ImportHold(self.decoder.change, lambda changes: self.emit("etcd", changes, self.revision))
        self.revision = 0
        self.resyncs = 0
        self.watch_restarts = 0  # the watch failed and was re-opened (the store resumes inside too)
        self._watch = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def listing(self) -> tuple[list[Change], int]:
        """The start-up listing: topology plus liveness (claims must know who is live from the start)."""
        out, rev = self.topology_listing()
        return out + self.liveness.listing() + self.health.listing(), rev

    def streamed_listing(self, stream: Callable[[list[Change]], None]) -> tuple[list[Change] | None,
                                                                                 list[Change], int]:
        """The start-up listing, each page's changes handed to `stream` as soon as they are decoded (the
        agent applies them while etcd serves the next page). Returns (the topology to apply instead of what
        was streamed: None when the stream was the whole answer, else after a read that started over on a
        compaction or with an import in progress; the liveness and health changes; the revision)."""
        pages = 0
        restarted = False

        def each(page: list[Change], first: bool) -> None:
            nonlocal pages, restarted
            restarted = restarted or (first and pages > 0)
            pages += 1
            stream(page)

        out, rev, streamed = self._topology(each)
        return (None if streamed and not restarted else out), self.liveness.listing() + self.health.listing(), rev

    def topology_listing(self) -> tuple[list[Change], int]:
        out, rev, _ = self._topology(None)
        return out, rev

    def _topology(self, each: Callable[[list[Change], bool], None] | None) -> tuple[list[Change], int, bool]:
        """The topology's changes at one revision (held back while an import is half written); `each` sees
        every page's changes as they are decoded. The flag: the answer is exactly the pages decoded."""
        decoded: list[Change] = []

        def page(kvs: list[KV], first: bool) -> None:  # decoded while etcd works on the next page
            if first:
                decoded.clear()
            changes = [c for kv in kvs if (c := self.decoder.change(kv, False)) is not None]
            decoded.extend(changes)
            if each is not None:
                each(changes, first)

        listed, rev = self.store.get_prefix(TOPOLOGY, on_page=page)
        kvs, rev = self.hold.listing(self.store, listed, rev)
        if kvs is listed:  # no import in progress: what was decoded on the way is the answer
            return decoded, rev, True
        return [c for kv in kvs if (c := self.decoder.change(kv, False)) is not None], rev, False

    def start(self, revision: int) -> None:
        self.revision = revision
        self._thread = threading.Thread(target=self._run, name="etcd-watch", daemon=True)
        self._thread.start()
        self.liveness.start()
        self.health.start()

    def stop(self) -> None:
        self._stop.set()
        self.liveness.stop()
        self.health.stop()
        self.hold.close()
        if self._watch is not None:
            self._watch.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._watch = self.store.watch(TOPOLOGY, self.revision + 1)
                for batch in self._watch:
                    if self._stop.is_set():
                        return
                    changes = self.hold.feed(batch.events)
                    self.revision = max(self.revision, batch.revision)
                    if changes or batch.events:
                        self.emit("etcd", changes, self.revision)
            except Compacted as exc:
                log.warning("watch revision %d compacted (now %d): re-listing", self.revision + 1,
                            exc.compact_revision)
                self._relist()
            except StoreError as exc:
                if self._stop.is_set():
                    return
                self.watch_restarts += 1
                log.warning("etcd watch failed: %s; retrying", exc)
                self._stop.wait(0.5)
            except Exception:  # never let the watch thread die silently
                self.watch_restarts += 1
                log.exception("etcd watch crashed; retrying")
                self._stop.wait(0.5)

    def _relist(self) -> None:
        while not self._stop.is_set():
            try:
                changes, rev = self.topology_listing()
            except StoreError as exc:
                log.warning("re-list failed: %s; retrying", exc)
                self._stop.wait(0.5)
                continue
            self.resyncs += 1
            self.revision = rev
            self.emit("resync", changes, rev)
            return
