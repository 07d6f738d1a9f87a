"""GET /trace's fabric (the topology's model and the chassis pipelines traces walk) rebuilt in the background
when the topology changes, so the first trace after a change walks instead of computing flows.

The read cache calls `changed(revision)` after it applied a change of a topology record (a cheap notify: the
watch never waits for a build). One builder thread rebuilds at a time: a change that arrives during a build
makes exactly one more build after it, however many changes the burst holds. Each build also computes the
pipelines of the chassis the last traces went through (Fabric builds them on first use otherwise) and walks
the last few traces again, which compiles the flow tables they meet (compiled lazily too). A trace
asks `fabric(revision)`: it waits while a build that will cover its revision runs or is due, and never sees
a fabric before its build finished. `load` returns None when the cache cannot be the source (not current,
an import half written): the trace then builds from etcd itself, as before.

Bounded CPU: one build at a time, and background builds only while traces are being asked for - within
INTEREST seconds of the last one (the API's start counts as one). An API nobody traces through does not
rebuild a large topology's model on every port change; its next trace builds on demand (and waits for it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger("tuplenet.api")
HOT_CHASSIS = 8  # pipelines prebuilt per rebuild: the chassis of the most recent traces
HOT_TRACES = 4  # traces walked again per rebuild: the most recent distinct ones
INTEREST = 900.0  # seconds after the last trace during which topology changes are rebuilt in the background
WAIT = 60.0  # seconds a trace waits for a build before it builds on its own


class TraceWarmer:
    def __init__(self, load: Callable[[], tuple[int, Any] | None],
                 replay: Callable[[Any, Any], object] | None = None, hot_limit: int = HOT_CHASSIS,
                 hot_traces: int = HOT_TRACES, interest: float = INTEREST,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`load()`: (topology revision it read, fabric) from the current cache, or None if it cannot.
        `replay(fabric, request)`: walk a recent trace on a new fabric (its errors are ignored)."""
        self._load = load
        self._replay = replay
        self._hot_limit = hot_limit
        self._hot_traces_limit = hot_traces
        self._hot_traces: dict[Any, None] = {}  # recent trace requests (hashable), oldest first
        self._interest = interest
        self._clock = clock
        self._asked = clock()  # the last trace (the start counts: the first trace finds its model built)
        self._cond = threading.Condition()
        self._current: tuple[int, Any] | None = None
        self._wanted = 0  # the newest topology revision announced
        self._tried = 0  # the newest revision a finished build attempt was for (built or not)
        self._building = False
        self._stopped = False
        self._hot: dict[str, None] = {}  # chassis of recent traces, oldest first
        self._thread: threading.Thread | None = None
        self.rebuilds = 0  # builds finished by the builder thread (the health document shows it)

    # ---- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> TraceWarmer:
        self._thread = threading.Thread(target=self._run, name="api-trace-warm", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)

    # ---- the cache's side ----------------------------------------------------------------------------------

    def changed(self, revision: int) -> None:
        """The topology is at `revision` now (called by the cache's watch thread: never blocks on a build)."""
        with self._cond:
            if revision > self._wanted:
                self._wanted = revision
                self._cond.notify_all()

    # ---- the trace's side ----------------------------------------------------------------------------------

    def fabric(self, revision: int, timeout: float = WAIT) -> Any | None:
        """A fabric built at `revision` or later, waiting for the build that covers it; None when no build
        could (the cache was not usable) or the wait timed out: the caller then builds its own."""
        with self._cond:
            self._asked = self._clock()  # a change the builder let pass (no interest then) is due now
            self._wanted = max(self._wanted, revision)  # a trace may see the cache's revision before its hook
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._stopped or self._fresh(revision)
                                or (not self._building and self._tried >= revision), timeout)
            return self._current[1] if self._fresh(revision) else None

    def offer(self, revision: int, fabric: Any) -> None:
        """A fabric a trace built itself at `revision`: kept unless the builder has a newer one."""
        with self._cond:
            if not self._fresh(revision):
                self._current = (revision, fabric)
                self._cond.notify_all()

    def used(self, chassis: Iterable[str], request: Any = None) -> None:
        """A trace of `request` went through `chassis`: the next rebuilds prepare both ahead of the traces."""
        with self._cond:
            for ch in chassis:
                _touch(self._hot, ch, self._hot_limit)
            if request is not None:
                _touch(self._hot_traces, request, self._hot_traces_limit)

    def state(self) -> dict[str, Any]:
        with self._cond:
            return {"revision": self._current[0] if self._current else 0, "rebuilds": self.rebuilds,
                    "building": self._building or self._due()}

    # ---- the builder -------------------------------------------------------------------------------------

    def _fresh(self, revision: int) -> bool:
        return self._current is not None and self._current[0] >= revision

    def _due(self) -> bool:
        stale = self._wanted > max(self._tried, self._current[0] if self._current else 0)
        return stale and self._clock() - self._asked < self._interest

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._stopped or self._due())
                if self._stopped:
                    return
                self._building = True
                target, hot, traces = self._wanted, list(self._hot), list(self._hot_traces)
            built = None
            try:
                built = self._load()
                if built is not None:
                    for ch in reversed(hot):  # the most recent first
                        _prebuild(built[1], ch)
                    for request in reversed(traces):
                        self._walk(built[1], request)
            except Exception:  # noqa: BLE001 - the builder outlives any bad tree; traces then build their own
                log.exception("trace model rebuild failed")
            with self._cond:
                self._building = False
                self._tried = max(self._tried, target)
                if built is not None and (self._current is None or built[0] >= self._current[0]):
                    self._current = built
                    self.rebuilds += 1
                self._cond.notify_all()

    def _walk(self, fabric: Any, request: Any) -> None:
        if self._replay is None:
            return
        try:
            self._replay(fabric, request)
        except Exception as exc:  # noqa: BLE001 - e.g. its port is gone: the trace itself will say so
            log.debug("trace replay of %s: %s", request, exc)


def _touch(recent: dict[Any, None], item: Any, limit: int) -> None:
    """`item` becomes the newest of `recent` (insertion-ordered), which keeps the `limit` newest."""
    recent.pop(item, None)
    recent[item] = None
    while len(recent) > limit:
        del recent[next(iter(recent))]


def _prebuild(fabric: Any, chassis: str) -> None:
    """The pipeline of `chassis` (a chassis that left the topology is skipped)."""
    if ("chassis", chassis) in fabric.model.facts:
        fabric.pipeline(chassis)
