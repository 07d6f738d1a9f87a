"""The agent's local replica of everything its flows depend on, with change tracking.

Facts are keyed by tuples: etcd entities (`("lsp", ls, name)`, `("LR", name)`, ...) and local OVS facts
(`("bind", iface_id)` → ofport of a VM interface, `("patchport", lsp)` → ofport of a patch port we made,
`("tun", chassis)` → ofport, `("tunfb",)` → ofport, `("self",)` → system-id). Secondary indexes
(`("I", ...)` keys) answer the questions the pipeline asks ("which router ports are in this switch",
"which router port has this name"). `apply()` reports every fact and index key
that changed, which is what the engine's dependency tracking consumes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from .flow import mac_int

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

EMPTY: frozenset = frozenset()

PATCH_IP = "255.255.255.255"


def route_group(ip: str, prefix: int) -> tuple[int, int]:
    """Masked network and prefix: routes in one group get distinct ILK indexes."""
    net = ipaddress.IPv4Network(f"{ip}/{prefix}", strict=False)
    return int(net.network_address), prefix


def _index_keys(key: tuple, obj: Any) -> list[tuple]:
    """The index entries a fact belongs to; the single definition of every index."""
    kind = key[0]
    if kind == "lsp":
        if obj.ip == PATCH_IP:
            return [("I", "lsp_name", key[2]), ("I", "patch_ports")]
        # Address groups: a later port repeating a MAC or IP in its switch is shadowed (see duplicates.py).
        return [("I", "lsp_name", key[2]), ("I", "ls_mac", key[1], mac_int(obj.mac)),
                ("I", "ls_ip", key[1], obj.ip)]
    if kind == "chassis":
        return [("I", "chassis")]
    if kind == "bind":
        return [("I", "binds")]
    if kind == "lrp":
        return [("I", "lrp_name", key[2]), ("I", "lr_lrps", key[1]),
                ("I", "rgroup", key[1], 0, *route_group(obj.ip, obj.prefix))]
    if kind == "lsr":
        return [("I", "lr_lsrs", key[1]), ("I", "rgroup", key[1], 1, *route_group(obj.ip, obj.prefix))]
    if kind == "lnat":
        return [("I", "lr_lnats", key[1])]
    if kind in ("ls_lb", "lr_lb"):  # load balancers: group-id slot (pipeline/lb.py)
        from ..model.lb import lb_slot  # loaded with the first load balancer (tpctl trace's start)

        return [("I", "lb_slot", lb_slot(kind, key[1], key[2]))]
    if kind == "lbh":  # a backend out of service: ("lbh", LS|LR, dp, lb, "ip:port")
        return [("I", "lb_down", key[1], key[2], key[3])]
    if kind == "LS":
        return [("I", "dp_id", obj.id)]
    if kind == "LR":
        pinned = [("I", "lr_pinned", obj.chassis), ("I", "pinned_lrs")] if obj.chassis else []
        return [("I", "dp_id", obj.id), *pinned]
    return []


class View:
    """Facts plus indexes; pure data, no I/O."""

    def __init__(self) -> None:
        self.facts: dict[tuple, Any] = {}
        self.index: dict[tuple, set[tuple] | tuple] = {}  # a 1-tuple for a single member, else a set
        # etcd create revision of each record: "first come" among duplicates survives restarts and
        # re-listings, unlike arrival order. Absent (0) for local facts and in pure tests.
        self.created: dict[tuple, int] = {}

    def get(self, key: tuple) -> Any:
        return self.facts.get(key)

    def members(self, ikey: tuple) -> frozenset | set:
        return self.index.get(ikey, EMPTY)

    def apply(self, key: tuple, obj: Any, changed: set[tuple], created: int = 0) -> None:
        """Set (obj not None) or remove (None) one fact; add every changed key to `changed`."""
        old = self.facts.get(key)
        if obj is None:
            self.created.pop(key, None)
        elif created and self.created.get(key) != created:
            self.created[key] = created
            changed.add(key)  # re-created with the same value: its rank among duplicates changed
        if old == obj and (obj is not None or key not in self.facts):
            return
        old_idx = _index_keys(key, old) if old is not None else []
        new_idx = _index_keys(key, obj) if obj is not None else []
        if obj is None:
            self.facts.pop(key, None)
        else:
            self.facts[key] = obj
        changed.add(key)
        index = self.index
        for ik in old_idx:
            if ik not in new_idx:
                s = index.get(ik)
                if type(s) is tuple:
                    if s == (key,):
                        del index[ik]
                elif s is not None:
                    s.discard(key)
                    if not s:
                        del index[ik]
                changed.add(ik)
        for ik in new_idx:
            if ik not in old_idx:
                # Most index entries have one member (a MAC, an IP, a name): a 1-tuple costs a fifth of a set.
                s = index.get(ik)
                if s is None:
                    index[ik] = (key,)
                elif type(s) is tuple:
                    if s[0] != key:
                        index[ik] = {s[0], key}
                else:
                    s.add(key)
                changed.add(ik)
        # An index changes only with its membership; readers that use a member's fields read the member
        # itself and so depend on it directly.

    def keys_of(self, kinds: Iterable[str]) -> list[tuple]:
        ks = set(kinds)
        return [k for k in self.facts if k[0] in ks]


class Reader:
    """A view accessor that records what an owner's computation read (its dependencies)."""

    __slots__ = ("view", "deps", "memo")

    def __init__(self, view: View, memo: dict | None = None) -> None:
        self.view = view
        self.deps: set[tuple] = set()
        self.memo = memo if memo is not None else {}

    def cached(self, key: tuple, fn) -> Any:
        """fn(reader) computed once per engine run for all owners that ask; every asker inherits the
        dependencies of the computation (the view does not change within a run)."""
        hit = self.memo.get(key)
        if hit is None:
            sub = Reader(self.view, self.memo)
            hit = (fn(sub), frozenset(sub.deps))
            self.memo[key] = hit
        self.deps |= hit[1]
        return hit[0]

    def get(self, key: tuple) -> Any:
        self.deps.add(key)
        return self.view.facts.get(key)

    def created(self, key: tuple) -> int:
        """The record's etcd create revision (a re-creation always marks the key changed)."""
        self.deps.add(key)
        return self.view.created.get(key, 0)

    def members(self, ikey: tuple) -> list[tuple]:
        self.deps.add(ikey)
        return sorted(self.view.index.get(ikey, EMPTY))

    @property
    def self_id(self) -> str | None:
        return self.get(("self",))
