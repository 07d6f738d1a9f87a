"""Installed-flow bookkeeping: what is on the switch (by cookie) and the delta sent to reach the desired
set. Every change goes out as one atomic bundle over the persistent OpenFlow connection."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from .flow import Flow
from .openflow.errors import OpenFlowError

log = logging.getLogger(__name__)


@dataclass
class OfStats:
    bundles: int = 0
    flows_added: int = 0
    flows_deleted: int = 0
    reconciles: int = 0
    last_bundle_ms: float = 0.0
    failures: int = 0


class FlowControl:
    def __init__(self, conn) -> None:  # conn: openflow.OpenFlowConnection
        self.conn = conn
        self.installed: set[int] = set()
        self.rejected: set[int] = set()
        self.stats = OfStats()

    def reconcile(self, desired: dict[int, Flow]) -> tuple[int, int]:
        """Bring the switch to `desired` changing only the difference (hitless restart): read our
        cookies, delete the stale ones, add the missing ones."""
        present = set(self.conn.dump_cookies())
        deletes = sorted(present - desired.keys())
        adds = [f for c, f in desired.items() if c not in present]
        self.installed = set(present)
        self.stats.reconciles += 1
        self.apply(deletes, adds)
        log.info("reconciled flows: %d kept, %d deleted, %d added", len(present) - len(deletes), len(deletes),
                 len(adds))
        return len(deletes), len(adds)

    def apply(self, deletes: list[int], adds: list[Flow]) -> None:
        deletes = [c for c in deletes if c in self.installed]
        gone = set(deletes)
        adds = [f for f in adds if f.cookie not in self.installed or f.cookie in gone]
        if not deletes and not adds:
            return
        t0 = time.perf_counter()
        try:
            self._send(deletes, adds)
        except OpenFlowError as exc:
            if not adds or not exc.errors:  # connection trouble, not a rejected flow
                raise
            # One bad flow must not block the rest: isolate it by bisection, apply everything else.
            self.stats.failures += 1
            log.error("bundle rejected (%s); isolating the offending flows", exc)
            self._send(deletes, [])
            self._bisect(adds)
        self.stats.last_bundle_ms = (time.perf_counter() - t0) * 1000

    def _send(self, deletes: list[int], adds: list[Flow]) -> None:
        self.conn.apply(deletes, adds)
        self.stats.bundles += 1
        self.stats.flows_added += len(adds)
        self.stats.flows_deleted += len(deletes)
        self.installed.difference_update(deletes)
        self.installed.update(f.cookie for f in adds)

    def _bisect(self, adds: list[Flow]) -> None:
        try:
            self._send([], adds)
            return
        except OpenFlowError as exc:
            if len(adds) == 1:
                self.rejected.add(adds[0].cookie)
                log.error("switch rejected flow %s: %s", adds[0].to_text(), exc)
                return
        mid = len(adds) // 2
        self._bisect(adds[:mid])
        self._bisect(adds[mid:])
