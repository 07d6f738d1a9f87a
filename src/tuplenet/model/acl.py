"""ACLs, address sets and port groups (beyond 0.3; docs/acl.md).

Records, all in the 0.3 `k=v,k=v` style, new sub-keys so a 0.3 tree reads unchanged:
- `entity_view/address_set/<name>` = `addresses=<ip|cidr> <ip|cidr> ...` (space separated; may be empty)
- `entity_view/port_group/<name>` = `ports=<ls>/<lsp> ...` (space separated; may be empty)
- `entity_view/LS/<ls>/acl/<rule>` (kind "acl") and `entity_view/port_group/<pg>/acl/<rule>` (kind "pg_acl")
  = `direction=in|out,priority=<0..32767>,action=allow|allow-related|drop|reject` plus optional match fields
  `src=`/`dst=` (`<ip|cidr>`, `$<address set>` or `@<port group>`), `proto=tcp|udp|icmp|<0..255>`,
  `sport=`/`dport=` (`<n>` or `<lo>-<hi>`, needs proto tcp or udp).
Direction is seen from the port, as OVN's from-lport/to-lport: `in` = frames a port sends into the switch,
`out` = frames the switch delivers to a port. Pure: decoding and validation only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple

from .addr import ModelError, int_to_ip, ip_to_int, parse_uint, validate_name
from .entities import Extra, _Entity, entity_key

ACTIONS = ("allow", "allow-related", "drop", "reject")
DIRECTIONS = ("in", "out")
MAX_PRIORITY = 32767
PROTOS = {"icmp": 1, "tcp": 6, "udp": 17}
PROTO_NAMES = {v: k for k, v in PROTOS.items()}
MAX_MEMBERS = 100_000  # one record; etcd's request limit comes first in practice
ACL_KINDS = ("acl", "pg_acl")
SET_KINDS = ("address_set", "port_group")


class Cidr(NamedTuple):
    """A network: masked address and prefix length."""

    net: int
    prefix: int

    def text(self) -> str:
        ip = int_to_ip(self.net)
        return ip if self.prefix == 32 else f"{ip}/{self.prefix}"


class Ref(NamedTuple):
    """A match value: an address set ("$"), a port group ("@") or a literal network ("")."""

    kind: str
    name: str = ""
    cidr: Cidr | None = None

    def text(self) -> str:
        return self.cidr.text() if self.cidr is not None else f"{self.kind}{self.name}"


def parse_net(text: str) -> Cidr:
    """`a.b.c.d` or `a.b.c.d/n`; host bits must be zero (a typo like 10.0.0.1/8 is refused, not masked)."""
    ip, sep, plen = text.strip().partition("/")
    try:
        value = ip_to_int(ip)
        prefix = 32 if not sep else parse_uint(plen, 8)
    except ModelError:
        raise ModelError(f"invalid address or network: {text!r}") from None
    if prefix > 32:
        raise ModelError(f"invalid prefix length in {text!r}")
    mask = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
    if value & ~mask & 0xFFFFFFFF:
        raise ModelError(f"host bits set in network {text!r}")
    return Cidr(value, prefix)


def parse_ref(text: str) -> Ref:
    t = text.strip()
    if t[:1] in ("$", "@"):
        return Ref(t[0], validate_name(t[1:]))
    return Ref("", cidr=parse_net(t))


def parse_proto(text: str) -> int:
    t = text.strip().lower()
    if t in PROTOS:
        return PROTOS[t]
    try:
        n = parse_uint(t, 8)
    except ModelError:
        raise ModelError(f"protocol must be tcp, udp, icmp or 0-255: {text!r}") from None
    return n


def parse_range(text: str) -> tuple[int, int]:
    """`<n>` or `<lo>-<hi>` (0-65535, lo <= hi)."""
    lo_t, sep, hi_t = text.strip().partition("-")
    try:
        lo = parse_uint(lo_t.strip(), 16)
        hi = parse_uint(hi_t.strip(), 16) if sep else lo
    except ModelError:
        raise ModelError(f"port must be N or LO-HI within 0-65535: {text!r}") from None
    if lo > hi:
        raise ModelError(f"port range {text!r} is empty (low above high)")
    return lo, hi


def _range_text(r: tuple[int, int]) -> str:
    return str(r[0]) if r[0] == r[1] else f"{r[0]}-{r[1]}"


def parse_priority(text: str) -> int:
    try:
        p = parse_uint(text.strip(), 16)
    except ModelError:
        raise ModelError(f"priority must be 0-{MAX_PRIORITY}: {text!r}") from None
    if p > MAX_PRIORITY:
        raise ModelError(f"priority must be 0-{MAX_PRIORITY}: {text!r}")
    return p


def _choice(text: str, allowed: tuple[str, ...], what: str) -> str:
    t = text.strip().lower()
    if t not in allowed:
        raise ModelError(f"{what} must be {', '.join(allowed[:-1])} or {allowed[-1]}: {text!r}")
    return t


def parse_port_member(text: str) -> tuple[str, str]:
    ls, sep, lsp = text.partition("/")
    if not sep:
        raise ModelError(f"port group member must be SWITCH/PORT: {text!r}")
    return validate_name(ls), validate_name(lsp)


def _members(text: str, conv, what: str) -> tuple:
    items = text.split()
    if len(items) > MAX_MEMBERS:
        raise ModelError(f"too many {what} ({len(items)} > {MAX_MEMBERS})")
    return tuple(sorted({conv(x) for x in items}))


@dataclass(frozen=True, slots=True)
class AddressSet(_Entity):
    """Named list of IPv4 addresses and networks that ACLs reference as `$name`."""

    name: str
    addresses: tuple[Cidr, ...] = ()
    extra: Extra = field(default=(), compare=False, repr=False)
    kind: ClassVar[str] = "address_set"
    SHOW: ClassVar[tuple[str, ...]] = ("addresses_text",)

    @property
    def ident(self) -> tuple[str, ...]:
        return (self.name,)

    @property
    def addresses_text(self) -> str:
        return " ".join(c.text() for c in self.addresses)

    def _pairs(self) -> list[tuple[str, str]]:
        return [("addresses", self.addresses_text)]

    def show_fields(self) -> list[tuple[str, str]]:
        return [("addresses", self.addresses_text)]

    def to_json(self) -> dict:
        return {"name": self.name, "addresses": [c.text() for c in self.addresses]}


@dataclass(frozen=True, slots=True)
class PortGroup(_Entity):
    """Named set of switch ports: ACLs attach to it and reference its ports' addresses as `@name`."""

    name: str
    ports: tuple[tuple[str, str], ...] = ()
    extra: Extra = field(default=(), compare=False, repr=False)
    kind: ClassVar[str] = "port_group"
    SHOW: ClassVar[tuple[str, ...]] = ("ports_text",)

    @property
    def ident(self) -> tuple[str, ...]:
        return (self.name,)

    @property
    def ports_text(self) -> str:
        return " ".join(f"{ls}/{lsp}" for ls, lsp in self.ports)

    def _pairs(self) -> list[tuple[str, str]]:
        return [("ports", self.ports_text)]

    def show_fields(self) -> list[tuple[str, str]]:
        return [("ports", self.ports_text)]

    def to_json(self) -> dict:
        return {"name": self.name, "ports": [f"{ls}/{lsp}" for ls, lsp in self.ports]}


