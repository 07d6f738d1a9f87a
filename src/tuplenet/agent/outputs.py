"""The engine's typed outputs besides flows: OpenFlow groups, meters and OVSDB wishes.

Owners return a mix of `Flow`s and these. Each output has an *identity* (`ident`: what the switch or the
database can hold only one of - a group id, a meter id, a wish key) and a *content digest*; as for flows, the
engine keeps every owner's candidate per identity and installs the one with the smallest digest, so the
result does not depend on the order in which changes arrived. Digests are stable across processes (a
hash of the canonical text), so every host resolves a conflict the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable

from ..records import NamedTuple
from .openflow.meters import MeterSpec

try:  # the C module hashlib.blake2b is: hashlib itself loads OpenSSL, a share of `tpctl trace`'s start
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - Python builds without it
    from hashlib import blake2b

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .view import Reader

GROUP_TAG = 0x7470  # "tp", as in flow cookies and meter ids: groups of other software are never touched
GROUP_TAG_SHIFT = 16

GROUP_SELECT = "select"
GROUP_ALL = "all"
GROUP_FF = "fast_failover"
GROUP_TYPES = (GROUP_ALL, GROUP_SELECT, "indirect", GROUP_FF)  # index = OFPGT_* number


def group_id(index: int) -> int:
    """Our group number `index` (tagged like meters, so ours are recognisable on a restart)."""
    if not 0 <= index < 1 << GROUP_TAG_SHIFT:
        raise ValueError(f"group index {index} out of range")
    return (GROUP_TAG << GROUP_TAG_SHIFT) | index


def group_is_ours(gid: int) -> bool:
    return gid >> GROUP_TAG_SHIFT == GROUP_TAG


def _digest(text: str) -> int:
    return int.from_bytes(blake2b(text.encode(), digest_size=8).digest(), "big")


class Bucket(NamedTuple):
    """One group bucket: `weight` for select groups, `watch_port` for fast-failover (None: not watched)."""

    actions: tuple
    weight: int = 0
    watch_port: int | None = None

    def text(self) -> str:
        parts = []
        if self.weight:
            parts.append(f"weight:{self.weight}")
        if self.watch_port is not None:
            parts.append(f"watch_port:{self.watch_port}")
        parts.append("actions=" + (",".join(a.text() for a in self.actions) or "drop"))
        return "bucket=" + ",".join(parts)


class Group(NamedTuple):
    """An OpenFlow group (select / all / fast_failover) with its buckets, in bucket order."""

    group_id: int
    type: str
    buckets: tuple[Bucket, ...]

    @property
    def ident(self) -> tuple:
        return ("group", self.group_id)

    @property
    def digest(self) -> int:
        return _digest(self.text())

    def text(self) -> str:
        """`ovs-ofctl -O OpenFlow15 add-group` syntax."""
        body = ",".join(b.text() for b in self.buckets)
        return f"group_id={self.group_id},type={self.type}" + (f",{body}" if body else "")


class Wish(NamedTuple):
    """Something the local OVSDB should hold: `kind` names the domain the daemon applies it to
    ("tunnel": chassis -> remote IP, "patch": lsp -> peer bridge, later "bfd", "ipfix", "mirror",
    "ct_zone"); `key` identifies it within the kind; `value` must be hashable (tuples for records)."""

    kind: str
    key: tuple
    value: Hashable

    @property
    def ident(self) -> tuple:
        return ("wish", self.kind, *self.key)

    @property
    def digest(self) -> int:
        return _digest(repr(self))


def meter_ident(m: MeterSpec) -> tuple:
    return ("meter", m.meter_id)


def ident_of(out: object) -> tuple:
    """The identity of a non-flow output (a MeterSpec has no room for properties of its own)."""
    if isinstance(out, MeterSpec):
        return ("meter", out.meter_id)
    return out.ident  # type: ignore[attr-defined]


def digest_of(out: object) -> int:
    if isinstance(out, MeterSpec):
        return _digest(repr(tuple(out)))
    return out.digest  # type: ignore[attr-defined]


OUTPUT_KINDS = ("group", "meter", "wish")


class Delta:
    """What one engine run changed: flow cookies to delete and flows to add (iterating a Delta yields
    those two, as the engine's result always did), plus `changes`: (identity, old, new) for every other
    output whose installed value changed (old None: new; new None: gone)."""

    __slots__ = ("deletes", "adds", "changes")

    def __init__(self, deletes: list[int], adds: list, changes: list[tuple[tuple, object, object]]) -> None:
        self.deletes = deletes
        self.adds = adds
        self.changes = changes

    def __iter__(self):
        return iter((self.deletes, self.adds))

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int):
        return (self.deletes, self.adds)[i]

    def of(self, kind: str, sub: str | None = None) -> list[tuple[tuple, object, object]]:
        """The changes of one output kind ("group", "meter", "wish"; `sub` selects a wish kind)."""
        return [c for c in self.changes if c[0][0] == kind and (sub is None or c[0][1] == sub)]

    def __bool__(self) -> bool:
        return bool(self.deletes or self.adds or self.changes)


class DerivedKind(NamedTuple):
    """An owner kind made of facts: `derive(fact_key, fact)` names the owners a fact of one of `sources`
    belongs to (a pure function of that one fact); `compute(reader, owner, members)` gives the owner's
    outputs from its sorted member keys (reading them through the reader, which records the dependencies)."""

    kind: str
    sources: tuple[str, ...]
    derive: Callable[[tuple, Any], Iterable[tuple]]
    compute: Callable[[Reader, tuple, list[tuple]], list]
