"""Decoding 0.3 `k=v,k=v` records into validated entities.

Lenient where 0.3's Go parser was (whitespace around keys/values is trimmed, unknown keys are kept),
strict where a wrong value would break the datapath (IP, MAC, prefix, id), with one-line reasons. Numbers
parse as 0.3's Go ParseUint does (ASCII digits only), never with Python's looser int().
"""

from __future__ import annotations

from collections.abc import Callable

from .addr import ModelError, normalize_ip, normalize_mac, parse_device_id, parse_prefix, parse_tick
from .entities import LNAT, LR, LRP, LS, LSP, LSR, Chassis, Entity, entity_key, parse_key

_ACL_KINDS = ("acl", "pg_acl", "address_set", "port_group")  # model/acl.py ACL_KINDS + SET_KINDS


def parse_value(value: str) -> dict[str, str]:
    """'k=v,k=v' -> ordered dict. Split on ',' then on the first '='; segments without '=' are ignored."""
    out: dict[str, str] = {}
    for seg in value.split(","):
        k, sep, v = seg.partition("=")
        if sep:
            k = k.strip()
            if k:
                out[k] = v.strip()
    return out


def parse_bool(text: str) -> bool:
    """Go's strconv.ParseBool spellings."""
    if text in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if text in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise ModelError(f"{text!r} is not a boolean (true or false)")


class _Fields:
    """Typed access to a record's fields that turns every problem into 'field: reason'."""

    __slots__ = ("raw", "known")

    def __init__(self, raw: dict[str, str], known: tuple[str, ...]) -> None:
        self.raw = raw
        self.known = known

    def req(self, name: str, conv: Callable[[str], object] = str) -> object:
        text = self.raw.get(name)
        if text is None or text == "":
            raise ModelError(f"missing required field {name}")
        return self._conv(name, text, conv)

    def opt(self, name: str) -> str | None:
        return self.raw.get(name) or None

    @staticmethod
    def _conv(name: str, text: str, conv: Callable[[str], object]) -> object:
        try:
            return conv(text)
        except ModelError as exc:
            raise ModelError(f"bad {name}: {exc}") from None

    def extra(self) -> tuple[tuple[str, str], ...]:
        return tuple((k, v) for k, v in self.raw.items() if k not in self.known)


def _xlate_type(text: str) -> str:
    t = text.lower()
    if t not in ("snat", "dnat"):
        raise ModelError(f"invalid translate type, must be snat/dnat: {text}")
    return t


_LSP_FIELDS = ("ip", "mac", "peer", "chassis", "requested_chassis", "port_security")
_LSP_KNOWN = frozenset(_LSP_FIELDS)


def _lsp_fast(ident: tuple[str, ...], raw: dict[str, str]) -> LSP | None:
    """The usual lsp record (valid, only known fields, port security on) without the per-field wrappers:
    nine records in ten at an agent's start are lsps. None: let the general path decide (and word the error)."""
    ip, mac = raw.get("ip"), raw.get("mac")
    if not ip or not mac or raw.get("port_security") not in (None, "", "true") or not raw.keys() <= _LSP_KNOWN:
        return None
    try:
        ip, mac = normalize_ip(ip), normalize_mac(mac)
    except ModelError:
        return None
    return LSP(ident[0], ident[1], ip, mac, raw.get("peer") or None, raw.get("chassis") or None,
               raw.get("requested_chassis") or None, True)


def _decode(kind: str, ident: tuple[str, ...], raw: dict[str, str]) -> Entity:
    if kind == "lsp" and (fast := _lsp_fast(ident, raw)) is not None:
        return fast
    if kind == "LS":
        f = _Fields(raw, ("id",))
        return LS(ident[0], f.req("id", parse_device_id), extra=f.extra())  # type: ignore[arg-type]
    if kind == "LR":
        f = _Fields(raw, ("id", "chassis"))
        return LR(ident[0], f.req("id", parse_device_id), f.opt("chassis"), extra=f.extra())  # type: ignore[arg-type]
    if kind == "lsp":
        f = _Fields(raw, _LSP_FIELDS)
        return LSP(ident[0], ident[1], f.req("ip", normalize_ip), f.req("mac", normalize_mac),  # type: ignore[arg-type]
                   f.opt("peer"), f.opt("chassis"), f.opt("requested_chassis"),
                   _Fields._conv("port_security", raw.get("port_security") or "true", parse_bool),  # type: ignore[arg-type]
                   extra=f.extra())
    if kind == "lrp":
        f = _Fields(raw, ("ip", "prefix", "mac", "peer"))
        return LRP(ident[0], ident[1], f.req("ip", normalize_ip), f.req("prefix", parse_prefix),  # type: ignore[arg-type]
                   f.req("mac", normalize_mac), f.opt("peer"), extra=f.extra())
    if kind == "lsr":
        f = _Fields(raw, ("ip", "prefix", "next_hop", "outport"))
        return LSR(ident[0], ident[1], f.req("ip", normalize_ip), f.req("prefix", parse_prefix),  # type: ignore[arg-type]
                   f.req("next_hop", normalize_ip), f.req("outport"), extra=f.extra())
    if kind == "lnat":
        f = _Fields(raw, ("ip", "prefix", "xlate_type", "xlate_ip"))
        return LNAT(ident[0], ident[1], f.req("ip", normalize_ip), f.req("prefix", parse_prefix),  # type: ignore[arg-type]
                    f.req("xlate_type", _xlate_type), f.req("xlate_ip", normalize_ip), extra=f.extra())
    if kind == "chassis":
        f = _Fields(raw, ("ip", "tick"))
        return Chassis(ident[0], f.req("ip", normalize_ip), f.req("tick", parse_tick), extra=f.extra())  # type: ignore[arg-type]
    # Kinds beyond 0.3 load their decoders on first use: every short-lived client (tpctl, tpcni) imports this
    # module, and most never meet a mirror, ACL or load balancer.
    if kind == "mirror":
        from .mirror import decode_mirror

        return decode_mirror(ident[0], raw)  # type: ignore[return-value]
    if kind in _ACL_KINDS:
        from .acl import decode_acl_kind

        return decode_acl_kind(kind, ident, raw)  # type: ignore[return-value]
    if kind in ("ls_lb", "lr_lb"):
        from .lb import decode_lb

        return decode_lb(kind, ident, raw)  # type: ignore[return-value]
    raise ModelError(f"unknown entity kind {kind!r}")


def decode(kind: str, ident: tuple[str, ...], value: str) -> Entity:
    """Validated entity from its kind, identity and value text; ModelError('<key>: <reason>') otherwise."""
    try:
        return _decode(kind, ident, parse_value(value))
    except ModelError as exc:
        raise ModelError(one_line(f"{entity_key(kind, ident)}: {exc}")) from None


def one_line(text: str) -> str:
    """`text` with control characters escaped: keys and values come from etcd and end up in logs."""
    return text if text.isprintable() else ascii(text)[1:-1]


def decode_kv(key: str, value: str) -> Entity | None:
    """Entity for a relative key and value; None if the key is not an entity key."""
    parsed = parse_key(key)
    if parsed is None:
        return None
    return decode(parsed[0], parsed[1], value)