@dataclass(frozen=True, slots=True)
class ACL(_Entity):
    """One rule on a switch (kind "acl", parent = switch) or on a port group (kind "pg_acl")."""

    parent: str
    name: str
    direction: str
    priority: int
    action: str
    src: Ref | None = None
    dst: Ref | None = None
    proto: int | None = None
    sport: tuple[int, int] | None = None
    dport: tuple[int, int] | None = None
    on_pg: bool = False
    extra: Extra = field(default=(), compare=False, repr=False)
    kind: ClassVar[str] = "acl"
    SHOW: ClassVar[tuple[str, ...]] = ("direction", "priority", "action", "match_text")

    @property
    def ident(self) -> tuple[str, ...]:
        return (self.parent, self.name)

    @property
    def key(self) -> str:
        return entity_key("pg_acl" if self.on_pg else "acl", self.ident)

    @property
    def fact_kind(self) -> str:
        return "pg_acl" if self.on_pg else "acl"

    def match_pairs(self) -> list[tuple[str, str]]:
        out = []
        if self.src is not None:
            out.append(("src", self.src.text()))
        if self.dst is not None:
            out.append(("dst", self.dst.text()))
        if self.proto is not None:
            out.append(("proto", PROTO_NAMES.get(self.proto, str(self.proto))))
        if self.sport is not None:
            out.append(("sport", _range_text(self.sport)))
        if self.dport is not None:
            out.append(("dport", _range_text(self.dport)))
        return out

    @property
    def match_text(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.match_pairs()) or "any"

    def _pairs(self) -> list[tuple[str, str]]:
        return [("direction", self.direction), ("priority", str(self.priority)), ("action", self.action),
                *self.match_pairs()]

    def show_fields(self) -> list[tuple[str, str]]:
        return [("direction", self.direction), ("priority", str(self.priority)), ("action", self.action),
                ("match", self.match_text)]

    def to_json(self) -> dict:
        out: dict = {("port_group" if self.on_pg else "switch"): self.parent, "name": self.name,
                     "direction": self.direction, "priority": self.priority, "action": self.action}
        out.update(dict(self.match_pairs()))
        return out


