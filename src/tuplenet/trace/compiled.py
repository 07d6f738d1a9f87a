"""One chassis's flows, indexed for lookup and with their actions compiled to tuples.

A table is a list of match *signatures* (the fields and masks a flow matches on); each signature holds a
dict from the masked field values to the highest-priority flow with them (OVS's tuple-space search). A
lookup hashes the packet once per signature, highest priority first, and stops as soon as no remaining
signature can beat the best hit: a few dict lookups per table whatever the number of ports.
"""

from __future__ import annotations

from collections.abc import Iterable
from operator import and_, itemgetter

from ..agent import flow as F
from ..records import NamedTuple
from .packet import WIDTH

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Compiled action opcodes: (code, *args).
(OUTPUT, OUTPUT_REG, RESUBMIT, SET, MOVE, DEC_TTL, CONTROLLER, METER, BUNDLE, CT, GROUP, CLONE, MULTIPATH,
 SAMPLE, OTHER) = range(15)


class Entry(NamedTuple):
    priority: int
    flow: F.Flow
    actions: tuple          # compiled, without a final resubmit
    owner: tuple | None
    tail: int | None        # the table of a final resubmit (walked as a loop, not a recursion)


def entry(f: F.Flow, owner: tuple | None) -> Entry:
    acts = tuple(map(_compiled, f.actions))
    if acts and acts[-1][0] == RESUBMIT:
        return Entry(f.priority, f, acts[:-1], owner, acts[-1][1])
    return Entry(f.priority, f, acts, owner, None)


def _ones(n: int) -> int:
    return (1 << n) - 1


def compile_action(a: Any) -> tuple:
    if isinstance(a, F.Resubmit):
        return (RESUBMIT, a.table)
    if isinstance(a, F.Load):
        width = WIDTH[a.field]
        nbits = width - a.ofs if a.nbits is None else a.nbits
        mask = _ones(nbits) << a.ofs
        return (SET, a.field, _ones(width) ^ mask, (a.value << a.ofs) & mask)
    if isinstance(a, F.SetField):
        width = WIDTH[a.field]
        return (SET, a.field, 0, a.value & _ones(width))
    if isinstance(a, F.Move):
        nbits = min(WIDTH[a.src], WIDTH[a.dst]) if a.nbits is None else a.nbits
        return (MOVE, a.src, a.src_ofs, a.dst, a.dst_ofs, _ones(nbits))
    if isinstance(a, F.Output):
        return (OUTPUT, a.port)
    if isinstance(a, F.OutputReg):
        return (OUTPUT_REG, a.field, a.ofs, _ones(a.nbits))
    if isinstance(a, F.DecTtl):
        return (DEC_TTL,)
    if isinstance(a, F.Controller):
        return (CONTROLLER, a.userdata, a.pause)
    if isinstance(a, F.Meter):
        return (METER, a.meter_id)
    if isinstance(a, F.BundleLoad):
        return (BUNDLE, a)
    if isinstance(a, F.Ct):
        return (CT, a)
    if isinstance(a, F.ToGroup):
        return (GROUP, a.group_id)
    if isinstance(a, F.Clone):
        return (CLONE, tuple(compile_action(x) for x in a.actions))
    if isinstance(a, F.Multipath):
        return (MULTIPATH, a)
    if isinstance(a, F.Sample):
        return (SAMPLE, a)
    return (OTHER, a)


def _empty_key(pkt: dict[str, int]) -> tuple:
    return ()


def _key_function(fields: tuple[str, ...], masks: tuple[int, ...] | None) -> Any:
    if not fields:
        return _empty_key
    get = itemgetter(*fields)
    if masks is None:
        return get
    if len(fields) == 1:
        f, m = fields[0], masks[0]
        return lambda pkt: pkt[f] & m
    return lambda pkt: tuple(map(and_, get(pkt), masks))


