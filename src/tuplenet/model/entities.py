"""Logical objects as immutable values, each knowing its etcd key and its 0.3 value text.

`extra` keeps fields this version does not know (written by a newer tool or by hand), so a rewrite of a
record (e.g. the agent setting `chassis=`) never drops them. It is left out of equality: unknown fields do
not change behaviour, so they must not look like a change either.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..records import dataclass, field
from .addr import PATCH_PORT_IP

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, ClassVar

ROOT = "entity_view/"
Extra = tuple[tuple[str, str], ...]


def format_value(pairs: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    """'k=v,k=v' in the given order (a mapping or (key, value) pairs)."""
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    return ",".join(f"{k}={v}" for k, v in items)


class _Entity:
    """Shared behaviour; subclasses are frozen slotted dataclasses, each with a docstring (without one,
    @dataclass computes an inspect.signature() for it: a measurable share of every tpctl/tpcni start)."""

    __slots__ = ()
    kind: ClassVar[str]
    parent_kind: ClassVar[str | None] = None
    # Fields shown by `tpctl ... show`, in 0.3 order.
    SHOW: ClassVar[tuple[str, ...]]

    @property
    def ident(self) -> tuple[str, ...]:
        raise NotImplementedError

    @property
    def key(self) -> str:
        return entity_key(self.kind, self.ident)

    def _pairs(self) -> list[tuple[str, str]]:
        raise NotImplementedError

    def to_value(self) -> str:
        return format_value(self._pairs() + list(self.extra))  # type: ignore[attr-defined]

    def show_fields(self) -> list[tuple[str, str]]:
        """(field, text) pairs for plain output; None prints as empty like 0.3's Go zero values."""
        return [(f, "" if getattr(self, f) is None else str(getattr(self, f))) for f in self.SHOW]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.parent_kind is not None:
            out["switch" if self.parent_kind == "LS" else "router"] = self.ident[0]
        out["name"] = self.ident[-1]
        for f in self.SHOW:
            out[f] = getattr(self, f)
        if self.extra:  # type: ignore[attr-defined]
            out["extra"] = dict(self.extra)  # type: ignore[attr-defined]
        return out


@dataclass(frozen=True, slots=True)
class LS(_Entity):
    """A logical switch; `id` is its datapath id (in the Geneve VNI)."""

    name: str
    id: int
    extra: Extra = field(default=(), compare=False, repr=False)
    kind: ClassVar[str] = "LS"
    SHOW: ClassVar[tuple[str, ...]] = ("id",)

    @property
    def ident(self) -> tuple[str, ...]:
        return (self.name,)

    def _pairs(self) -> list[tuple[str, str]]:
        return [("id", str(self.id))]


@dataclass(frozen=True, slots=True)
class LR(_Entity):
    """A router; `chassis` set means it is pinned (centralised) on that chassis."""

    name: str
    id: int
    chassis: str | None = None
    extra: Extra = field(default=(), compare=False, repr=False)
    kind: ClassVar[str] = "LR"
    SHOW: ClassVar[tuple[str, ...]] = ("id", "chassis")

    @property
    def ident(self) -> tuple[str, ...]:
        return (self.name,)

    def _pairs(self) -> list[tuple[str, str]]:
        pairs = [("id", str(self.id))]
        if self.chassis:
            pairs.append(("chassis", self.chassis))
        return pairs


@dataclass(frozen=True, slots=True)
class LSP(_Entity):
    """A switch port; peer is the linked lrp name, or the OVS bridge name for a patch port."""

    ls: str
    name: str
    ip: str
    mac: str
    peer: str | None = None
    chassis: str | None = None
    # When set, only that chassis may bind the port (OVN's requested-chassis): how an operator moves a port
    # that is live on another chassis (migration); the agents never take a port from a live chassis otherwise.
    requested_chassis: str | None = None
    # Port security (on unless the record says `port_security=false`): a VM port may send only from its
    # own MAC and IP. Off for VMs that route or bridge for others (routers in VMs, nested networks).
    port_security: bool = True
    extra: Extra = field(default=(), compare=False, repr=False)
    kind: ClassVar[str] = "lsp"
    parent_kind: ClassVar[str | None] = "LS"
    SHOW: ClassVar[tuple[str, ...]] = ("ip", "mac", "peer", "chassis")

    @property
    def ident(self) -> tuple[str, ...]:
        return (self.ls, self.name)

    @property
    def is_patch(self) -> bool:
        return self.ip == PATCH_PORT_IP

    def _pairs(self) -> list[tuple[str, str]]:
        pairs = [("ip", self.ip), ("mac", self.mac)]
        if self.peer:
            pairs.append(("peer", self.peer))
        if self.chassis:
            pairs.append(("chassis", self.chassis))
        if self.requested_chassis:
            pairs.append(("requested_chassis", self.requested_chassis))
        if not self.port_security:
            pairs.append(("port_security", "false"))
        return pairs


@dataclass(frozen=True, slots=True)
class LRP(_Entity):
    """A router port: address and prefix length on the router, MAC, and the linked lsp name (`peer`)."""

    lr: str
    name: str
    ip: str
    prefix: int
    mac: str
    peer: str | None = None
    extra: Extra = field(default=(), compare=False, repr=False)
    kind: ClassVar[str] = "lrp"
    parent_kind: ClassVar[str | None] = "LR"
    SHOW: ClassVar[tuple[str, ...]] = ("ip", "prefix", "mac", "peer")

    @property
    def ident(self) -> tuple[str, ...]:
        return (self.lr, self.name)

    def _pairs(self) -> list[tuple[str, str]]:
        # 0.3's Go writer always emits peer=, even when empty.
        return [("ip", self.ip), ("prefix", str(self.prefix)), ("mac", self.mac), ("peer", self.peer or "")]


