"""Load balancers and their health verdicts (beyond 0.3).

Record: `entity_view/LS/<ls>/lb/<name>` (kind `ls_lb`) or `entity_view/LR/<lr>/lb/<name>` (kind `lr_lb`) =
`vip=<ip>,port=<n>,protocol=tcp|udp,backends=<ip>:<port>;<ip>:<port>...,affinity=<seconds, 0=off>,
check=none|tcp|http:<path>,interval=<s>,rise=<n>,fall=<n>` (defaults: protocol=tcp, affinity=0, check=none,
interval=5, rise=2, fall=2). A new sub-directory of a switch/router, so a 0.3 tree reads unchanged.

Health verdicts: `communicate/lb_health/<LS|LR>/<dp name>/<lb name>/<ip>:<port>` = `state=down,chassis=<id>`,
leased by the checking agent: a backend with such a key is out of service; absent means in service.
"""

from __future__ import annotations

from ..records import NamedTuple, dataclass, field
from .addr import ModelError, normalize_ip, parse_uint, validate_name
from .entities import ROOT, Extra, _Entity

PROTOCOLS = ("tcp", "udp")
CHECK_KINDS = ("none", "tcp", "http")
KINDS = {"LS": "ls_lb", "LR": "lr_lb"}  # datapath kind -> entity kind
DP_OF_KIND = {v: k for k, v in KINDS.items()}
MAX_BACKENDS = 1024
MAX_AFFINITY = 86400
MAX_INTERVAL = 3600
MAX_THRESHOLD = 100
MAX_PATH = 256
DEFAULTS = {"protocol": "tcp", "affinity": "0", "check": "none", "interval": "5", "rise": "2", "fall": "2"}
FIELDS = ("vip", "port", "protocol", "backends", "affinity", "check", "interval", "rise", "fall")

HEALTH_PREFIX = "communicate/lb_health/"
HEALTH_STATES = ("down",)


class Backend(NamedTuple):
    ip: str
    port: int

    def text(self) -> str:
        return f"{self.ip}:{self.port}"


def _bounded(text: str, what: str, lo: int, hi: int) -> int:
    try:
        n = parse_uint(text.strip(), 32)
    except ModelError:
        raise ModelError(f"{what} must be a number {lo}-{hi}: {text!r}") from None
    if not lo <= n <= hi:
        raise ModelError(f"{what} {n} out of range {lo}-{hi}")
    return n


def parse_port(text: str) -> int:
    return _bounded(text, "port", 1, 65535)


def parse_protocol(text: str) -> str:
    p = text.strip().lower()
    if p not in PROTOCOLS:
        raise ModelError(f"protocol must be tcp or udp: {text!r}")
    return p


def parse_backend(text: str) -> Backend:
    """`<ip>:<port>` -> Backend."""
    ip, sep, port = text.strip().rpartition(":")
    if not sep or not ip:
        raise ModelError(f"backend must be IP:PORT: {text!r}")
    return Backend(normalize_ip(ip), parse_port(port))


def parse_backends(text: str) -> tuple[Backend, ...]:
    """`ip:port;ip:port...` (empty: none) -> backends in the given order, no repeats."""
    out: list[Backend] = []
    for part in text.split(";"):
        if not part.strip():
            continue
        b = parse_backend(part)
        if b in out:
            raise ModelError(f"backend {b.text()} listed twice")
        out.append(b)
    if len(out) > MAX_BACKENDS:
        raise ModelError(f"at most {MAX_BACKENDS} backends")
    return tuple(out)


def parse_check(text: str) -> str:
    """`none`, `tcp` or `http:<path>` (path starts with '/', printable ASCII without spaces or ',' ';')."""
    t = text.strip()
    if t.lower() in ("none", "tcp"):
        return t.lower()
    kind, sep, path = t.partition(":")
    if kind.lower() != "http" or not sep:
        raise ModelError(f"check must be none, tcp or http:<path>: {text!r}")
    if (not path.startswith("/") or len(path) > MAX_PATH or not path.isascii() or not path.isprintable()
            or any(c.isspace() or c in ",;" for c in path)):
        raise ModelError(f"bad HTTP check path {path!r} (starts with /, no spaces, ',' or ';')")
    return f"http:{path}"


@dataclass(frozen=True, slots=True)
class LoadBalancer(_Entity):
    """A VIP:port of one protocol spread over backends, on a switch (dp_kind LS) or a router (LR)."""

    dp_kind: str
    dp: str
    name: str
    vip: str
    port: int
    protocol: str = "tcp"
    backends: tuple[Backend, ...] = ()
    affinity: int = 0
    check: str = "none"
    interval: int = 5
    rise: int = 2
    fall: int = 2
    extra: Extra = field(default=(), compare=False, repr=False)
    SHOW = ("vip", "port", "protocol", "backends", "affinity", "check", "interval", "rise", "fall")

    @property
    def kind(self) -> str:  # type: ignore[override]
        return KINDS[self.dp_kind]

    @property
    def parent_kind(self) -> str:  # type: ignore[override]
        return self.dp_kind

    @property
    def ident(self) -> tuple[str, ...]:
        return (self.dp, self.name)

    @property
    def check_kind(self) -> str:
        return self.check.partition(":")[0]

    @property
    def http_path(self) -> str:
        return self.check.partition(":")[2]

    def backends_text(self) -> str:
        return ";".join(b.text() for b in self.backends)

    def _pairs(self) -> list[tuple[str, str]]:
        return [("vip", self.vip), ("port", str(self.port)), ("protocol", self.protocol),
                ("backends", self.backends_text()), ("affinity", str(self.affinity)), ("check", self.check),
                ("interval", str(self.interval)), ("rise", str(self.rise)), ("fall", str(self.fall))]

    def show_fields(self) -> list[tuple[str, str]]:
        return self._pairs()

    def to_json(self) -> dict:
        out: dict = {"switch" if self.dp_kind == "LS" else "router": self.dp, "name": self.name, "vip": self.vip,
                     "port": self.port, "protocol": self.protocol,
                     "backends": [b.text() for b in self.backends], "affinity": self.affinity,
                     "check": self.check, "interval": self.interval, "rise": self.rise, "fall": self.fall}
        if self.extra:
            out["extra"] = dict(self.extra)
        return out


