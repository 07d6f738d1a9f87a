"""Splitting op lists into transactions etcd accepts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tuplenet.store import MAX_TXN_OPS, Compare, Op, StoreError, split_ops
from tuplenet.store.txn import _conflicts, check_txn_size


def test_split_by_count() -> None:
    ops = [Op.put(f"k{i}", "v") for i in range(300)]
    batches = split_ops(ops)
    assert [len(b) for b in batches] == [128, 128, 44]
    assert [op for b in batches for op in b] == ops
    assert split_ops([]) == []


def test_split_at_duplicate_key() -> None:
    ops = [Op.put("a", "1"), Op.put("b", "1"), Op.put("a", "2")]
    assert split_ops(ops) == [[ops[0], ops[1]], [ops[2]]]


def test_split_where_a_delete_covers_a_put() -> None:
    ops = [Op.put("d/x", "1"), Op.delete_prefix("d/"), Op.put("d/y", "1"), Op.delete("d/y"), Op.delete("d/z")]
    assert split_ops(ops) == [[ops[0]], [ops[1]], [ops[2]], [ops[3], ops[4]]]


def test_reads_and_deletes_do_not_split() -> None:
    ops = [Op.get("a"), Op.delete("a"), Op.delete_prefix(""), Op.get_prefix("a")]
    assert split_ops(ops) == [ops]


def test_split_by_bytes() -> None:
    ops = [Op.put(f"k{i}", "x" * 1000) for i in range(10)]
    batches = split_ops(ops, max_bytes=3100)
    assert [len(b) for b in batches] == [3, 3, 3, 1]
    assert split_ops([Op.put("big", "x" * 5000)], max_bytes=100) == [[Op.put("big", "x" * 5000)]]


def test_check_txn_size() -> None:
    check_txn_size([Compare.missing("k")] * MAX_TXN_OPS, [Op.put("k", "v")] * MAX_TXN_OPS, [])
    with pytest.raises(StoreError, match="129 success ops"):
        check_txn_size([], [Op.put(f"k{i}", "v") for i in range(129)], [])
    with pytest.raises(StoreError, match="compares"):
        check_txn_size([Compare.missing("k")] * 129, [], [])


_ops = st.lists(st.one_of(
    st.builds(Op.put, st.sampled_from(["a", "a/b", "b", "b/c", "c"]), st.text(max_size=3)),
    st.builds(Op.delete, st.sampled_from(["a", "b", "c"])),
    st.builds(Op.delete_prefix, st.sampled_from(["a", "b/", ""])),
    st.builds(Op.get, st.sampled_from(["a", "b"])),
), max_size=60)


@given(_ops, st.integers(min_value=1, max_value=9))
def test_split_properties(ops: list[Op], max_ops: int) -> None:
    batches = split_ops(ops, max_ops=max_ops)
    assert [op for b in batches for op in b] == ops  # order kept, nothing lost
    for batch in batches:
        assert 1 <= len(batch) <= max_ops
        puts: set[str] = set()
        deletes: list[Op] = []
        for op in batch:
            assert not _conflicts(op, puts, deletes)
            if op.kind == "put":
                puts.add(op.key)
            elif op.kind.startswith("delete"):
                deletes.append(op)
