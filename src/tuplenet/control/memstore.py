"""An in-memory stand-in for tuplenet.store.Store with etcd's transaction semantics.

Used by unit tests of the control layer (fast, no etcd) and usable for dry runs. Only the subset of the
Store API the control layer needs: get, get_prefix, put, delete, delete_prefix, txn, txn_batches.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from tuplenet.store import KV, Compare, Op, TxnResult

_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "EQUAL": lambda a, b: a == b, "NOT_EQUAL": lambda a, b: a != b,
    "LESS": lambda a, b: a < b, "GREATER": lambda a, b: a > b,
}


class MemStore:
    """Dict-backed store: one global revision, per-key mod/create revision and version, atomic txns."""

    def __init__(self) -> None:
        self.data: dict[str, KV] = {}
        self.rev = 1
        self.txn_count = 0
        self.before_txn: Callable[[MemStore], None] | None = None  # test hook to inject races
        self._lock = threading.RLock()

    def get(self, key: str) -> KV | None:
        return self.data.get(key)

    def get_prefix(self, key_prefix: str = "", page_size: int = 1000,
                   on_page: Callable[[list[KV], bool], None] | None = None) -> tuple[list[KV], int]:
        """As Store.get_prefix (one page)."""
        with self._lock:
            kvs, rev = [self.data[k] for k in sorted(self.data) if k.startswith(key_prefix)], self.rev
        if on_page is not None:
            on_page(kvs, True)
        return kvs, rev

    def put(self, key: str, value: str, lease: int | None = None) -> int:
        return self.txn([], [Op.put(key, value, lease)]).revision

    def delete(self, key: str) -> int:
        return self.txn([], [Op.delete(key)]).responses[0]

    def delete_prefix(self, key_prefix: str) -> int:
        return self.txn([], [Op.delete_prefix(key_prefix)]).responses[0]

    def _holds(self, c: Compare) -> bool:
        kv = self.data.get(c.key)
        actual: Any
        if c.target == "VERSION":
            actual = kv.version if kv else 0
        elif c.target == "MOD":
            actual = kv.mod_revision if kv else 0
        elif c.target == "CREATE":
            actual = kv.create_revision if kv else 0
        elif c.target == "VALUE":
            if kv is None:
                return False
            actual = kv.value
        else:
            actual = kv.lease if kv else 0
        return _CMP[c.result](actual, c.operand)

    def txn(self, compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()) -> TxnResult:
        if len(compares) > 128 or len(success) > 128 or len(failure) > 128:
            raise ValueError("too many operations in txn request")
        if self.before_txn is not None:
            hook, self.before_txn = self.before_txn, None
            hook(self)
        with self._lock:
            self.txn_count += 1
            ok = all(self._holds(c) for c in compares)
            ops = success if ok else failure
            writes = any(op.kind in ("put", "delete", "delete_prefix") for op in ops)
            rev = self.rev + 1 if writes else self.rev
            responses: list[Any] = []
            for op in ops:
                responses.append(self._apply(op, rev))
            self.rev = rev
            return TxnResult(ok, rev, responses)

    def _apply(self, op: Op, rev: int) -> Any:
        if op.kind == "get":
            return self.data.get(op.key)
        if op.kind == "get_prefix":
            return [self.data[k] for k in sorted(self.data) if k.startswith(op.key)]
        if op.kind == "put":
            old = self.data.get(op.key)
            self.data[op.key] = KV(op.key, op.value, rev, old.create_revision if old else rev,
                                   old.version + 1 if old else 1, op.lease or 0)
            return rev
        if op.kind == "delete":
            return 1 if self.data.pop(op.key, None) is not None else 0
        doomed = [k for k in self.data if k.startswith(op.key)]
        for k in doomed:
            del self.data[k]
        return len(doomed)

    def txn_batches(self, ops: Sequence[Op], compares: Sequence[Compare] = ()) -> list[TxnResult]:
        results = []
        for i in range(0, len(ops), 128):
            result = self.txn(compares if i == 0 else (), ops[i:i + 128])
            results.append(result)
            if not result.succeeded:
                break
        return results

    def close(self) -> None:
        pass
