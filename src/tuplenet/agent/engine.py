"""Incremental flow computation with automatic dependency tracking.

Every logical object that produces flows is an *owner*. Computing an owner through a `Reader` records
every fact and index it looked at; a change to any of those re-runs exactly the owners that read it. The
engine keeps, per flow identity (table, priority, match), the candidate flows of all owners; the
installed one is the candidate with the smallest cookie, so the result never depends on the order in
which changes arrived — which is what makes "incremental == full recompute" hold (and testable).
"""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import dataclass, field

from .flow import Flow
from .pipeline import OWNER_KINDS, compute
from .view import Reader, View

log = logging.getLogger(__name__)

CONST_OWNER = ("const",)


@dataclass
class Stats:
    full_runs: int = 0
    incremental_runs: int = 0
    owners_computed: int = 0
    last_run_ms: float = 0.0
    conflicts: int = 0
    extra: dict = field(default_factory=dict)


class Engine:
    def __init__(self, view: View) -> None:
        self.view = view
        self.owner_flows: dict[tuple, tuple[Flow, ...]] = {}
        self.deps: dict[tuple, frozenset] = {}
        self.rdeps: dict[tuple, set[tuple]] = {}
        self.cand: dict[tuple, dict[int, list]] = {}  # flow key -> cookie -> [flow, refcount]
        self.active: dict[tuple, Flow] = {}  # flow key -> installed-to-be flow
        self.per_table: dict[int, int] = {}  # active flows per table (metrics), kept with `active`
        self._touched: set[tuple] = set()
        self._conflicts_seen: set[tuple] = set()
        self._memo: dict = {}
        self.stats = Stats()

    # ------------------------------------------------------------------ public
    def full(self) -> tuple[list[int], list[Flow]]:
        """Recompute every owner (start-up, resync); returns the delta against the previous result."""
        t0 = time.perf_counter()
        # Hundreds of thousands of small long-lived objects: the cyclic collector would rescan them many
        # times over during this burst, for nothing (flows hold no cycles).
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            return self._full(t0)
        finally:
            if gc_was_enabled:
                gc.enable()
            gc.freeze()

    def _full(self, t0: float) -> tuple[list[int], list[Flow]]:
        owners = set(self.view.keys_of(OWNER_KINDS))
        owners.add(CONST_OWNER)
        self._memo.clear()
        if not self.owner_flows and not self.cand:
            return self._first(owners, t0)
        for gone in set(self.owner_flows) - owners:
            self._recompute(gone)
        for o in owners:
            self._recompute(o)
        self.stats.full_runs += 1
        self._memo.clear()
        out = self._flush()
        self.stats.last_run_ms = (time.perf_counter() - t0) * 1000
        return out

    def _first(self, owners: set[tuple], t0: float) -> tuple[list[int], list[Flow]]:
        """The same result as recomputing every owner into an empty engine, without the per-flow delta
        bookkeeping (nothing is installed yet to diff against)."""
        rdeps, cand = self.rdeps, self.cand
        for o in owners:
            flows, deps = self._compute(o)
            if flows:
                self.owner_flows[o] = flows
                for f in flows:
                    slot = cand.get(f.key)
                    if slot is None:
                        cand[f.key] = {f.cookie: [f, 1]}
                    else:
                        entry = slot.get(f.cookie)
                        if entry is None:
                            slot[f.cookie] = [f, 1]
                        else:
                            entry[1] += 1
            if deps:
                self.deps[o] = deps
                for d in deps:
                    s = rdeps.get(d)
                    if s is None:
                        rdeps[d] = {o}
                    else:
                        s.add(o)
        self._memo.clear()
        self.stats.full_runs += 1
        adds = []
        for k, slot in cand.items():
            f = slot[min(slot)][0] if len(slot) > 1 else next(iter(slot.values()))[0]
            if len(slot) > 1:
                self._conflict(k, f)
            self.active[k] = f
            adds.append(f)
        per = self.per_table
        for k in self.active:
            per[k[0]] = per.get(k[0], 0) + 1
        self.stats.last_run_ms = (time.perf_counter() - t0) * 1000
        return [], adds

    def _conflict(self, k: tuple, winner: Flow | None) -> None:
        if k in self._conflicts_seen:
            return
        self._conflicts_seen.add(k)
        self.stats.conflicts += 1
        log.warning("conflicting flows for table=%s priority=%s %s: keeping %s", k[0], k[1],
                    ",".join(m.text() for m in k[2]), winner.to_text() if winner else None)

    def process(self, changed: set[tuple]) -> tuple[list[int], list[Flow]]:
        """Re-run the owners affected by `changed` fact/index keys; returns (deleted cookies, added flows)."""
        t0 = time.perf_counter()
        owners: set[tuple] = set()
        for k in changed:
            rd = self.rdeps.get(k)
            if rd:
                owners |= rd
            if k[0] in OWNER_KINDS:
                owners.add(k)
        if CONST_OWNER not in self.owner_flows:
            owners.add(CONST_OWNER)
        self._memo.clear()
        for o in owners:
            self._recompute(o)
        self.stats.incremental_runs += 1
        self._memo.clear()
        out = self._flush()
        self.stats.last_run_ms = (time.perf_counter() - t0) * 1000
        return out

    def desired(self) -> dict[int, Flow]:
        return {f.cookie: f for f in self.active.values()}

    # ----------------------------------------------------------------- private
    def _compute(self, owner: tuple) -> tuple[tuple[Flow, ...], frozenset]:
        """The owner's flows and what they were computed from; no flows for an owner that is gone."""
        self.stats.owners_computed += 1
        if owner != CONST_OWNER and owner not in self.view.facts:
            return (), frozenset()
        r = Reader(self.view, self._memo)
        try:
            flows = tuple(compute(r, owner))
        except Exception:  # a bad record must never take the agent down
            log.exception("computing flows of %s failed; its flows are withdrawn", owner)
            flows = ()
        return flows, frozenset(r.deps)

    def _recompute(self, owner: tuple) -> None:
        new, deps = self._compute(owner)
        old = self.owner_flows.get(owner, ())
        if not old:
            for f in new:
                self._cand_add(f)
        elif not new:
            for f in old:
                self._cand_del(f)
        elif new != old:
            old_c = {f.cookie: f for f in old}
            new_c = {f.cookie: f for f in new}
            for c, f in old_c.items():
                if c not in new_c:
                    self._cand_del(f)
            for c, f in new_c.items():
                if c not in old_c:
                    self._cand_add(f)
        if new:
            self.owner_flows[owner] = new
        else:
            self.owner_flows.pop(owner, None)
        old_deps = self.deps.get(owner, frozenset())
        if deps != old_deps:
            for d in old_deps - deps:
                s = self.rdeps.get(d)
                if s is not None:
                    s.discard(owner)
                    if not s:
                        del self.rdeps[d]
            for d in deps - old_deps:
                self.rdeps.setdefault(d, set()).add(owner)
            if deps:
                self.deps[owner] = deps
            else:
                self.deps.pop(owner, None)

    def _cand_add(self, f: Flow) -> None:
        k = f.key
        slot = self.cand.setdefault(k, {})
        entry = slot.get(f.cookie)
        if entry is None:
            slot[f.cookie] = [f, 1]
        else:
            entry[1] += 1
        self._touched.add(k)

    def _cand_del(self, f: Flow) -> None:
        k = f.key
        slot = self.cand.get(k)
        if slot is None:
            return
        entry = slot.get(f.cookie)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            del slot[f.cookie]
            if not slot:
                del self.cand[k]
        self._touched.add(k)

    def _flush(self) -> tuple[list[int], list[Flow]]:
        deletes: list[int] = []
        adds: list[Flow] = []
        for k in self._touched:
            slot = self.cand.get(k)
            new = slot[min(slot)][0] if slot else None
            old = self.active.get(k)
            if slot and len(slot) > 1:
                self._conflict(k, new)
            if new is old or (new is not None and old is not None and new.cookie == old.cookie):
                continue
            if old is not None:
                deletes.append(old.cookie)
            if new is not None:
                adds.append(new)
                self.active[k] = new
                if old is None:
                    self.per_table[k[0]] = self.per_table.get(k[0], 0) + 1
            else:
                del self.active[k]
                self.per_table[k[0]] -= 1
        self._touched.clear()
        return deletes, adds
