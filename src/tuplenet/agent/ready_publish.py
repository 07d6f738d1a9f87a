"""Publishes this chassis' port readiness report (`communicate/ready/<chassis>`, model/ready.py) from a thread.

Off the port-up path: the main loop only hands over the new set (`submit`, no I/O); CNI and VM managers wait
on the OVSDB mark, not on this. Coalesced: the first change after a quiet spell is written SETTLE seconds
later (by then the port-up that caused it is over: its etcd write no longer competes with the claim and the
peers' work for etcd and the CPU), later ones at most every INTERVAL seconds, always the latest set - a burst of a thousand ports costs a handful of
writes, one key per chassis. The key lives under the agent's liveness lease (agent/chassis.py), so a dead
agent's report disappears with its liveness key and `tpctl lsp show` says `unknown`; when the lease was
re-granted (etcd away longer than its ttl, the key deleted with the old lease), the report is written
again under the new one within CHECK seconds.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from ..model.keys import ready_key
from ..model.ready import Report, encode_report
from ..store import StoreError

log = logging.getLogger(__name__)

INTERVAL = float(os.environ.get("TUPLENET_READY_REPORT_INTERVAL", "0.1"))  # s between writes in a burst
SETTLE = 0.02  # s from a change to its write, so the write falls after the port-up that caused it
CHECK = 1.0  # s: how soon a re-granted lease or a failed write is noticed and retried


class ReadyPublisher(threading.Thread):
    """Writes the latest submitted report whenever it differs from what etcd holds under the current lease."""

    def __init__(self, store: Any, chassis: str, lease: Callable[[], Any], interval: float = INTERVAL,
                 check: float = CHECK, settle: float = SETTLE) -> None:
        super().__init__(name="ready-report", daemon=True)
        self.store, self.key, self.lease = store, ready_key(chassis), lease
        self.interval, self.check, self.settle = interval, check, settle
        self._pending: Report = frozenset()
        self._published: tuple[Report, int] | None = None  # (report, lease id) etcd holds
        self._wake = threading.Event()
        self._stop_ev = threading.Event()
        self.writes = 0
        self.errors = 0

    def submit(self, report: Report) -> None:
        """Main loop: the new set of ready (switch, port) pairs. Never blocks."""
        self._pending = report  # one reference swap: the thread reads whichever is latest
        self._wake.set()

    def run(self) -> None:
        last = float("-inf")
        while not self._stop_ev.is_set():
            woken = self._wake.wait(self.check)
            self._wake.clear()
            delay = max(last + self.interval - time.monotonic(), self.settle if woken else 0.0)
            if delay > 0 and self._stop_ev.wait(delay):  # coalesce a burst into one write
                break
            if self._stop_ev.is_set():
                break
            try:
                if self.publish():
                    last = time.monotonic()
            except Exception as exc:  # noqa: BLE001 - etcd away or a bug: retried within `check`
                self.errors += 1
                log.warning("readiness report not written: %s", exc)

    def publish(self) -> bool:
        """Write the pending report if etcd does not hold it under the current lease; True if written."""
        lease = self.lease()
        if lease is None:  # liveness not established yet: a report without a lease could outlive us
            return False
        report, lease_id = self._pending, lease.id
        if self._published == (report, lease_id):
            return False
        try:
            self.store.put(self.key, encode_report(report), lease=lease_id)
        except StoreError:
            self._published = None
            raise
        self._published = (report, lease_id)
        self.writes += 1
        return True

    def stop(self) -> None:
        """Stop writing; the key goes with the liveness lease (revoked on a clean stop, expired otherwise)."""
        self._stop_ev.set()
        self._wake.set()


def start_for(agent_readiness: Any, store: Any, chassis: str, lease: Callable[[], Any]) -> ReadyPublisher:
    """Start publishing `agent_readiness.report` (agent/readiness.py) now and on every change."""
    pub = ReadyPublisher(store, chassis, lease)
    pub.submit(agent_readiness.report)
    agent_readiness.sink = pub.submit
    pub.start()
    return pub


__all__ = ["CHECK", "INTERVAL", "SETTLE", "ReadyPublisher", "start_for"]