_ACL_FIELDS = ("direction", "priority", "action", "src", "dst", "proto", "sport", "dport")


def _field(raw: dict[str, str], name: str, conv):
    text = raw.get(name)
    if text is None or text.strip() == "":
        return None
    try:
        return conv(text)
    except ModelError as exc:
        raise ModelError(f"bad {name}: {exc}") from None


def make_acl(parent: str, name: str, raw: dict[str, str], on_pg: bool = False) -> ACL:
    """A validated rule from its fields (the record's, or tpctl's `k=v` arguments)."""
    for f in ("direction", "priority", "action"):
        if not (raw.get(f) or "").strip():
            raise ModelError(f"missing required field {f}")
    proto = _field(raw, "proto", parse_proto)
    sport = _field(raw, "sport", parse_range)
    dport = _field(raw, "dport", parse_range)
    if (sport is not None or dport is not None) and proto not in (6, 17):
        raise ModelError("sport/dport need proto=tcp or proto=udp")
    extra = tuple((k, v) for k, v in raw.items() if k not in _ACL_FIELDS)
    return ACL(parent, name, _field(raw, "direction", lambda t: _choice(t, DIRECTIONS, "direction")),
               _field(raw, "priority", parse_priority), _field(raw, "action", lambda t: _choice(t, ACTIONS, "action")),
               _field(raw, "src", parse_ref), _field(raw, "dst", parse_ref), proto, sport, dport, on_pg,
               extra=extra)


def decode_acl_kind(kind: str, ident: tuple[str, ...], raw: dict[str, str]) -> _Entity:
    """Validated entity of one of this module's kinds (codec entry point); ModelError otherwise."""
    if kind == "address_set":
        addrs = _field(raw, "addresses", lambda t: _members(t, parse_net, "addresses")) or ()
        return AddressSet(ident[0], addrs, extra=tuple((k, v) for k, v in raw.items() if k != "addresses"))
    if kind == "port_group":
        ports = _field(raw, "ports", lambda t: _members(t, parse_port_member, "ports")) or ()
        return PortGroup(ident[0], ports, extra=tuple((k, v) for k, v in raw.items() if k != "ports"))
    if kind in ACL_KINDS:
        return make_acl(ident[0], ident[1], raw, on_pg=kind == "pg_acl")
    raise ModelError(f"unknown entity kind {kind!r}")


__all__ = ["ACL", "ACL_KINDS", "ACTIONS", "AddressSet", "Cidr", "DIRECTIONS", "MAX_PRIORITY", "PortGroup", "Ref",
           "SET_KINDS", "decode_acl_kind", "make_acl", "parse_net", "parse_port_member", "parse_range", "parse_ref"]
