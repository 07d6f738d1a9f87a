"""ovsdb_txn._Names: the row of a name, from the views' cache when it is still right, else from the table."""

import uuid

from tuplenet.agent.ovsdb_txn import _Names


class Row:
    def __init__(self, name: str, data: object = ()) -> None:
        self.uuid, self.name, self._data = uuid.uuid4(), name, data  # python-ovs: None for a row just inserted


class View:
    def __init__(self, name: str) -> None:
        self.name = name


class Table:
    def __init__(self, rows: list[Row]) -> None:
        self.rows = {r.uuid: r for r in rows}


def test_cached_name_is_used_only_while_the_row_is_live_and_still_so_named() -> None:
    a, b, c = Row("a"), Row("b"), Row("c")
    table = Table([a, b, c])
    cached = {a.uuid: (a, View("a")), b.uuid: (b, View("b"))}
    assert _Names(table, cached)["a"] is a
    b.name = "b2"  # renamed since its view was built: the cache's word is not taken
    assert _Names(table, cached)["b2"] is b
    gone = Row("a")
    table.rows.pop(a.uuid)
    table.rows[gone.uuid] = gone  # "a" deleted and created again: a new row
    assert _Names(table, cached)["a"] is gone
    assert _Names(table, cached)["c"] is c  # not cached at all
    assert _Names(table)["c"] is c


def test_unknown_name_is_a_key_error() -> None:
    import pytest

    with pytest.raises(KeyError):
        _Names(Table([Row("x")]), {})["y"]


def test_a_row_this_transaction_inserted_is_not_found_by_name() -> None:
    old, new = Row("p"), Row("p", data=None)
    table = Table([old, new])
    assert _Names(table)["p"] is old
