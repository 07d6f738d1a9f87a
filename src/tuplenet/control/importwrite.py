"""Writing a validated import: batches of at most 128 ops, guarded, behind the import marker.

One batch commits atomically and needs no marker. Several batches are written behind
`IMPORT_MARKER_KEY`: put first, checked by every batch, deleted by the last one. Agents hold topology
changes while it exists, so they never program a half-written import; if the writer dies (etcd gone,
Ctrl-C, kill), the marker stays and a re-run of the same file (`tpctl import --resume FILE`) completes the
rest. A batch that loses a race is rolled back with everything of this run (a fresh import leaves nothing).
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import replace

from tuplenet.model import IMPORT_MARKER_KEY, SCHEMA_VERSION, VERSION_KEY
from tuplenet.model.importmark import ImportMarker
from tuplenet.store import KV, Compare, Op, StoreError

from .errors import Conflict, ControlError

BATCH_OPS = 120  # below etcd's 128, leaving room for the marker and version compares


class Unit:
    """Puts that should commit together, with their guards."""

    __slots__ = ("compares", "ops")

    def __init__(self, compares: list[Compare] | None = None, ops: list[Op] | None = None) -> None:
        self.compares = compares if compares is not None else []
        self.ops = ops if ops is not None else []


class ImportInterrupted(ControlError):
    """The import stopped part way; the marker stays so agents keep holding and a resume can finish."""


def merge(units: list[Unit]) -> list[Unit]:
    """Pack units into as few batches as fit (a unit is never split)."""
    batches: list[Unit] = []
    for unit in units:
        if batches and len(batches[-1].ops) + len(unit.ops) <= BATCH_OPS \
                and len(batches[-1].compares) + len(unit.compares) <= BATCH_OPS:
            batches[-1].compares += unit.compares
            batches[-1].ops += unit.ops
        else:
            batches.append(Unit(list(unit.compares), list(unit.ops)))
    return batches


class ImportWriter:
    def __init__(self, store, marker: ImportMarker, marker_kv: KV | None, before: dict[str, KV | None]) -> None:
        self.store = store
        self.marker = marker
        self.marker_kv = marker_kv  # set when resuming an import that left its marker
        self.before = before  # key -> KV before this run, for rollback

    def write(self, units: list[Unit]) -> int:
        """Commit every unit; returns the number of transactions used for records."""
        batches = merge(units)
        version = Compare.value(VERSION_KEY, "=", str(SCHEMA_VERSION))
        if len(batches) <= 1 and self.marker_kv is None:
            if batches and not self.store.txn([*batches[0].compares, version], batches[0].ops).succeeded:
                raise Conflict("import aborted: data changed concurrently; nothing written")
            return len(batches)
        mark_rev = self._put_marker(len(batches))
        guard = Compare.mod_revision(IMPORT_MARKER_KEY, "=", mark_rev)
        done: list[tuple[Unit, int]] = []
        try:
            for i, batch in enumerate(batches):
                last = [Op.delete(IMPORT_MARKER_KEY)] if i == len(batches) - 1 else []
                res = self.store.txn([*batch.compares, version, guard], batch.ops + last)
                if not res.succeeded:
                    self._lost_race(done, len(batches), guard)
                done.append((batch, res.revision))
            if not batches:
                self.store.txn([guard], [Op.delete(IMPORT_MARKER_KEY)])
        except (StoreError, KeyboardInterrupt) as exc:
            why = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc)
            raise ImportInterrupted(
                f"import stopped after {len(done)} of {len(batches)} transactions ({why}); agents hold the "
                "change until it completes: run `tpctl import --resume FILE` with the same file") from None
        return len(batches)

    def _put_marker(self, batches: int) -> int:
        mark = replace(self.marker, batches=batches, started=int(time.time()), host=socket.gethostname(),
                       pid=os.getpid())
        kv = self.marker_kv
        cmp = Compare.mod_revision(IMPORT_MARKER_KEY, "=", kv.mod_revision) if kv else \
            Compare.missing(IMPORT_MARKER_KEY)
        res = self.store.txn([cmp], [Op.put(IMPORT_MARKER_KEY, mark.to_value())])
        if not res.succeeded:
            raise Conflict("another import started concurrently; nothing written")
        return res.revision

    def _lost_race(self, done: list[tuple[Unit, int]], total: int, guard: Compare) -> None:
        if self.marker_kv is not None:  # earlier runs wrote part of it: keep going forward, never back
            raise ImportInterrupted(f"import stopped at transaction {len(done) + 1} of {total}: data changed "
                                    "concurrently (or the marker was removed); run `tpctl import --resume FILE` "
                                    "again to complete it")
        clean = self._rollback(done)
        self.store.txn([guard], [Op.delete(IMPORT_MARKER_KEY)])
        raise ControlError(f"import aborted: data changed concurrently during batch {len(done) + 1} of {total}; "
                           + ("rolled back, nothing written" if clean else "rollback incomplete, check the tree"))

    def _rollback(self, done: list[tuple[Unit, int]]) -> bool:
        """Undo committed batches, newest first, only where a key still holds what we wrote."""
        clean = True
        for batch, rev in reversed(done):
            pairs = []
            for op in batch.ops:
                old = self.before.get(op.key)
                undo = Op.put(op.key, old.value) if old else Op.delete(op.key)
                pairs.append((Compare.mod_revision(op.key, "=", rev), undo))
            for i in range(0, len(pairs), BATCH_OPS):
                chunk = pairs[i:i + BATCH_OPS]
                if not self.store.txn([c for c, _ in chunk], [o for _, o in chunk]).succeeded:
                    for c, o in chunk:  # someone touched a key since: undo the others one by one
                        clean &= self.store.txn([c], [o]).succeeded
        return clean


__all__ = ["BATCH_OPS", "ImportInterrupted", "ImportWriter", "Unit", "merge"]
