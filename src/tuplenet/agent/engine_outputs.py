"""The engine's non-flow outputs (groups, meters, OVSDB wishes; outputs.py) and which one wins each identity.

Kept apart from the flow candidates because the rules differ in kind, not in spirit: several owners may
propose one identity, each proposal is reference-counted, and the winner is the smallest content digest, so
the result never depends on the order changes arrived in (the engine's "incremental == full" property).
"""

from __future__ import annotations

from ..lazylog import get_logger
from .outputs import digest_of, ident_of

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs a short-lived command's start (tests/unit/test_import_diet.py)
    from typing import Any

log = get_logger(__name__)


class OutputCandidates:
    """identity -> digest -> [output, refcount]; `active` holds each identity's winner as last flushed."""

    def __init__(self) -> None:
        self.cand: dict[tuple, dict[int, list]] = {}
        self.active: dict[tuple, Any] = {}
        self.touched: set[tuple] = set()
        self._conflicts_seen: set[tuple] = set()

    def add(self, x: Any) -> None:
        i = ident_of(x)
        slot = self.cand.setdefault(i, {})
        d = digest_of(x)
        entry = slot.get(d)
        if entry is None:
            slot[d] = [x, 1]
        else:
            entry[1] += 1
        self.touched.add(i)

    def remove(self, x: Any) -> None:
        i = ident_of(x)
        slot = self.cand.get(i)
        d = digest_of(x)
        entry = slot.get(d) if slot is not None else None
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            del slot[d]
            if not slot:
                del self.cand[i]
        self.touched.add(i)

    def flush(self) -> tuple[list[tuple[tuple, Any, Any]], int]:
        """((identity, old, new) for every output whose winner changed since the last flush, conflicts first
        seen now)."""
        changes = []
        conflicts = 0
        for i in sorted(self.touched, key=repr):
            slot = self.cand.get(i)
            new = slot[min(slot)][0] if slot else None
            if slot and len(slot) > 1 and i not in self._conflicts_seen:
                self._conflicts_seen.add(i)
                conflicts += 1
                log.warning("conflicting outputs for %s: keeping %s", i, new)
            old = self.active.get(i)
            if new == old:
                continue
            if new is None:
                del self.active[i]
            else:
                self.active[i] = new
            changes.append((i, old, new))
        self.touched.clear()
        return changes, conflicts

    def of_kind(self, kind: str, sub: str | None = None) -> dict[tuple, Any]:
        """The winners of one kind ("group", "meter", "wish"; `sub` selects a wish kind)."""
        return {i: x for i, x in self.active.items() if i[0] == kind and (sub is None or i[1] == sub)}


__all__ = ["OutputCandidates"]
