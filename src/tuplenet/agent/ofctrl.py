"""Installed-flow bookkeeping: what is on the switch (by cookie) and the delta sent to reach the desired
set. Every change goes out as one atomic bundle over the persistent OpenFlow connection.

Meters (the rate limits in front of controller() actions) are reconciled with the flows, by id and only in
our tagged range: missing or changed ones before the flows that use them, stale ones after (deleting a
meter deletes its flows too)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from .flow import Flow
from .openflow import meters as mt
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
    meters_added: int = 0
    meters_modified: int = 0
    meters_deleted: int = 0


class FlowControl:
    METER_STATS_EVERY = 2.0  # seconds between meter statistics requests

    def __init__(self, conn, meters: list[mt.MeterSpec] | None = None) -> None:  # conn: OpenFlowConnection
        self.conn = conn
        self.meters = {m.meter_id: m for m in meters or []}
        self.installed: set[int] = set()
        self.rejected: set[int] = set()
        self.stats = OfStats()
        self._meter_drops = 0
        self._meter_drops_at = 0.0

    def reconcile(self, desired: dict[int, Flow]) -> tuple[int, int]:
        """Bring the switch to `desired` changing only the difference (hitless restart): read our
        cookies, delete the stale ones, add the missing ones. Meters likewise, around the flows."""
        stale_meters = self._reconcile_meters()
        present = set(self.conn.dump_cookies())
        deletes = sorted(present - desired.keys())
        adds = [f for c, f in desired.items() if c not in present]
        self.installed = set(present)
        self.stats.reconciles += 1
        self.apply(deletes, adds)
        log.info("reconciled flows: %d kept, %d deleted, %d added", len(present) - len(deletes), len(deletes),
                 len(adds))
        if stale_meters:
            self.conn.meter_mods(delete=stale_meters)
            self.stats.meters_deleted += len(stale_meters)
        return len(deletes), len(adds)

    def _reconcile_meters(self) -> list[int]:
        """Add missing and fix changed meters of ours now; return our stale ones (deleted after the flows)."""
        present = {i: cfg.spec() for i, cfg in self.conn.dump_meters().items() if mt.is_ours(i)}
        add = [m for i, m in self.meters.items() if i not in present]
        modify = [m for i, m in self.meters.items() if i in present and present[i] != m]
        if add or modify:
            try:
                self.conn.meter_mods(add=add, modify=modify)
            except OpenFlowError as exc:
                if not exc.errors:  # connection trouble: the caller retries the whole reconcile
                    raise
                # A datapath without meters: the metered flows will be rejected (and logged) in turn.
                log.error("the switch rejected our meters (%s); packet-ins are not rate-limited by OVS", exc)
            self.stats.meters_added += len(add)
            self.stats.meters_modified += len(modify)
            log.info("meters: %d added, %d modified", len(add), len(modify))
        return sorted(present.keys() - self.meters.keys())

    def meter_drops(self) -> int:
        """Packets our meters dropped (a cached sum, refreshed at most every METER_STATS_EVERY seconds;
        the last known value if the switch does not answer quickly)."""
        now = time.monotonic()
        if self.meters and now - self._meter_drops_at >= self.METER_STATS_EVERY:
            self._meter_drops_at = now
            try:
                self._meter_drops = sum(sum(s.band_packets) for s in self.conn.meter_stats(timeout=5.0)
                                        if s.meter_id in self.meters)
            except OpenFlowError as exc:
                log.debug("meter stats: %s", exc)
        return self._meter_drops

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