class _Group:
    """Flows sharing one signature: `fields` with `masks` (None = exact match on every field)."""

    __slots__ = ("max_priority", "key", "fields", "masks", "hits")

    def __init__(self, fields: tuple[str, ...], masks: tuple[int, ...] | None) -> None:
        self.fields, self.masks = fields, masks
        self.key = _key_function(fields, masks)  # packet -> key, C-level calls where possible
        self.max_priority = -1
        self.hits: dict[Any, Entry] = {}

    def key_of_flow(self, m: tuple[F.M, ...]) -> Any:
        """The key a packet matching these values computes (same shape as `key`: scalar for one field)."""
        if not self.fields:
            return ()
        masks = self.masks or (None,) * len(m)
        vals = tuple(x.value if mk is None else x.value & mk for x, mk in zip(m, masks, strict=True))
        return vals[0] if len(vals) == 1 else vals

    def add(self, e: Entry) -> None:
        k = self.key_of_flow(e.flow.match)
        old = self.hits.get(k)
        if old is None or e.priority > old.priority or (e.priority == old.priority
                                                        and e.flow.cookie < old.flow.cookie):
            self.hits[k] = e
        self.max_priority = max(self.max_priority, e.priority)


def _is_clause(f: F.Flow) -> bool:
    return bool(f.actions) and all(type(a) is F.Conjunction for a in f.actions)


class Table:
    __slots__ = ("groups", "size", "only", "conj")

    def __init__(self, entries: Iterable[Entry]) -> None:
        groups: dict[tuple, _Group] = {}
        clauses: dict[tuple, tuple[_Group, dict[Any, list]]] = {}
        self.size = 0
        for e in entries:
            m = e.flow.match
            fields = tuple(x.field for x in m)
            exact = all(x.mask is None for x in m)
            masks = None if exact else tuple(_ones(WIDTH[x.field]) if x.mask is None else x.mask for x in m)
            sig = (fields, masks)
            if _is_clause(e.flow):  # conjunction(id, k/n) clauses match nothing by themselves (see lookup)
                cg = clauses.get(sig)
                if cg is None:
                    cg = clauses[sig] = (_Group(fields, masks), {})
                cg[1].setdefault(cg[0].key_of_flow(m), []).append((e.priority, e.flow.actions))
                self.size += 1
                continue
            g = groups.get(sig)
            if g is None:
                g = groups[sig] = _Group(fields, masks)
            g.add(e)
            self.size += 1
        # Highest priority first; ties broken by signature so the order never depends on arrival.
        self.groups = sorted(groups.values(), key=lambda g: (-g.max_priority, g.fields, g.masks or ()))
        # A table whose best flow matches everything (pass-through stages): no lookup at all.
        top = self.groups[0] if self.groups else None
        self.only: Entry | None = top.hits[()] if top is not None and not top.fields and not clauses else None
        self.conj = list(clauses.values())

    def lookup(self, pkt: dict[str, int]) -> Entry | None:
        best = self._lookup(pkt)
        return self._conjunction(pkt, best) if self.conj else best

    def _conjunction(self, pkt: dict[str, int], best: Entry | None) -> Entry | None:
        """OVS's conjunctive match: a `conj_id=<id>` flow matches when every clause k of n of conjunction
        <id> at its priority has a matching flow, and wins if no plain flow has a higher priority."""
        bp = best.priority if best is not None else -1
        seen: dict[tuple[int, int], tuple[int, set[int]]] = {}
        for g, hits in self.conj:
            for prio, acts in hits.get(g.key(pkt), ()):
                if prio > bp:
                    for a in acts:
                        seen.setdefault((prio, a.conj_id), (a.n_clauses, set()))[1].add(a.clause)
        for (prio, cid), (n, got) in sorted(seen.items(), reverse=True):
            if len(got) == n:
                saved, pkt["conj_id"] = pkt["conj_id"], cid
                try:
                    e = self._lookup(pkt)
                finally:
                    pkt["conj_id"] = saved
                if e is not None and e.priority == prio and any(m.field == "conj_id" for m in e.flow.match):
                    return e
        return best

    def _lookup(self, pkt: dict[str, int]) -> Entry | None:
        best: Entry | None = None
        bp = -1
        for g in self.groups:
            if g.max_priority <= bp:
                break
            e = g.hits.get(g.key(pkt))
            if e is not None and e.priority > bp:
                best, bp = e, e.priority
        return best