def decode_lb(kind: str, ident: tuple[str, ...], raw: dict[str, str]) -> LoadBalancer:
    """Validated LoadBalancer from a parsed record of kind ls_lb/lr_lb; ModelError('bad <field>: ...')."""
    if kind not in DP_OF_KIND or len(ident) != 2:
        raise ModelError(f"not a load balancer: {kind}")

    def get(f: str, conv):  # type: ignore[no-untyped-def]
        text = raw.get(f) or DEFAULTS.get(f)
        if text is None:
            raise ModelError(f"missing required field {f}")
        try:
            return conv(text)
        except ModelError as exc:
            raise ModelError(f"bad {f}: {exc}") from None

    return LoadBalancer(
        DP_OF_KIND[kind], ident[0], ident[1], get("vip", normalize_ip), get("port", parse_port),
        get("protocol", parse_protocol), get("backends", parse_backends) if raw.get("backends") else (),
        get("affinity", lambda t: _bounded(t, "affinity", 0, MAX_AFFINITY)), get("check", parse_check),
        get("interval", lambda t: _bounded(t, "interval", 1, MAX_INTERVAL)),
        get("rise", lambda t: _bounded(t, "rise", 1, MAX_THRESHOLD)),
        get("fall", lambda t: _bounded(t, "fall", 1, MAX_THRESHOLD)),
        extra=tuple((k, v) for k, v in raw.items() if k not in FIELDS))


# ---- health verdicts -------------------------------------------------------------------------------------


class HealthKey(NamedTuple):
    """Identity of one verdict: datapath kind (LS|LR), datapath name, LB name, backend."""

    dp_kind: str
    dp: str
    lb: str
    backend: Backend

    def key(self) -> str:
        """The relative etcd key."""
        return f"{HEALTH_PREFIX}{self.dp_kind}/{self.dp}/{self.lb}/{self.backend.text()}"


class HealthVerdict(NamedTuple):
    state: str
    chassis: str

    def to_value(self) -> str:
        return f"state={self.state},chassis={self.chassis}"


def health_key(dp_kind: str, dp: str, lb: str, backend: Backend) -> str:
    return HealthKey(dp_kind, dp, lb, backend).key()


def parse_health_key(key: str) -> HealthKey:
    """Relative key `communicate/lb_health/<LS|LR>/<dp>/<lb>/<ip>:<port>` -> HealthKey; else ModelError."""
    if not key.startswith(HEALTH_PREFIX):
        raise ModelError(f"not a health key: {key!r}")
    parts = key[len(HEALTH_PREFIX):].split("/")
    if len(parts) != 4 or parts[0] not in KINDS:
        raise ModelError(f"health key must be {HEALTH_PREFIX}<LS|LR>/<dp>/<lb>/<ip>:<port>: {key!r}")
    dp, lb = validate_name(parts[1]), validate_name(parts[2])
    if dp != parts[1] or lb != parts[2]:
        raise ModelError(f"bad name in health key {key!r}")
    return HealthKey(parts[0], dp, lb, parse_backend(parts[3]))


def decode_health_value(value: str) -> HealthVerdict:
    """`state=down,chassis=<id>` -> HealthVerdict; ModelError for anything else."""
    raw: dict[str, str] = {}
    for seg in value.split(","):
        k, sep, v = seg.partition("=")
        if sep and k.strip():
            raw[k.strip()] = v.strip()
    state = raw.get("state", "").lower()
    if state not in HEALTH_STATES:
        raise ModelError(f"health state must be down: {raw.get('state')!r}")
    chassis = raw.get("chassis", "")
    if not chassis or not chassis.isprintable():
        raise ModelError("health verdict needs chassis=<id>")
    return HealthVerdict(state, chassis)


LB_SLOT_BITS = 12


def lb_slot(kind: str, dp: str, name: str) -> int:
    """A stable 12-bit slot of a load balancer (crc32 of its identity): the agent numbers its select group
    by slot and rank within the slot, so ids never depend on the other load balancers' order."""
    from zlib import crc32

    return crc32(f"{kind}/{dp}/{name}".encode()) & ((1 << LB_SLOT_BITS) - 1)


def lb_key(dp_kind: str, dp: str, name: str) -> str:
    """Relative etcd key of a load balancer record."""
    return f"{ROOT}{dp_kind}/{dp}/lb/{name}"


__all__ = ["Backend", "HealthKey", "HealthVerdict", "LoadBalancer", "decode_health_value", "decode_lb",
           "health_key", "lb_key", "parse_backend", "parse_backends", "parse_check", "parse_health_key"]