@dataclass(frozen=True, slots=True)
class LSR(_Entity):
    """A static route of a router: prefix via `next_hop`, leaving through router port `outport`."""

    lr: str
    name: str
    ip: str
    prefix: int
    next_hop: str
    outport: str
    extra: Extra = field(default=(), compare=False, repr=False)
    kind: ClassVar[str] = "lsr"
    parent_kind: ClassVar[str | None] = "LR"
    SHOW: ClassVar[tuple[str, ...]] = ("ip", "prefix", "next_hop", "outport")

    @property
    def ident(self) -> tuple[str, ...]:
        return (self.lr, self.name)

    def _pairs(self) -> list[tuple[str, str]]:
        return [("ip", self.ip), ("prefix", str(self.prefix)), ("next_hop", self.next_hop),
                ("outport", self.outport)]


@dataclass(frozen=True, slots=True)
class LNAT(_Entity):
    """A NAT rule of a router: `xlate_type` snat/dnat translating prefix `ip` to `xlate_ip`."""

    lr: str
    name: str
    ip: str
    prefix: int
    xlate_type: str
    xlate_ip: str
    extra: Extra = field(default=(), compare=False, repr=False)
    kind: ClassVar[str] = "lnat"
    parent_kind: ClassVar[str | None] = "LR"
    SHOW: ClassVar[tuple[str, ...]] = ("ip", "prefix", "xlate_type", "xlate_ip")

    @property
    def ident(self) -> tuple[str, ...]:
        return (self.lr, self.name)

    def _pairs(self) -> list[tuple[str, str]]:
        return [("ip", self.ip), ("prefix", str(self.prefix)), ("xlate_type", self.xlate_type),
                ("xlate_ip", self.xlate_ip)]


@dataclass(frozen=True, slots=True)
class Chassis(_Entity):
    """A host as registered by its agent: tunnel endpoint IP and registration tick (unix seconds)."""

    name: str
    ip: str
    tick: int
    extra: Extra = field(default=(), compare=False, repr=False)
    kind: ClassVar[str] = "chassis"
    SHOW: ClassVar[tuple[str, ...]] = ("ip", "tick")

    @property
    def ident(self) -> tuple[str, ...]:
        return (self.name,)

    def _pairs(self) -> list[tuple[str, str]]:
        return [("ip", self.ip), ("tick", str(self.tick))]


Entity = LS | LR | LSP | LRP | LSR | LNAT | Chassis
ENTITY_TYPES: dict[str, type] = {c.kind: c for c in (LS, LR, LSP, LRP, LSR, LNAT, Chassis)}
# Child kind -> the sub-directory name under its parent (they coincide in 0.3).
CHILD_KINDS = {"LS": ("lsp", "acl"), "LR": ("lrp", "lsr", "lnat")}


def entity_key(kind: str, ident: tuple[str, ...]) -> str:
    """Relative etcd key of an object of `kind` identified by `ident` (see parse_key for the inverse)."""
    if kind in ("LS", "LR", "chassis", "mirror", "address_set", "port_group"):
        return f"{ROOT}{kind}/{ident[0]}"
    if kind in ("acl", "pg_acl"):  # model/acl.py (beyond 0.3)
        return f"{ROOT}{'LS' if kind == 'acl' else 'port_group'}/{ident[0]}/acl/{ident[1]}"
    if kind == "lsp":
        return f"{ROOT}LS/{ident[0]}/lsp/{ident[1]}"
    if kind in ("lrp", "lsr", "lnat"):
        return f"{ROOT}LR/{ident[0]}/{kind}/{ident[1]}"
    if kind in ("ls_lb", "lr_lb"):  # load balancers: model/lb.py (beyond 0.3)
        return f"{ROOT}{'LS' if kind == 'ls_lb' else 'LR'}/{ident[0]}/lb/{ident[1]}"
    raise ValueError(f"unknown entity kind {kind!r}")


def children_prefix(kind: str, name: str, child: str | None = None) -> str:
    """Key prefix of every child of an LS/LR (or of one child kind)."""
    base = f"{ROOT}{kind}/{name}/"
    return base + f"{child}/" if child else base


def parse_key(key: str) -> tuple[str, tuple[str, ...]] | None:
    """Relative key -> (kind, ident), or None for keys that are not topology entities."""
    parts = key.split("/")
    n = len(parts)
    if n < 3 or parts[0] != "entity_view" or not all(parts[1:]):
        return None
    top = parts[1]
    if n == 3 and top in ("LS", "LR", "chassis", "mirror", "address_set", "port_group"):  # beyond 0.3: mirror, acl.py
        return top, (parts[2],)
    if n == 5:
        sub = parts[3]
        if top == "LS" and sub == "lsp":
            return "lsp", (parts[2], parts[4])
        if sub == "acl" and top in ("LS", "port_group"):
            return ("acl" if top == "LS" else "pg_acl"), (parts[2], parts[4])
        if top == "LR" and sub in ("lrp", "lsr", "lnat"):
            return sub, (parts[2], parts[4])
        if sub == "lb" and top in ("LS", "LR"):  # load balancers: model/lb.py (beyond 0.3)
            return ("ls_lb" if top == "LS" else "lr_lb"), (parts[2], parts[4])
    return None