_ABSENT: tuple[None, None] = (None, None)
# (action type, action) -> compiled; most actions are shared constants. The type is part of the key because
# named tuples of different types compare equal by value (Output(2) == Resubmit(2)).
_COMPILED: dict[tuple[type, Any], tuple] = {}


def _compiled(a: Any) -> tuple:
    if type(a) is F.Clone:  # nested actions: equal by value across types, so never memoised
        return compile_action(a)
    key = (type(a), a)
    c = _COMPILED.get(key)
    if c is None:
        if len(_COMPILED) >= _COMPILED_MAX:
            _COMPILED.clear()
        c = _COMPILED[key] = compile_action(a)
    return c


# Long-lived users (the API server) trace many topologies: both caches stay bounded.
_SHARED: dict[tuple, tuple[Entry | None, Table | None]] = {}
_SHARED_MAX = 256          # tables kept
_SHARED_MAX_FLOWS = 2048   # bigger tables are per-topology anyway (ports, routes): not shared
_COMPILED_MAX = 100_000


def _cookie(f: F.Flow) -> int:
    return f.cookie


class Tables:
    """A chassis's flows by table, each table compiled on first use: a trace visits a few dozen tables,
    a chassis may have hundreds of thousands of flows."""

    def __init__(self, flows: Iterable[F.Flow], owners: dict[int, tuple]) -> None:
        self.flows: dict[int, list[F.Flow]] = {}
        for f in flows:
            self.flows.setdefault(f.table, []).append(f)
        self.owners = owners
        self.probes: dict[int, tuple[Entry | None, Table | None]] = {}

    @property
    def size(self) -> int:
        return sum(map(len, self.flows.values()))

    def compile(self, tid: int) -> tuple[Entry | None, Table | None]:
        """(the table's catch-all winner or None, the table or None when it has no flows)."""
        flows = self.flows.get(tid)
        if not flows:
            probe: tuple[Entry | None, Table | None] = _ABSENT
        else:
            owners = self.owners
            share = len(flows) <= _SHARED_MAX_FLOWS
            key: tuple = ()
            if share:  # the same flows on another chassis (constant stages): compiled once
                flows.sort(key=_cookie)
                key = (tid, tuple([(f.cookie, owners.get(f.cookie)) for f in flows]))
            probe = _SHARED.get(key) if share else None
            if probe is None:
                t = Table(entry(f, owners.get(f.cookie)) for f in flows)
                probe = (t.only, t)
                if share:
                    if len(_SHARED) >= _SHARED_MAX:
                        _SHARED.clear()
                    _SHARED[key] = probe
        self.probes[tid] = probe
        return probe


def compile_tables(flows: Iterable[F.Flow], owners: dict[int, tuple]) -> Tables:
    """The given (installed) flows, ready to walk; `owners` maps a cookie to its logical owner."""
    return Tables(flows, owners)


def owner_index(owner_flows: dict[tuple, tuple[F.Flow, ...]]) -> dict[int, tuple]:
    """cookie -> owner; when several owners produce one flow, the smallest owner key (deterministic)."""
    out: dict[int, tuple] = {}
    for owner in sorted(owner_flows, key=repr):
        for f in owner_flows[owner]:
            out.setdefault(f.cookie, owner)
    return out


class CGroup(NamedTuple):
    """An OpenFlow group with its buckets' actions compiled."""

    group_id: int
    type: str
    buckets: tuple[tuple[tuple, int | None], ...]  # (compiled actions, watch port)


def compile_groups(groups: Iterable[Any]) -> dict[int, CGroup]:
    """group id -> compiled group, from the engine's group outputs (agent.outputs.Group)."""
    return {g.group_id: CGroup(g.group_id, g.type, tuple((tuple(compile_action(a) for a in b.actions),
                                                            b.watch_port) for b in g.buckets))
            for g in groups}
