"""Incremental flow computation with automatic dependency tracking.

Every logical object that produces flows is an *owner*. Computing an owner through a `Reader` records
every fact and index it looked at; a change to any of those re-runs exactly the owners that read it. The
engine keeps, per flow identity (table, priority, match), the candidate flows of all owners; the
installed one is the candidate with the smallest cookie, so the result never depends on the order in
which changes arrived — which is what makes "incremental == full recompute" hold (and testable).

Owners may also return groups, meters and OVSDB wishes (outputs.py): they are kept per identity with the
same rule (smallest content digest wins; engine_outputs.py) and reported as typed changes in the run's
`Delta`. Owners need not be stored facts: a *derived* kind maps fact keys to owner keys (e.g. every
equal-cost route of one prefix on one router -> ("rgroup", lr, prefix)); the engine keeps the membership,
recomputes a derived owner when its members change and drops it when it has none.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterable

from ..lazylog import get_logger
from ..records import dataclass, field
from .engine_outputs import OutputCandidates
from .flow import Flow
from .outputs import Delta, DerivedKind
from .pipeline import DERIVED, OWNER_KINDS, compute
from .view import Reader, View

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

log = get_logger(__name__)  # logging loads with the first message (lazylog)

CONST_OWNER = ("const",)


def _best(slot: Flow | dict[int, list]) -> Flow:
    """The candidate that wins a key: the only one, or (a conflict) the lowest cookie, the same on every host."""
    if type(slot) is Flow:
        return slot
    return slot[min(slot)][0]


@dataclass
class Stats:
    full_runs: int = 0
    incremental_runs: int = 0
    owners_computed: int = 0
    last_run_ms: float = 0.0
    conflicts: int = 0
    extra: dict = field(default_factory=dict)


class Engine:
    def __init__(self, view: View, compute_fn: Callable[[Reader, tuple], list] = compute,
                 owner_kinds: tuple[str, ...] = OWNER_KINDS, derived: Iterable[DerivedKind] | None = None) -> None:
        self.view = view
        self._compute_fn = compute_fn
        self.owner_kinds = owner_kinds
        self._owner_kind_set = frozenset(owner_kinds)
        self.derived: dict[str, DerivedKind] = {d.kind: d for d in (DERIVED if derived is None else derived)}
        self._derive_by_source: dict[str, list[DerivedKind]] = {}
        for d in self.derived.values():
            for src in d.sources:
                self._derive_by_source.setdefault(src, []).append(d)
        self.members: dict[tuple, set[tuple]] = {}  # derived owner -> its member fact keys
        self._member_of: dict[tuple, tuple[tuple, ...]] = {}  # fact key -> derived owners it belongs to
        self.owner_flows: dict[tuple, tuple[Flow, ...]] = {}
        self.owner_outs: dict[tuple, tuple] = {}  # owner -> its groups, meters and wishes
        self.outs = OutputCandidates()  # groups, meters and wishes: candidates and winners
        # owner -> the keys it read (a tuple of distinct keys: a third of a frozenset's size, and 50k owners
        # hold one each); key -> its readers, a 1-tuple while there is one (most keys) and a set beyond.
        self.deps: dict[tuple, tuple] = {}
        self.rdeps: dict[tuple, tuple | set[tuple]] = {}
        # flow key -> its candidates: the Flow itself while one owner proposes it (nearly every key: a dict and
        # a list per flow cost 20 MB at 68k flows), else cookie -> [flow, refcount].
        self.cand: dict[tuple, Flow | dict[int, list]] = {}
        self.active: dict[tuple, Flow] = {}  # flow key -> installed-to-be flow
        self.per_table: dict[int, int] = {}  # active flows per table (metrics), kept with `active`
        self._touched: set[tuple] = set()
        self._conflicts_seen: set[tuple] = set()
        self._memo: dict = {}
        self.stats = Stats()

    # ------------------------------------------------------------------ public
    def full(self) -> Delta:
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

    def _full(self, t0: float) -> Delta:
        owners = set(self.view.keys_of(self.owner_kinds))
        owners.add(CONST_OWNER)
        owners |= self._rebuild_members()
        self._memo.clear()
        if not self.owner_flows and not self.cand and not self.owner_outs:
            return self._first(owners, t0)
        for gone in (set(self.owner_flows) | set(self.owner_outs)) - owners:
            self._recompute(gone)
        for o in owners:
            self._recompute(o)
        self.stats.full_runs += 1
        self._memo.clear()
        out = self._flush()
        self.stats.last_run_ms = (time.perf_counter() - t0) * 1000
        return out

    def _rebuild_members(self) -> set[tuple]:
        """Derived owners' membership from every fact (start-up, resync); returns the derived owners."""
        self.members.clear()
        self._member_of.clear()
        if not self._derive_by_source:
            return set()
        for k, obj in self.view.facts.items():
            kinds = self._derive_by_source.get(k[0])
            if kinds:
                self._set_membership(k, obj, kinds)
        return set(self.members)

    def _set_membership(self, k: tuple, obj: Any, kinds: list[DerivedKind]) -> tuple[tuple, ...]:
        """Record the derived owners fact `k` belongs to now; returns those it belonged to before."""
        try:
            new = tuple(o for d in kinds for o in d.derive(k, obj)) if obj is not None else ()
        except Exception:  # a bad record must never take the agent down: it belongs to no derived owner
            log.exception("deriving the owners of %s failed; it is left out of them", k)
            new = ()
        old = self._member_of.get(k, ())
        if new == old:
            return old
        for o in old:
            s = self.members.get(o)
            if s is not None:
                s.discard(k)
                if not s:
                    del self.members[o]
        for o in new:
            self.members.setdefault(o, set()).add(k)
        if new:
            self._member_of[k] = new
        else:
            self._member_of.pop(k, None)
        return old

    def _first(self, owners: set[tuple], t0: float) -> Delta:
        """The same result as recomputing every owner into an empty engine, without the per-flow delta
        bookkeeping (nothing is installed yet to diff against)."""
        rdeps, cand = self.rdeps, self.cand
        for o in owners:
            flows, others, deps = self._compute(o)
            if others:
                self.owner_outs[o] = others
                for x in others:
                    self.outs.add(x)
            if flows:
                self.owner_flows[o] = flows
                for f in flows:
                    k = f.key
                    if k in cand:
                        self._cand_more(k, f)
                    else:
                        cand[k] = f
            if deps:
                self.deps[o] = deps
                for d in deps:
                    s = rdeps.get(d)
                    if s is None:
                        rdeps[d] = (o,)
                    elif type(s) is tuple:
                        rdeps[d] = {*s, o}
                    else:
                        s.add(o)
        self._memo.clear()
        self.stats.full_runs += 1
        adds = []
        for k, slot in cand.items():
            f = _best(slot)
            if type(slot) is not Flow and len(slot) > 1:
                self._conflict(k, f)
            self.active[k] = f
            adds.append(f)
        per = self.per_table
        for k in self.active:
            per[k[0]] = per.get(k[0], 0) + 1
        changes = self._oflush()
        self.stats.last_run_ms = (time.perf_counter() - t0) * 1000
        return Delta([], adds, changes)

    def _conflict(self, k: tuple, winner: Flow | None) -> None:
        if k in self._conflicts_seen:
            return
        self._conflicts_seen.add(k)
        self.stats.conflicts += 1
        log.warning("conflicting flows for table=%s priority=%s %s: keeping %s", k[0], k[1],
                    ",".join(m.text() for m in k[2]), winner.to_text() if winner else None)

    def process(self, changed: set[tuple]) -> Delta:
        """Re-run the owners affected by `changed` fact/index keys; returns the Delta (which unpacks as
        (deleted cookies, added flows))."""
        t0 = time.perf_counter()
        owners: set[tuple] = set()
        kinds, by_source = self._owner_kind_set, self._derive_by_source
        for k in changed:
            rd = self.rdeps.get(k)
            if rd:
                owners.update(rd)
            if k[0] in kinds:
                owners.add(k)
            if by_source:
                dk = by_source.get(k[0])
                if dk:
                    owners.update(self._set_membership(k, self.view.facts.get(k), dk))
                    owners.update(self._member_of.get(k, ()))
        if CONST_OWNER not in self.owner_flows and CONST_OWNER not in self.owner_outs:
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

    def desired_outputs(self, kind: str, sub: str | None = None) -> dict[tuple, Any]:
        """The winning outputs of one kind ("group", "meter", "wish"; `sub` selects a wish kind)."""
        return self.outs.of_kind(kind, sub)

    # ----------------------------------------------------------------- private
    def _compute(self, owner: tuple) -> tuple[tuple[Flow, ...], tuple, frozenset]:
        """The owner's flows, its other outputs and what they were computed from; nothing for an owner
        that is gone."""
        self.stats.owners_computed += 1
        dk = self.derived.get(owner[0])
        if dk is not None:
            members = self.members.get(owner)
            if not members:
                return (), (), frozenset()
        elif owner != CONST_OWNER and owner not in self.view.facts:
            return (), (), frozenset()
        r = Reader(self.view, self._memo)
        try:
            outs = dk.compute(r, owner, sorted(members)) if dk is not None else self._compute_fn(r, owner)
            flows = tuple(outs)
            others: tuple = ()
            for x in flows:
                if type(x) is not Flow:
                    others = tuple(x for x in flows if type(x) is not Flow)
                    flows = tuple(x for x in flows if type(x) is Flow)
                    break
        except Exception:  # a bad record must never take the agent down
            log.exception("computing flows of %s failed; its flows are withdrawn", owner)
            flows, others = (), ()
        return flows, others, tuple(r.deps)

    def _recompute(self, owner: tuple) -> None:
        new, others, deps = self._compute(owner)
        old_others = self.owner_outs.get(owner, ())
        if others != old_others:
            for x in old_others:
                self.outs.remove(x)
            for x in others:
                self.outs.add(x)
            if others:
                self.owner_outs[owner] = others
            else:
                del self.owner_outs[owner]
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
        old = frozenset(self.deps.get(owner, ()))
        new_deps = frozenset(deps)
        if new_deps != old:
            rdeps = self.rdeps
            for d in old - new_deps:
                s = rdeps.get(d)
                if type(s) is tuple:
                    if owner in s:
                        rest = tuple(x for x in s if x != owner)
                        if rest:
                            rdeps[d] = rest
                        else:
                            del rdeps[d]
                elif s is not None:
                    s.discard(owner)
                    if not s:
                        del rdeps[d]
            for d in new_deps - old:
                s = rdeps.get(d)
                if s is None:
                    rdeps[d] = (owner,)
                elif type(s) is tuple:
                    rdeps[d] = {*s, owner}
                else:
                    s.add(owner)
        if deps:
            self.deps[owner] = deps
        else:
            self.deps.pop(owner, None)

    def _cand_more(self, k: tuple, f: Flow) -> None:
        """Count `f` as one more candidate for key `k`, which has candidates already."""
        slot = self.cand[k]
        if type(slot) is Flow:
            slot = self.cand[k] = {slot.cookie: [slot, 1]}
        entry = slot.get(f.cookie)
        if entry is None:
            slot[f.cookie] = [f, 1]
        else:
            entry[1] += 1

    def _cand_add(self, f: Flow) -> None:
        k = f.key
        if k in self.cand:
            self._cand_more(k, f)
        else:
            self.cand[k] = f
        self._touched.add(k)

    def _cand_del(self, f: Flow) -> None:
        k = f.key
        slot = self.cand.get(k)
        if slot is None:
            return
        if type(slot) is Flow:
            if slot.cookie == f.cookie:
                del self.cand[k]
                self._touched.add(k)
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

    def _oflush(self) -> list[tuple[tuple, Any, Any]]:
        changes, conflicts = self.outs.flush()
        self.stats.conflicts += conflicts
        return changes

    def _flush(self) -> Delta:
        deletes: list[int] = []
        adds: list[Flow] = []
        for k in self._touched:
            slot = self.cand.get(k)
            new = _best(slot) if slot else None
            old = self.active.get(k)
            if slot and type(slot) is not Flow and len(slot) > 1:
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
        return Delta(deletes, adds, self._oflush() if self.outs.touched else [])
