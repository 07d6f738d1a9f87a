"""Property: agents following the claim rule always converge, whatever is plugged where.

Three simulated chassis share one etcd-like record (compare-and-swap on its revision) and a liveness set.
Random events (plug/unplug the same iface-id, kill/revive an agent and its liveness key, set or clear
requested_chassis, an operator rewriting the chassis) happen with random delivery delays to each agent;
then every agent sees everything. From there the agents must stop writing within a few rounds, with few
writes, and the record must end where the rule says.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz_settings import fuzz
from tuplenet.agent import binding
from tuplenet.agent.binding import Binder
from tuplenet.agent.view import View
from tuplenet.model import LS, LSP

CHASSIS = ("hv1", "hv2", "hv3")
KEY = ("lsp", "ls1", "vm1")
BASE = LSP("ls1", "vm1", "10.0.0.1", "f2:00:00:00:00:01")


class Agent:
    def __init__(self, name: str, clock) -> None:
        self.name = name
        self.view = View()
        self.binder = Binder(clock)
        self.seen_rev = 0
        self.alive = True
        self.last: tuple = (None, set(), False)
        changed: set = set()
        self.view.apply(("self",), name, changed)
        self.view.apply(("LS", "ls1"), LS("ls1", 1), changed)

    def see(self, lsp: LSP, rev: int, live: set[str], plugged: bool) -> set:
        """Apply what differs from what this agent saw last (as the watch and OVS monitor would)."""
        changed: set = set()
        self.seen_rev = rev
        if lsp is not self.last[0]:
            self.view.apply(KEY, lsp, changed)
        if live != self.last[1]:
            for c in CHASSIS:
                self.view.apply(binding.live_key(c), True if c in live else None, changed)
        if plugged != self.last[2]:
            self.view.apply(("bind", "vm1"), 7 if plugged else None, changed)
        self.last = (lsp, set(live), plugged)
        return changed


class World:
    def __init__(self) -> None:
        self.now = 0.0
        self.lsp, self.rev = BASE, 1
        self.live = set(CHASSIS)
        self.plugged = {c: False for c in CHASSIS}
        self.agents = {c: Agent(c, lambda: self.now) for c in CHASSIS}
        self.writes = 0

    def round(self, deliver: set[str]) -> int:
        """Agents in `deliver` (and alive) see the latest state, then each writes its claims (CAS)."""
        wrote = 0
        for c in CHASSIS:
            a = self.agents[c]
            if not a.alive:
                continue
            changed = a.see(self.lsp, self.rev, self.live, self.plugged[c]) if c in deliver else set()
            for _key, lsp in a.binder.update(a.view, changed):
                if a.seen_rev == self.rev:  # compare-and-swap on the revision this agent saw
                    self.lsp, self.rev = replace(lsp, chassis=c), self.rev + 1
                    self.writes += 1
                    wrote += 1
        return wrote

    def next_due(self) -> float | None:
        dues = [d for a in self.agents.values() if a.alive and (d := a.binder.next_due()) is not None]
        return min(dues, default=None)


# An event is one byte (cheap to generate and shrink): what happens, and which agents hear of it at once.
KINDS = [(k, c) for k in ("plug", "unplug", "kill", "revive") for c in CHASSIS]
KINDS += [(k, c) for k in ("request", "operator") for c in (*CHASSIS, None)]


def decode(n: int) -> tuple[tuple[str, str | None], set[str]]:
    kind, mask = KINDS[n // 8 % len(KINDS)], n % 8
    return kind, {c for i, c in enumerate(CHASSIS) if mask >> i & 1}


@pytest.mark.fuzz
@fuzz
@given(st.binary(max_size=10))
def test_claims_converge(events: bytes) -> None:
    log = logging.getLogger("tuplenet.agent.binding")
    was, log.disabled = log.disabled, True  # thousands of state changes per run: the messages cost most
    try:
        _converge(events)
    finally:
        log.disabled = was


def _converge(events: bytes) -> None:
    w = World()
    for (kind, arg), deliver in map(decode, events):
        if kind == "plug":
            w.plugged[arg] = True
        elif kind == "unplug":
            w.plugged[arg] = False
        elif kind == "kill":
            w.agents[arg].alive = False
            w.live.discard(arg)
        elif kind == "revive":
            w.agents[arg].alive = True
            w.live.add(arg)
        else:
            field = "requested_chassis" if kind == "request" else "chassis"
            w.lsp, w.rev = replace(w.lsp, **{field: arg}), w.rev + 1
        w.round(deliver)
        w.now += 0.3
    # Everyone sees everything from now on: writes must stop within a few rounds.
    settle_writes, quiet = 0, 0
    for _ in range(40):
        wrote = w.round(set(CHASSIS))
        settle_writes += wrote
        quiet = quiet + 1 if wrote == 0 and w.next_due() is None else 0
        if quiet == 2:
            break
        due = w.next_due()
        w.now = max(w.now + 0.3, due if due is not None else 0.0)
    assert quiet == 2, "agents still writing or waiting to write"
    assert settle_writes <= 2
    # Where the rule says the port ends up.
    lsp, holders = w.lsp, [c for c in CHASSIS if w.plugged[c] and w.agents[c].alive]
    if lsp.requested_chassis:
        if lsp.requested_chassis in holders:
            assert lsp.chassis == lsp.requested_chassis
    elif holders:
        # Bound to a live chassis that has the interface, unless it is held by another live chassis.
        assert lsp.chassis in holders or lsp.chassis in w.live
