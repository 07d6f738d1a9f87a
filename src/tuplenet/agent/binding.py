"""Port binding: which logical port a local interface stands for, and when this chassis may claim it.

The rule converges whatever the other chassis have plugged (live migration, a cloned VM, ports of one
name in two switches), so two agents can never take a port from each other in a loop:
- candidates for iface-id X are the ordinary lsps named X (not router-facing, not patch ports). One
  candidate: that one. Several (one name in several switches): the one already recorded on this chassis
  if exactly one is, else the iface-id is ambiguous and nothing is bound here.
- claim it (write `chassis=<self>` with a compare-and-swap on the revision seen, never a blind overwrite,
  0.3 §7.6) only if it is unbound, recorded on a chassis that is not live (no `liveness/chassis/<id>`
  key), or its `requested_chassis` names this chassis. An lsp that requests another chassis is never
  claimed, and a port recorded on another live chassis is never taken otherwise.
- claims of one port are spaced by an exponential backoff (1 s doubling to 60 s), so agents that do not
  follow this rule, or a split view of liveness, cost at most one write a minute.

`bound_lsp` is the one definition of the candidate rule: the pipeline reads it through the engine's
Reader (dependencies tracked), the claimer through a plain Reader.

An interface counts from the moment its row with the iface-id appears (`("plugged", iface-id)`), before
ovs-vswitchd gives it an ofport, so the claim's etcd round trip overlaps the port's creation; its flows
need the ofport (`("bind", iface-id)`). An interface whose device is missing (no ofport ever) is thus
claimed too, but gets no flows and no readiness mark.

While a claim is in flight the Binder publishes a local fact (`claiming_key`): the pipeline treats the
port as bound here, so its local flows go in as soon as the interface and the lsp are known, not one etcd
round trip later. The fact goes as soon as the claim is decided either way (the port comes back bound here,
another live chassis holds it, the interface or the lsp goes) or is deferred by the backoff.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from ..lazylog import get_logger
from ..model import PATCH_PORT_IP
from ..records import dataclass, replace
from ..store import Compare, Op, Store, StoreError
from .view import Reader, View

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

log = get_logger(__name__)  # logging loads with the first message (lazylog)

BOUND, CLAIM, CONFLICT, REQUESTED, AMBIGUOUS, NONE = "bound", "claim", "conflict", "requested", "ambiguous", "none"
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 60.0  # seconds between claims of one port after the first


def live_key(chassis: str) -> tuple:
    """View fact present while the chassis' liveness key exists in etcd."""
    return ("live", chassis)


def claiming_key(lsp_key: tuple) -> tuple:
    """Local fact present while this chassis is claiming the lsp (the claim rule allows it, write in flight)."""
    return ("claiming", *lsp_key[1:])


def _candidates(r: Reader, iface_id: str) -> list[tuple[tuple, Any]]:
    out = []
    for k in r.members(("I", "lsp_name", iface_id)):
        lsp = r.get(k)
        if lsp is not None and not lsp.peer and lsp.ip != PATCH_PORT_IP:
            out.append((k, lsp))
    return out


def bound_lsp(r: Reader, iface_id: str) -> tuple | None:
    """The lsp key a local interface with this iface-id stands for, or None (no such port, or ambiguous)."""
    cands = _candidates(r, iface_id)
    if len(cands) == 1:
        return cands[0][0]
    self_id = r.self_id
    mine = [k for k, lsp in cands if lsp.chassis == self_id]
    return mine[0] if len(mine) == 1 else None


@dataclass(frozen=True)
class Decision:
    state: str
    lsp: tuple | None = None
    holder: str | None = None  # the chassis recorded on the lsp
    requested: str | None = None
    ambiguous: tuple[tuple, ...] = ()


def decide(view: View, iface_id: str) -> Decision:
    """What this chassis does about a local interface with `iface_id` (pure)."""
    r = Reader(view)
    self_id = r.self_id
    cands = _candidates(r, iface_id)
    if not cands:
        return Decision(NONE)
    key = bound_lsp(r, iface_id)
    if key is None:
        return Decision(AMBIGUOUS, ambiguous=tuple(k for k, _ in cands))
    lsp = view.facts[key]
    holder, requested = lsp.chassis or None, lsp.requested_chassis or None
    if holder == self_id:
        return Decision(BOUND, key, holder, requested)
    if requested is not None and requested != self_id:
        return Decision(REQUESTED, key, holder, requested)
    if holder is not None and requested is None and live_key(holder) in view.facts:
        return Decision(CONFLICT, key, holder)
    return Decision(CLAIM, key, holder, requested)


