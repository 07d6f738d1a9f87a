"""Port mirrors: `entity_view/mirror/<name>` = `port=LS/LSP,direction=in|out|both,target=...` (beyond 0.3).

A new top-level kind, so a 0.3 tree (which has none) reads unchanged and 0.3 tools ignore the sub-key.
Direction is seen from the logical switch: `in` = frames the port sends into the switch, `out` = frames the
switch delivers to the port. Targets: `local:<ovs port>` (a port on br-int of the chassis holding the
mirrored port), `erspan:<ip>[:<session id>]` (ERSPAN v1 to a collector) or `geneve:<ip>[:<vni>]`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple

from .addr import ModelError, normalize_ip, parse_uint, validate_name
from .entities import Extra, _Entity

DIRECTIONS = ("in", "out", "both")
TARGET_KINDS = ("local", "erspan", "geneve")
MAX_ERSPAN_SESSION = 1023  # ERSPAN session id: 10 bits
MAX_VNI = (1 << 24) - 1
DEFAULT_ERSPAN_SESSION = 1
MAX_OVS_PORT_NAME = 64


class Target(NamedTuple):
    """Where copies go: kind 'local' (iface = OVS port name) or a tunnel (ip, key = session id / VNI)."""

    kind: str
    iface: str = ""
    ip: str = ""
    key: int = 0

    def text(self) -> str:
        if self.kind == "local":
            return f"local:{self.iface}"
        return f"{self.kind}:{self.ip}:{self.key}"


def parse_direction(text: str) -> str:
    d = text.strip().lower()
    if d not in DIRECTIONS:
        raise ModelError(f"direction must be in, out or both: {text!r}")
    return d


def _uint(text: str, top: int, what: str) -> int:
    n = parse_uint(text)
    if n > top:
        raise ModelError(f"{what} {n} out of range 0-{top}")
    return n


def parse_target(text: str) -> Target:
    """`local:<port>`, `erspan:<ip>[:<session id 0-1023>]` (default 1), `geneve:<ip>[:<vni>]` (default 0)."""
    kind, sep, rest = text.strip().partition(":")
    kind = kind.lower()
    if not sep or kind not in TARGET_KINDS:
        raise ModelError(f"target must be local:<port>, erspan:<ip>[:<session>] or geneve:<ip>[:<vni>]: {text!r}")
    if kind == "local":
        name = rest.strip()
        if (not name or len(name) > MAX_OVS_PORT_NAME or not name.isascii() or not name.isprintable()
                or any(c.isspace() for c in name) or "/" in name or "," in name):
            raise ModelError(f"invalid OVS port name {name!r} in target")
        return Target("local", iface=name)
    ip_text, sep, key_text = rest.partition(":")
    ip = normalize_ip(ip_text)
    if kind == "erspan":
        key = _uint(key_text.strip(), MAX_ERSPAN_SESSION, "ERSPAN session id") if sep else DEFAULT_ERSPAN_SESSION
    else:
        key = _uint(key_text.strip(), MAX_VNI, "VNI") if sep else 0
    return Target(kind, ip=ip, key=key)


def parse_port_ref(text: str) -> tuple[str, str]:
    """`LS/LSP` -> (switch, port), both valid names."""
    ls, sep, lsp = text.partition("/")
    if not sep:
        raise ModelError(f"port must be SWITCH/PORT: {text!r}")
    return validate_name(ls), validate_name(lsp)


@dataclass(frozen=True, slots=True)
class Mirror(_Entity):
    """Copies of one logical port's frames (by direction) to a target; applied by the chassis holding it."""

    name: str
    ls: str
    lsp: str
    direction: str
    target: Target
    extra: Extra = field(default=(), compare=False, repr=False)
    kind: ClassVar[str] = "mirror"
    SHOW: ClassVar[tuple[str, ...]] = ("port", "direction", "target_text")

    @property
    def ident(self) -> tuple[str, ...]:
        return (self.name,)

    @property
    def port(self) -> str:
        return f"{self.ls}/{self.lsp}"

    @property
    def target_text(self) -> str:
        return self.target.text()

    def _pairs(self) -> list[tuple[str, str]]:
        return [("port", self.port), ("direction", self.direction), ("target", self.target.text())]

    def show_fields(self) -> list[tuple[str, str]]:
        return [("port", self.port), ("direction", self.direction), ("target", self.target.text())]

    def to_json(self) -> dict:
        out: dict = {"name": self.name, "port": self.port, "switch": self.ls, "lsp": self.lsp,
                     "direction": self.direction, "target": self.target.text()}
        if self.extra:
            out["extra"] = dict(self.extra)
        return out


def decode_mirror(name: str, raw: dict[str, str]) -> Mirror:
    """Validated Mirror from a parsed record; ModelError('<field>: reason') otherwise."""
    def req(f: str) -> str:
        v = raw.get(f)
        if not v:
            raise ModelError(f"missing required field {f}")
        return v

    try:
        ls, lsp = parse_port_ref(req("port"))
    except ModelError as exc:
        raise ModelError(f"bad port: {exc}") from None
    try:
        direction = parse_direction(raw.get("direction") or "both")
    except ModelError as exc:
        raise ModelError(f"bad direction: {exc}") from None
    try:
        target = parse_target(req("target"))
    except ModelError as exc:
        raise ModelError(f"bad target: {exc}") from None
    extra = tuple((k, v) for k, v in raw.items() if k not in ("port", "direction", "target"))
    return Mirror(name, ls, lsp, direction, target, extra=extra)
