"""Splitting a long list of operations into transactions etcd accepts.

etcd rejects a txn with more than --max-txn-ops (128) operations in a branch, a request larger than
--max-request-bytes (1.5 MiB), and a txn that puts one key twice or puts a key a delete in the same txn covers
("duplicate key given in txn request"). split_ops cuts the list so every batch is accepted, keeping op order.
"""

from __future__ import annotations

from collections.abc import Sequence

from .errors import StoreError
from .types import Compare, Op

MAX_TXN_OPS = 128
# Raw key+value bytes per batch: well under etcd's default 1.5 MiB request limit, leaving room for framing.
MAX_TXN_BYTES = 1 << 20


def check_txn_size(compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op]) -> None:
    """Refuse locally what etcd would refuse, with a message that says which limit was hit."""
    for name, items in (("compares", compares), ("success ops", success), ("failure ops", failure)):
        if len(items) > MAX_TXN_OPS:
            raise StoreError(f"transaction has {len(items)} {name}; etcd allows at most {MAX_TXN_OPS} "
                             "(use txn_batches to split writes)")


def _conflicts(op: Op, puts: set[str], deletes: list[Op]) -> bool:
    if op.kind == "put":
        if op.key in puts:
            return True
        return any(op.key == d.key if d.kind == "delete" else op.key.startswith(d.key) for d in deletes)
    if op.kind == "delete":
        return op.key in puts
    if op.kind == "delete_prefix":
        return any(k.startswith(op.key) for k in puts)
    return False


def split_ops(ops: Sequence[Op], max_ops: int = MAX_TXN_OPS,
              max_bytes: int = MAX_TXN_BYTES) -> list[list[Op]]:
    """Cut `ops` into consecutive batches of at most `max_ops` ops and about `max_bytes` bytes, starting a new
    batch wherever an op would clash with an earlier op of the same batch. Empty input gives no batches."""
    if max_ops < 1:
        raise StoreError("max_ops must be at least 1")
    batches: list[list[Op]] = []
    cur: list[Op] = []
    puts: set[str] = set()
    deletes: list[Op] = []
    size = 0
    for op in ops:
        op_size = len(op.key) + len(op.value) + 16
        if cur and (len(cur) >= max_ops or size + op_size > max_bytes or _conflicts(op, puts, deletes)):
            batches.append(cur)
            cur, puts, deletes, size = [], set(), [], 0
        cur.append(op)
        size += op_size
        if op.kind == "put":
            puts.add(op.key)
        elif op.kind in ("delete", "delete_prefix"):
            deletes.append(op)
    if cur:
        batches.append(cur)
    return batches
