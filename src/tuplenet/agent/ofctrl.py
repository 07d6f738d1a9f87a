"""Installed-flow bookkeeping: what is on the switch (by cookie) and the delta sent to reach the desired
set. Every change goes out as one atomic bundle over the persistent OpenFlow connection."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from .flow import Flow

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
        self.stats = OfStats()

    def reconcile(self, desired: dict[int, Flow]) -> tuple[int, int]:
        """Bring the switch to `desired` changing only the difference (hitless restart): read our
        cookies, delete the stale ones, add the missing ones."""
        present = set(self.conn.dump_cookies())
        deletes = sorted(present - desired.keys())
        adds = [f for c, f in desired.items() if c not in present]
        self.installed = present
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
            self.conn.apply(deletes, adds)
        except Exception:
            self.stats.failures += 1
            raise
        self.stats.last_bundle_ms = (time.perf_counter() - t0) * 1000
        self.stats.bundles += 1
        self.stats.flows_added += len(adds)
        self.stats.flows_deleted += len(deletes)
        self.installed.difference_update(deletes)
        self.installed.update(f.cookie for f in adds)
