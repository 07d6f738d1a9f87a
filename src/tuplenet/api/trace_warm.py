"""GET /trace's fabric (the topology's model and the chassis pipelines traces walk) rebuilt in the background
when the topology changes, so the first trace after a change walks instead of computing flows.

The read cache calls `changed(revision)` after it applied a change of a topology record (a cheap notify: the
watch never waits for a build). One builder thread rebuilds at a time: a change that arrives during a build
makes exactly one more build after it, however many changes the burst holds. Each build also computes the
pipelines of the chassis the last traces went through (Fabric builds them on first use otherwise). A trace
asks `fabric(revision)`: it waits while a build that will cover its revision runs or is due, and never sees
a fabric before its build finished. `load` returns None when the cache cannot be the source (not current,
an import half written): the trace then builds from etcd itself, as before.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger("tuplenet.api")
HOT_CHASSIS = 8  # pipelines prebuilt per rebuild: the chassis of the most recent traces
WAIT = 60.0  # seconds a trace waits for a build before it builds on its own


class TraceWarmer:
    def __init__(self, load: Callable[[], tuple[int, Any] | None], hot_limit: int = HOT_CHASSIS) -> None:
        """`load()`: (topology revision it read, fabric) from the current cache, or None if it cannot."""
        self._load = load
        self._hot_limit = hot_limit
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
            self.changed(revision)  # a trace may see the cache's revision before its hook ran
            self._cond.wait_for(lambda: self._stopped or self._fresh(revision)
                                or (not self._building and self._tried >= revision), timeout)
            return self._current[1] if self._fresh(revision) else None

    def offer(self, revision: int, fabric: Any) -> None:
        """A fabric a trace built itself at `revision`: kept unless the builder has a newer one."""
        with self._cond:
            if not self._fresh(revision):
                self._current = (revision, fabric)
                self._cond.notify_all()

    def used(self, chassis: Iterable[str]) -> None:
        """The chassis a trace went through: the next rebuilds compute their pipelines ahead of the traces."""
        with self._cond:
            for ch in chassis:
                self._hot.pop(ch, None)
                self._hot[ch] = None
            while len(self._hot) > self._hot_limit:
                del self._hot[next(iter(self._hot))]

    def state(self) -> dict[str, Any]:
        with self._cond:
            return {"revision": self._current[0] if self._current else 0, "rebuilds": self.rebuilds,
                    "building": self._building or self._due()}

    # ---- the builder -------------------------------------------------------------------------------------

    def _fresh(self, revision: int) -> bool:
        return self._current is not None and self._current[0] >= revision

    def _due(self) -> bool:
        return self._wanted > max(self._tried, self._current[0] if self._current else 0)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._stopped or self._due())
                if self._stopped:
                    return
                self._building = True
                target, hot = self._wanted, list(self._hot)
            built = None
            try:
                built = self._load()
                if built is not None:
                    for ch in reversed(hot):  # the most recent first
                        _prebuild(built[1], ch)
            except Exception:  # noqa: BLE001 - the builder outlives any bad tree; traces then build their own
                log.exception("trace model rebuild failed")
            with self._cond:
                self._building = False
                self._tried = max(self._tried, target)
                if built is not None and (self._current is None or built[0] >= self._current[0]):
                    self._current = built
                    self.rebuilds += 1
                self._cond.notify_all()


def _prebuild(fabric: Any, chassis: str) -> None:
    """The pipeline of `chassis` (a chassis that left the topology is skipped)."""
    if ("chassis", chassis) in fabric.model.facts:
        fabric.pipeline(chassis)
