"""Duplicates that etcd allows but a network cannot: two ports of one switch with one MAC or one IP, two
switches/routers with one datapath id. The record created first keeps the address (or id); later ones are
shadowed - they produce no flows, are warned about once and counted - until the first one goes away.

0.3 let such records in when written straight to etcd; a shadowed port silently stealing another's
traffic (or a shadowed switch black-holing) is worse than a clear "ignored" in the log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..lazylog import get_logger

log = get_logger(__name__)  # logging loads with the first message (lazylog)

GROUPS = {"ls_mac": "MAC", "ls_ip": "IP", "dp_id": "id"}


def winner(members: Iterable[tuple], created: Callable[[tuple], int]) -> tuple | None:
    """The member that keeps the contested address: oldest etcd record, then smallest key."""
    return min(members, key=lambda k: (created(k), k), default=None)


def _label(key: tuple) -> str:
    return f"{key[0]} {'/'.join(key[1:])}"


class Shadowing:
    """Which records are shadowed right now, updated from the keys a batch changed; logs transitions once."""

    def __init__(self) -> None:
        self.by_group: dict[tuple, frozenset[tuple]] = {}
        self.count: dict[tuple, int] = {}  # shadowed key -> number of groups it loses in
        self.warned = 0

    def update(self, index: dict[tuple, set[tuple]], created: dict[tuple, int], changed: Iterable[tuple]) -> None:
        for ikey in changed:
            if len(ikey) < 3 or ikey[0] != "I" or ikey[1] not in GROUPS:
                continue
            members = index.get(ikey, ())
            first = winner(members, lambda k: created.get(k, 0))
            losers = frozenset(k for k in members if k != first)
            old = self.by_group.get(ikey, frozenset())
            if losers == old:
                continue
            if losers:
                self.by_group[ikey] = losers
            else:
                self.by_group.pop(ikey, None)
            what = f"{GROUPS[ikey[1]]} {ikey[-1]}"
            for k in losers - old:
                self.count[k] = self.count.get(k, 0) + 1
                self.warned += 1
                log.warning("ignoring %s: its %s is already used by %s (it takes effect once that one is gone)",
                            _label(k), what, _label(first))
            for k in old - losers:
                n = self.count.get(k, 0) - 1
                if n > 0:
                    self.count[k] = n
                    continue
                self.count.pop(k, None)
                if k in members:
                    log.info("%s takes effect: its %s is no longer contested", _label(k), what)

    def status(self) -> dict:
        return {"shadowed": len(self.count), "warned_total": self.warned,
                "keys": sorted(_label(k) for k in self.count)[:20]}
