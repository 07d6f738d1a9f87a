"""The agent's flow vocabulary: immutable, hashable OpenFlow flows.

Pipeline stages build `Flow` objects; `ofctrl` diffs them; the OpenFlow codec encodes them to binary for the
persistent connection, and `to_text()` renders them in `ovs-ofctl` syntax for humans (`tuplenet check`,
logs). A flow's cookie is a hash of its content, marked with our tag in the top 16 bits: equal flows have
equal cookies on every host and every run (of one Python version; an upgrade re-installs flows once), so a restarted agent reconciles by cookie alone, and flows with
another tag (third parties) are never touched.

Match fields are in flow_fields.py and actions in flow_actions.py; this module re-exports both.
"""

from __future__ import annotations

import marshal

from .flow_actions import *  # noqa: F403 - the vocabulary is imported from here
from .flow_actions import __all__ as _actions_all
from .flow_fields import *  # noqa: F403
from .flow_fields import M
from .flow_fields import __all__ as _fields_all

try:  # the C module hashlib.blake2b is: hashlib itself loads OpenSSL, a share of `tpctl trace`'s start
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - Python builds without it
    from hashlib import blake2b

COOKIE_TAG = 0x7470  # "tp"
COOKIE_TAG_SHIFT = 48
COOKIE_TAG_MASK = 0xFFFF << COOKIE_TAG_SHIFT


class Flow:
    """One OpenFlow flow. Empty `actions` means drop. Treat as immutable (it is hashed and shared)."""

    __slots__ = ("table", "priority", "match", "actions", "_cookie")

    def __init__(self, table: int, priority: int, match: tuple[M, ...] = (), actions: tuple = ()) -> None:
        self.table = table
        self.priority = priority
        self.match = match
        self.actions = actions
        self._cookie = 0

    def _ident(self) -> bytes:
        """Canonical content bytes (action type names included). marshal format 2 has no back-references,
        so equal content gives equal bytes in every process of one Python version."""
        try:
            return marshal.dumps((self.table, self.priority, tuple(map(tuple, self.match)),
                                  tuple(map(tuple, self.actions)), tuple([type(a).__name__ for a in self.actions])), 2)
        except ValueError:  # a nested named tuple (ct's nat): fall back to its text
            return self.body_text().encode()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Flow) and self.cookie == other.cookie

    def __hash__(self) -> int:
        return self.cookie

    def __repr__(self) -> str:
        return f"Flow({self.body_text()})"

    def body_text(self) -> str:
        """The flow in `ovs-ofctl add-flow` syntax, without the cookie."""
        m = ",".join(x.text() for x in self.match)
        acts = ",".join(a.text() for a in self.actions) or "drop"
        return f"table={self.table},priority={self.priority}" + (f",{m}" if m else "") + f",actions={acts}"

    def to_text(self) -> str:
        """`ovs-ofctl add-flow` syntax, including the cookie."""
        return f"cookie={hex(self.cookie)},{self.body_text()}"

    @property
    def cookie(self) -> int:
        """Stable across processes and hosts: a hash of the flow's content; also its identity."""
        if not self._cookie:
            digest = blake2b(self._ident(), digest_size=6).digest()
            self._cookie = (COOKIE_TAG << COOKIE_TAG_SHIFT) | int.from_bytes(digest, "big")
        return self._cookie

    @property
    def key(self) -> tuple[int, int, tuple[M, ...]]:
        """What OpenFlow treats as identity: two flows with one key cannot both be installed."""
        return (self.table, self.priority, self.match)


def is_ours(cookie: int) -> bool:
    return (cookie & COOKIE_TAG_MASK) >> COOKIE_TAG_SHIFT == COOKIE_TAG


__all__ = ["COOKIE_TAG", "COOKIE_TAG_MASK", "COOKIE_TAG_SHIFT", "Flow", "is_ours", *_actions_all, *_fields_all]