def _name(key: tuple) -> str:
    return f"{key[1]}/{key[2]}"


@dataclass
class _Backoff:
    delay: float = 0.0  # 0: the next claim may go at once
    next_at: float = 0.0
    held_since: float | None = None

    def claimed(self, now: float) -> None:
        self.delay = BACKOFF_FIRST if self.delay == 0 else min(2 * self.delay, BACKOFF_MAX)
        self.next_at = now + self.delay
        self.held_since = None

    def observe(self, state: str, now: float) -> None:
        """A claim that held for BACKOFF_MAX resets the backoff (a later move is not a flap)."""
        if state == BOUND:
            if self.held_since is None:
                self.held_since = now
            elif now - self.held_since >= BACKOFF_MAX:
                self.delay = 0.0
        else:
            self.held_since = None


class Binder:
    """Binding decisions for local interfaces, recomputed only for the iface-ids a batch touched."""

    def __init__(self, clock=time.monotonic) -> None:
        self.clock = clock
        self.states: dict[str, Decision] = {}
        self._backoff: dict[tuple, _Backoff] = {}
        self._due: dict[str, float] = {}  # iface-id -> when its deferred claim may go
        self.claiming: dict[str, tuple] = {}  # iface-id -> lsp key whose claim is in flight
        self._published: set[tuple] = set()  # claiming facts the view holds
        self.claims = 0
        self.deferred = 0
        self._pending_log: list[tuple[Any, tuple]] = []  # (logger method, args) of the last update

    def _affected(self, view: View, changed: Iterable[tuple] | None) -> set[str]:
        if changed is None:
            return ({k[1] for k in view.members(("I", "binds"))} | set(self.states)
                    | {k[1] for k in view.facts if k[0] == "plugged"})
        out: set[str] = set()
        for k in changed:
            kind = k[0]
            if kind in ("bind", "plugged"):
                out.add(k[1])
            elif kind == "lsp":
                out.add(k[2])
            elif kind == "live":
                out.update(i for i, d in self.states.items() if d.holder == k[1])
            elif kind == "self":
                return self._affected(view, None)
        return out

    def update(self, view: View, changed: Iterable[tuple] | None) -> list[tuple[tuple, Any]]:
        """(lsp key, lsp) claims to write now; `changed` None re-decides every local interface. Its log lines
        wait for `flush_log` (or the next update), so writing them never delays the claims it returns."""
        self.flush_log()
        now = self.clock()
        ids = self._affected(view, changed)
        ids.update(i for i, at in self._due.items() if at <= now)
        out = []
        for i in ids:
            if ("bind", i) not in view.facts and ("plugged", i) not in view.facts:
                self._due.pop(i, None)
                self.claiming.pop(i, None)
                old = self.states.pop(i, None)
                if old is not None and old.state != NONE:
                    self._log(log.info, "iface-id %s: interface gone", i)
                continue
            d = decide(view, i)
            self._note(i, d)
            b = self._backoff.get(d.lsp) if d.lsp is not None else None
            if b is not None:
                b.observe(d.state, now)
            if d.state != CLAIM:
                self._due.pop(i, None)
                self.claiming.pop(i, None)
                continue
            if b is None:
                b = self._backoff[d.lsp] = _Backoff()
            if now < b.next_at:
                if self.claiming.get(i) != d.lsp:  # deferred after a lost claim: not ours for now
                    self.claiming.pop(i, None)
                if self._due.get(i) != b.next_at:
                    self.deferred += 1
                    self._log(log.info, "iface-id %s: claim of %s deferred %.0f s (claimed and lost before)", i,
                              _name(d.lsp), b.next_at - now)
                self._due[i] = b.next_at
                continue
            b.claimed(now)
            # Re-check once the backoff has passed even if nothing seems to change: a claim overwritten
            # before we saw it come back (a compacted watch re-lists only the last value) is retried.
            self._due[i] = b.next_at
            self.claiming[i] = d.lsp
            self.claims += 1
            out.append((d.lsp, view.facts[d.lsp]))
        return out

    def claiming_changes(self) -> list[tuple[tuple, bool | None]]:
        """(fact key, True or None to remove) for the claiming facts that changed since the last call."""
        want = {claiming_key(k) for k in self.claiming.values()}
        out: list[tuple[tuple, bool | None]] = [(k, None) for k in self._published - want]
        out += [(k, True) for k in want - self._published]
        self._published = want
        return out

    def next_due(self) -> float | None:
        return min(self._due.values(), default=None)

    def _note(self, iface: str, d: Decision) -> None:
        """Log once per state change, not per batch."""
        old = self.states.get(iface)
        self.states[iface] = d
        if old == d:
            return
        if d.state == BOUND:
            self._log(log.info, "iface-id %s: bound to %s", iface, _name(d.lsp))
        elif d.state == CONFLICT:
            self._log(log.warning, "iface-id %s: %s is bound to live chassis %s; not taking it (set its "
                      "requested_chassis to move it)", iface, _name(d.lsp), d.holder)
        elif d.state == REQUESTED:
            self._log(log.warning, "iface-id %s: %s is requested by chassis %s; not binding it here", iface,
                      _name(d.lsp), d.requested)
        elif d.state == AMBIGUOUS:
            self._log(log.warning, "iface-id %s names ports in several switches (%s) and not exactly one is "
                      "recorded on this chassis; binding none of them", iface, ", ".join(map(_name, d.ambiguous)))
        elif d.state == CLAIM:
            why = ("requested here" if d.requested else f"chassis {d.holder} is not live" if d.holder
                   else "unbound")
            self._log(log.info, "iface-id %s: claiming %s (%s)", iface, _name(d.lsp), why)

    def _log(self, fn: Any, *args: Any) -> None:
        self._pending_log.append((fn, args))

    def flush_log(self) -> None:
        """Write the log lines of the last update (after its claims left)."""
        pending, self._pending_log = self._pending_log, []
        for fn, args in pending:
            fn(*args)

    def status(self) -> dict[str, Any]:
        bound = conflicts = 0
        conf: dict[str, dict[str, str]] = {}
        amb: dict[str, list[str]] = {}
        for i, d in self.states.items():
            if d.state == BOUND:
                bound += 1
            elif d.state in (CONFLICT, REQUESTED):
                conflicts += 1
                if len(conf) < 100:
                    conf[i] = {"lsp": _name(d.lsp), "chassis": d.holder or ""}
                    if d.requested:
                        conf[i]["requested_chassis"] = d.requested
            elif d.state == AMBIGUOUS and len(amb) < 100:
                amb[i] = [_name(k) for k in d.ambiguous]
        return {"bound": bound, "conflicts": conf, "ambiguous": amb, "claims": self.claims,
                "claiming": len(self.claiming),
                "deferred": self.deferred, "waiting": len(self._due)}


