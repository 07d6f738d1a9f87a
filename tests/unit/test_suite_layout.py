"""pytest's default import mode needs every test module basename to be unique across tests/: two files of one
name in unit/ and integration/ stop the whole collection."""

from __future__ import annotations

import collections
import pathlib


def test_test_module_names_are_unique() -> None:
    root = pathlib.Path(__file__).parents[1]
    names = collections.Counter(p.name for p in root.rglob("test_*.py"))
    assert not [n for n, c in names.items() if c > 1]
