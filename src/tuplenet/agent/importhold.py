"""Hold topology changes while a multi-transaction import is being written (its marker key exists).

`tpctl import` puts `IMPORT_MARKER_KEY` before its first batch and deletes it in its last one. While the
marker exists, changes under entity_view/ are kept back (the data plane stays as it was, one log line),
then applied together when the marker goes, so an agent never programs a half-written import as if it were
final. An agent that starts (or re-lists) during an import starts from the tree as it was just before the
marker and replays the rest through the hold. A marker older than `max_age` (the importer died and nobody
resumed) is reported loudly and no longer holds anything: waiting forever would freeze every other change.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable

from ..lazylog import get_logger
from ..model import IMPORT_MARKER_KEY, ROOT
from ..model.importmark import ImportMarker
from ..store import KV, Compacted, Event

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

log = get_logger(__name__)  # logging loads with the first message (lazylog)

HOLD_MAX_ENV = "TUPLENET_IMPORT_HOLD_MAX"
DEFAULT_HOLD_MAX = 300.0

Change = tuple[tuple, "Any", "KV | None"]


def hold_max_from_env() -> float:
    """Seconds a marker may hold changes (`TUPLENET_IMPORT_HOLD_MAX`, default 300)."""
    try:
        value = float(os.environ.get(HOLD_MAX_ENV, "") or DEFAULT_HOLD_MAX)
    except ValueError:
        log.warning("%s is not a number; using %.0f s", HOLD_MAX_ENV, DEFAULT_HOLD_MAX)
        return DEFAULT_HOLD_MAX
    return value if value >= 0 else DEFAULT_HOLD_MAX


class ImportHold:
    """Routes decoded etcd changes: straight through, or held while an import marker is fresh.

    `decode(kv, deleted)` turns a KV into a change (None to skip); `emit(changes)` delivers changes released
    by the staleness timer (the watch thread delivers what `feed` returns itself). Thread-safe.
    """

    def __init__(self, decode: Callable[[KV, bool], Change | None], emit: Callable[[list[Change]], None],
                 max_age: float | None = None, now: Callable[[], float] = time.time) -> None:
        self.decode = decode
        self.emit = emit
        self.max_age = hold_max_from_env() if max_age is None else max_age
        self.now = now
        self.lock = threading.Lock()
        self.marker: ImportMarker | None = None  # the import we hold for
        self.marker_rev = 0  # mod revision of that marker as we know it (replayed older puts are ignored)
        self.held: dict[tuple, Change] = {}
        self.stale: ImportMarker | None = None  # last marker reported stale
        self.holds = 0
        self._timer: threading.Timer | None = None

    # ---- the watch ---------------------------------------------------------------------------------------

    def feed(self, events: Iterable[Event]) -> list[Change]:
        """Changes to apply now for `events` (in order); the rest is held."""
        out: list[Change] = []
        with self.lock:
            for ev in events:
                kv = ev.kv
                if kv.key == IMPORT_MARKER_KEY:
                    if ev.type == "DELETE":
                        out += self._release("import finished")
                    elif kv.mod_revision > self.marker_rev:
                        out += self._begin(kv)
                    continue
                change = self.decode(kv, ev.type == "DELETE")
                if change is None:
                    continue
                if self.marker is not None:
                    self.held.pop(change[0], None)
                    self.held[change[0]] = change
                else:
                    out.append(change)
        return out

    # ---- listings (start, re-list after compaction) ------------------------------------------------------

    def listing(self, store: Any, kvs: list[KV], rev: int) -> tuple[list[KV], int]:
        """What to apply from a fresh listing `kvs` at `rev`, and the revision to watch from.

        With a fresh marker: the tree at the revision just before it, watched from there (the import's
        writes then arrive through `feed` and are held). If that revision is compacted: the records not
        written since the marker, the others held.
        """
        with self.lock:
            self._cancel()
            self.held.clear()
            self.marker, self.marker_rev = None, 0
            mkv = next((kv for kv in kvs if kv.key == IMPORT_MARKER_KEY), None)
            if mkv is None:
                return kvs, rev
            self._begin(mkv)
            if self.marker is None:  # stale: reported, not held
                return kvs, rev
            before = mkv.create_revision - 1
            try:
                old = _read_at(store, before)
            except Compacted:
                for kv in kvs:
                    if kv.mod_revision >= mkv.create_revision and (c := self.decode(kv, False)) is not None:
                        self.held[c[0]] = c
                log.warning("the topology before the import is compacted: holding the %d records written since",
                            len(self.held))
                return [kv for kv in kvs if kv.mod_revision < mkv.create_revision], rev
            log.warning("starting from the topology before the import (revision %d)", before)
            return old, before

    # ---- state -------------------------------------------------------------------------------------------

    def _begin(self, kv: KV) -> list[Change]:
        """The marker appeared or was rewritten (a resume); returns changes released if it is stale."""
        marker = ImportMarker.parse(kv.value)
        self.marker_rev = kv.mod_revision
        age = marker.age(self.now())
        if age >= self.max_age:
            self._report_stale(marker, age)
            return self._release("stale import marker")
        if self.marker is None:
            self.holds += 1
            log.warning("import in progress (%s): holding topology changes until it completes",
                        marker.describe())
        self.marker = marker
        self._cancel()
        self._timer = threading.Timer(self.max_age - age, self._expire, (marker,))
        self._timer.daemon = True
        self._timer.start()
        return []

    def _release(self, why: str) -> list[Change]:
        self._cancel()
        if self.marker is None:
            return []
        out = list(self.held.values())
        self.held.clear()
        self.marker = None
        log.warning("%s: applying %d held topology changes", why, len(out))
        return out

    def _expire(self, marker: ImportMarker) -> None:
        with self.lock:
            if self.marker is not marker:
                return
            self._report_stale(marker, marker.age(self.now()))
            out = self._release("stale import marker")
            if out:
                self.emit(out)

    def _report_stale(self, marker: ImportMarker, age: float) -> None:
        if self.stale != marker:
            self.stale = marker
            log.error("STALE IMPORT MARKER %s (%s, %.0f s old, limit %s=%.0f s): the import was interrupted; "
                      "topology changes are no longer held. Complete it with `tpctl import --resume FILE` or "
                      "drop the marker with `tpctl import --abandon`", IMPORT_MARKER_KEY, marker.describe(), age,
                      HOLD_MAX_ENV, self.max_age)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        with self.lock:
            self._cancel()

    def status(self) -> dict[str, Any]:
        with self.lock:
            return {"holding": self.marker.describe() if self.marker else None, "held_changes": len(self.held),
                    "holds": self.holds, "stale_marker": self.stale.describe() if self.stale else None,
                    "max_age_s": self.max_age}


def _read_at(store: Any, revision: int) -> list[KV]:
    """Every topology key as it was at `revision` (paged; Compacted if that revision is gone)."""
    out: list[KV] = []
    after = None
    while True:
        kvs, _, more = store.get_prefix_page(ROOT, after, 1000, revision)
        out += kvs
        if not more or not kvs:
            return out
        after = kvs[-1].key