def requested_here(lsp: Any, self_id: str | None) -> bool:
    """Unbound and requested on this chassis: peers already tunnel here (pipeline/switching.py), so its claim
    is on nobody's path and its readiness need not wait for the claim to come back."""
    return not lsp.chassis and lsp.requested_chassis == self_id


HANDOFF_WAIT = 0.002  # s the main loop waits for an idle claim thread to take a claim (it sends it then)


class ClaimWriter:
    """Writes claims without holding the agent's main loop: an etcd round trip (an fsync) per claim must not
    stall it, above all when many ports come up at once. The compare-and-swap uses the revision the decision
    was made on; the outcome comes back through the watch like any other change.

    Over gRPC a claim is sent from the loop without waiting for its answer: handing it to a thread cost a
    thread wake-up (~1 ms on a loaded host) before the request left and, when waited for, as much again on
    the loop before the port's own flows. The thread keeps the retries (failover, token renewal) and the
    JSON gateway's claims. A claim handed to an idle thread is waited for until the thread has taken it:
    otherwise the thread starts only when the main loop next lets go of the GIL, after it has computed the
    port's local flows (0.5-2 ms, every peer's flows to the port waiting on the claim). The thread's own
    Python work up to the request is ~0.2 ms; a claim queued behind another is not waited for, so a burst
    never stalls the loop."""

    def __init__(self, store: Store, self_id: str) -> None:
        self.store = store
        self.self_id = self_id
        self.written = self.failed = 0
        self._lock = threading.Lock()  # the counts: gRPC's threads report claims sent without the thread
        self._idle = False
        import queue  # the claim thread's queue: the pipeline's users of the claim rule never need it

        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="claims", daemon=True)
        self._thread.start()

    def submit(self, lsp: Any, mod_revision: int | None) -> None:
        """Claim `lsp` if etcd still holds it at `mod_revision` (None: if it exists).

        Over gRPC the request is sent from here without waiting (Store.txn_start): it leaves at once and the
        loop goes on; only a failed attempt comes to the thread (failover, token renewal). Otherwise the
        thread sends it, and a port requested on this chassis is not waited for: peers already tunnel here
        (pipeline/switching.py), so its claim is on nobody's path."""
        if self._start(lsp, mod_revision):
            return
        taken = threading.Event() if self._idle and not requested_here(lsp, self.self_id) else None
        self._q.put((lsp, mod_revision, taken))
        if taken is not None:
            taken.wait(HANDOFF_WAIT)

    def stop(self) -> None:
        self._q.put(None)

    def _start(self, lsp: Any, mod_revision: int | None) -> bool:
        """One attempt without waiting; True if it was sent (its outcome handled by `_started`)."""
        start = getattr(self.store, "txn_start", None)
        if start is None:
            return False
        _new, cmp, ops = claim_txn(lsp, mod_revision, self.self_id)
        try:
            return start(cmp, ops, lambda res, err: self._started(lsp, mod_revision, res, err))
        except Exception as exc:  # noqa: BLE001 - not sent (a closed channel...): the thread's path reports it
            log.debug("claim of %s not started: %s", lsp.name, exc)
            return False

    def _started(self, lsp: Any, mod_revision: int | None, res: Any, err: Exception | None) -> None:
        """The outcome of a claim sent by `_start` (on a transport thread). A failed attempt goes to the claim
        thread, which retries through the store's failover; if the first attempt did land, the retry's
        compare fails and nothing is written twice."""
        if err is not None:
            log.debug("claim of %s: %s; retrying from the claim thread", lsp.name, err)
            self._q.put((lsp, mod_revision, None))
            return
        self._count(lsp, res.succeeded)

    def _count(self, lsp: Any, ok: bool) -> None:
        """From the claim thread and gRPC's threads alike."""
        with self._lock:
            if ok:
                self.written += 1
            else:
                self.failed += 1
        if ok:  # on a gRPC thread while the loop installs the port's flows: the binder logs it (bound to)
            log.debug("bound port %s/%s to this chassis (was %s)", lsp.ls, lsp.name, lsp.chassis or "unbound")

    def _run(self) -> None:
        while True:
            self._idle = True
            item = self._q.get()
            self._idle = False
            if item is None:
                return
            if item[2] is not None:
                item[2].set()
            try:
                ok = write_claim(self.store, item[0], item[1], self.self_id)
            except Exception:  # noqa: BLE001 - one bad write must not end the writer
                log.exception("claim of %s failed", item[0].name)
                ok = False
            self._count(item[0], ok)


def claim_txn(lsp: Any, mod_revision: int | None, self_id: str) -> tuple[Any, list[Compare], list[Op]]:
    """The claim of `lsp` as a compare-and-swap: the record rewritten with chassis=self, if etcd still holds
    the revision the decision was made on."""
    new = replace(lsp, chassis=self_id)
    cmp = [Compare.mod_revision(new.key, "=", mod_revision)] if mod_revision else [Compare.exists(new.key)]
    return new, cmp, [Op.put(new.key, new.to_value())]


def write_claim(store: Store, lsp: Any, mod_revision: int | None, self_id: str) -> bool:
    _new, cmp, ops = claim_txn(lsp, mod_revision, self_id)
    try:
        res = store.txn(cmp, ops)
    except StoreError as exc:
        log.warning("binding %s failed: %s", lsp.name, exc)
        return False
    return res.succeeded
