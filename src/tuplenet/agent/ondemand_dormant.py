"""Remote ports an on-demand host has not talked to, kept out of the view (0.3: an untouched lsp contributes
no facts). They cost a record and three small index entries each instead of a fact, three view index
entries, an engine owner with its dependencies and reverse dependencies: this is what keeps an on-demand
agent's memory and start time proportional to what it talks to in a 20,000-port view."""

from __future__ import annotations

from typing import Any

from .flow import mac_int


class Dormant:
    """lsp key -> (record, etcd create revision), findable by (switch, IP), (switch, MAC) and by name."""

    def __init__(self) -> None:
        self.records: dict[tuple, tuple[Any, int]] = {}
        self._by: dict[tuple, tuple[tuple, ...]] = {}  # ("ip"|"mac", ls, value) / ("name", name) -> keys

    def __len__(self) -> int:
        return len(self.records)

    def __contains__(self, key: tuple) -> bool:
        return key in self.records

    @staticmethod
    def _addrs(key: tuple, obj: Any) -> tuple[tuple, ...]:
        return (("ip", key[1], obj.ip), ("mac", key[1], mac_int(obj.mac)), ("name", key[2]))

    def put(self, key: tuple, obj: Any, created: int) -> None:
        if key in self.records:
            self.pop(key)
        self.records[key] = (obj, created)
        by = self._by
        ls = key[1]
        for a in (("ip", ls, obj.ip), ("mac", ls, mac_int(obj.mac)), ("name", key[2])):  # = _addrs, inlined
            cur = by.get(a)
            by[a] = (key,) if cur is None else (*cur, key)

    def pop(self, key: tuple) -> tuple[Any, int] | None:
        old = self.records.pop(key, None)
        if old is not None:
            for a in self._addrs(key, old[0]):
                rest = tuple(k for k in self._by.get(a, ()) if k != key)
                if rest:
                    self._by[a] = rest
                else:
                    self._by.pop(a, None)
        return old

    def find(self, ls: str, ip: str | None, mac: int | None) -> set[tuple]:
        out: set[tuple] = set()
        if ip:
            out.update(self._by.get(("ip", ls, ip), ()))
        if mac is not None:
            out.update(self._by.get(("mac", ls, mac), ()))
        return out

    def named(self, name: str) -> tuple[tuple, ...]:
        return self._by.get(("name", name), ())
