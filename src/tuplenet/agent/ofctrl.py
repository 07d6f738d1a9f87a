"""Installed-flow bookkeeping: what is on the switch (by cookie) and the delta sent to reach the desired
set. Every change goes out as one atomic bundle over the persistent OpenFlow connection.

Meters (the rate limits in front of controller() actions) are reconciled with the flows, by id and only in
our tagged range: missing or changed ones before the flows that use them, stale ones after (deleting a
meter deletes its flows too). OVS does not take meter mods in a bundle, so they go just before and after it.

Groups likewise, but inside the flow bundle itself (OVS accepts group mods there): adds and modifies
first, then the flow changes, then deletes - one atomic change. A restart reads the group descriptions and
changes only ours that differ (never an id without our tag, no flush)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from .flow import Flow
from .openflow import groups as gr
from .openflow import meters as mt
from .openflow.errors import OpenFlowError
from .outputs import Group, group_is_ours


class GroupMsg(NamedTuple):
    """A group mod for the flow bundle: (label, build(xid)) as the connection takes it, plus what it does."""

    label: str
    build: Callable[[int], bytes]
    group_id: int
    delete: bool = False

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
    groups_added: int = 0
    groups_modified: int = 0
    groups_deleted: int = 0


class FlowControl:
    METER_STATS_EVERY = 2.0  # seconds between meter statistics requests

    def __init__(self, conn, meters: list[mt.MeterSpec] | None = None,  # conn: OpenFlowConnection
                 groups: list[Group] | None = None) -> None:
        self.conn = conn
        self.meters = {m.meter_id: m for m in meters or []}
        self.groups = {g.group_id: g for g in groups or []}  # wanted
        self.groups_installed: set[int] = set()  # ours on the switch (as far as we know)
        self.installed: set[int] = set()
        self.rejected: set[int] = set()
        self.stats = OfStats()
        self._meter_drops = 0
        self._meter_drops_at = 0.0

    def reconcile(self, desired: dict[int, Flow], meters: Iterable[mt.MeterSpec] | None = None,
                  groups: Iterable[Group] | None = None) -> tuple[int, int]:
        """Bring the switch to `desired` changing only the difference (hitless restart): read our
        cookies, delete the stale ones, add the missing ones. Meters and groups likewise, around the flows
        (None: keep the ones wanted so far)."""
        if meters is not None:
            self.meters = {m.meter_id: m for m in meters}
        if groups is not None:
            self.groups = {g.group_id: g for g in groups}
        stale_meters = self._reconcile_meters()
        pre, post = self._reconcile_groups()
        present = set(self.conn.dump_cookies())
        deletes = sorted(present - desired.keys())
        adds = [f for c, f in desired.items() if c not in present]
        self.installed = set(present)
        self.stats.reconciles += 1
        self._apply(deletes, adds, pre, post)
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

    def _reconcile_groups(self) -> tuple[list[GroupMsg], list[GroupMsg]]:
        """Group messages for the reconcile bundle: add missing and modify changed groups of ours before
        the flows, delete our stale ones after."""
        present = {i: d for i, d in self.conn.dump_groups().items() if group_is_ours(i)}
        self.groups_installed = set(present)
        pre, post = [], []
        for i, g in self.groups.items():
            if i not in present:
                pre.append(self._group_add(g))
            elif present[i] != gr.GroupDesc.of(g):
                pre.append(self._group_modify(g))
        post = [self._group_delete(i) for i in sorted(present.keys() - self.groups.keys())]
        if pre or post:
            log.info("groups: %d added or modified, %d deleted", len(pre), len(post))
        return pre, post

    def _group_add(self, g: Group) -> GroupMsg:
        if g.group_id in self.groups_installed:
            return self._group_modify(g)
        self.stats.groups_added += 1
        return GroupMsg(f"add group {g.text()}", lambda x: gr.group_mod(gr.OFPGC_ADD, g, x), g.group_id)

    def _group_modify(self, g: Group) -> GroupMsg:
        self.stats.groups_modified += 1
        return GroupMsg(f"modify group {g.text()}", lambda x: gr.group_mod(gr.OFPGC_MODIFY, g, x), g.group_id)

    def _group_delete(self, gid: int) -> GroupMsg:
        self.stats.groups_deleted += 1
        return GroupMsg(f"delete group {gid:#x}", lambda x: gr.group_delete(gid, x), gid, True)

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

    def apply(self, deletes: list[int], adds: list[Flow], changes: Iterable[tuple[tuple, object, object]] = ()) -> None:
        """Install one engine delta: flows, plus the group and meter changes among `changes` (the Delta's
        (identity, old, new) triples; wishes are not ours to apply and are skipped)."""
        pre: list[GroupMsg] = []
        post: list[GroupMsg] = []
        m_set: list[mt.MeterSpec] = []
        m_del: list[int] = []
        for ident, _old, new in changes:
            if ident[0] == "group":
                if new is None:
                    self.groups.pop(ident[1], None)
                    if ident[1] in self.groups_installed:
                        post.append(self._group_delete(ident[1]))
                else:
                    self.groups[ident[1]] = new
                    pre.append(self._group_add(new))
            elif ident[0] == "meter":
                if new is None:
                    self.meters.pop(ident[1], None)
                    m_del.append(ident[1])
                else:
                    self.meters[ident[1]] = new
                    m_set.append(new)
        if m_set:
            self._set_meters(m_set)
        self._apply(deletes, adds, pre, post)
        if m_del:
            self.conn.meter_mods(delete=m_del)
            self.stats.meters_deleted += len(m_del)

    def _set_meters(self, specs: list[mt.MeterSpec]) -> None:
        """Add or modify meters (before the flows that use them)."""
        present = {i for i in self.conn.dump_meters() if mt.is_ours(i)}
        add = [m for m in specs if m.meter_id not in present]
        modify = [m for m in specs if m.meter_id in present]
        self.conn.meter_mods(add=add, modify=modify)
        self.stats.meters_added += len(add)
        self.stats.meters_modified += len(modify)

    def _apply(self, deletes: list[int], adds: list[Flow], pre: Sequence[GroupMsg] = (),
               post: Sequence[GroupMsg] = ()) -> None:
        deletes = [c for c in deletes if c in self.installed]
        gone = set(deletes)
        adds = [f for f in adds if f.cookie not in self.installed or f.cookie in gone]
        if not deletes and not adds and not pre and not post:
            return
        t0 = time.perf_counter()
        try:
            self._send(deletes, adds, pre, post)
        except OpenFlowError as exc:
            if exc.applied:  # an adds-only bundle went in without exactly the rejected flows
                self._partly_applied(adds, exc)
            elif not (adds or pre or post) or not exc.errors:  # connection trouble, not a rejected message
                raise
            else:  # one bad flow or group must not block the rest: groups one by one, flows by bisection
                self.stats.failures += 1
                log.error("bundle rejected (%s); isolating the offending messages", exc)
                for m in pre:
                    self._send_one_group(m)
                self._send(deletes, [])
                self._bisect(adds)
                for m in post:
                    self._send_one_group(m)
        self.stats.last_bundle_ms = (time.perf_counter() - t0) * 1000

    def _partly_applied(self, adds: list[Flow], exc: OpenFlowError) -> None:
        """Book an adds-only bundle that OVS committed without the flows it rejected (the state isolating
        them by bisection would reach)."""
        self.stats.failures += 1
        bad = {flow.cookie for flow, _err in exc.rejected if isinstance(flow, Flow)}
        for flow, err in exc.rejected:
            if isinstance(flow, Flow):
                log.error("switch rejected flow %s: %s", flow.to_text(), err.name)
        good = [f.cookie for f in adds if f.cookie not in bad]
        self.rejected |= bad
        self.stats.bundles += 1
        self.stats.flows_added += len(good)
        self.installed.update(good)

    def _send_one_group(self, m: GroupMsg) -> None:
        try:
            self._send([], [], [m], [])
        except OpenFlowError as exc:
            if not exc.errors:
                raise
            log.error("switch rejected %s: %s", m[0], exc)

    def _send(self, deletes: list[int], adds: list[Flow], pre: Sequence[GroupMsg] = (),
              post: Sequence[GroupMsg] = ()) -> None:
        self.conn.apply(deletes, adds, pre=pre, post=post) if pre or post else self.conn.apply(deletes, adds)
        self._track_groups(pre, post)
        self.stats.bundles += 1
        self.stats.flows_added += len(adds)
        self.stats.flows_deleted += len(deletes)
        self.installed.difference_update(deletes)
        self.installed.update(f.cookie for f in adds)

    def _track_groups(self, pre: Sequence[GroupMsg], post: Sequence[GroupMsg]) -> None:
        for m in (*pre, *post):
            if m.delete:
                self.groups_installed.discard(m.group_id)
            else:
                self.groups_installed.add(m.group_id)

    def _bisect(self, adds: list[Flow]) -> None:
        try:
            self._send([], adds)
            return
        except OpenFlowError as exc:
            if exc.applied:  # adds only: in without exactly the rejected ones
                self._partly_applied(adds, exc)
                return
            if len(adds) == 1:
                self.rejected.add(adds[0].cookie)
                log.error("switch rejected flow %s: %s", adds[0].to_text(), exc)
                return
        mid = len(adds) // 2
        self._bisect(adds[:mid])
        self._bisect(adds[mid:])
