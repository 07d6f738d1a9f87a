"""The agent's flow vocabulary: immutable, hashable OpenFlow flows.

Pipeline stages build `Flow` objects; `ofctrl` diffs them; the OpenFlow codec encodes them to binary for the
persistent connection, and `to_text()` renders them in `ovs-ofctl` syntax for humans (`tuplenet check`,
logs). A flow's cookie is a hash of its content, marked with our tag in the top 16 bits: equal flows have
equal cookies on every host and every run (of one Python version; an upgrade re-installs flows once), so a restarted agent reconciles by cookie alone, and flows with
another tag (third parties) are never touched.
"""

from __future__ import annotations

import marshal
import socket

from ..records import NamedTuple

try:  # the C module hashlib.blake2b is: hashlib itself loads OpenSSL, a share of `tpctl trace`'s start
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - Python builds without it
    from hashlib import blake2b

COOKIE_TAG = 0x7470  # "tp"
COOKIE_TAG_SHIFT = 48
COOKIE_TAG_MASK = 0xFFFF << COOKIE_TAG_SHIFT

OFPP_IN_PORT = 0xFFFFFFF8
OFPP_CONTROLLER = 0xFFFFFFFD
OFPP_NONE_16 = 0xFFFF  # 16-bit "no port", as 0.3 used in reg4


class FieldSpec(NamedTuple):
    """How a match/set field is named in ovs-ofctl text and encoded as OXM/NXM."""

    text: str
    oxm_class: int
    oxm_field: int
    nbytes: int
    kind: str  # "int" | "mac" | "ip"


OXM_BASIC = 0x8000
NXM_0 = 0x0000
NXM_1 = 0x0001

_FIELDS: list[FieldSpec] = [
    FieldSpec("in_port", NXM_0, 0, 2, "int"),  # NXM_OF_IN_PORT: loadable (0 lets a packet hairpin)
    FieldSpec("metadata", OXM_BASIC, 2, 8, "int"),
    FieldSpec("dl_dst", OXM_BASIC, 3, 6, "mac"),
    FieldSpec("dl_src", OXM_BASIC, 4, 6, "mac"),
    FieldSpec("dl_type", OXM_BASIC, 5, 2, "int"),
    FieldSpec("nw_proto", OXM_BASIC, 10, 1, "int"),
    FieldSpec("nw_src", OXM_BASIC, 11, 4, "ip"),
    FieldSpec("nw_dst", OXM_BASIC, 12, 4, "ip"),
    FieldSpec("tcp_src", OXM_BASIC, 13, 2, "int"),
    FieldSpec("tcp_dst", OXM_BASIC, 14, 2, "int"),
    FieldSpec("udp_src", OXM_BASIC, 15, 2, "int"),
    FieldSpec("udp_dst", OXM_BASIC, 16, 2, "int"),
    FieldSpec("icmp_type", OXM_BASIC, 19, 1, "int"),
    FieldSpec("icmp_code", OXM_BASIC, 20, 1, "int"),
    FieldSpec("arp_op", OXM_BASIC, 21, 2, "int"),
    FieldSpec("arp_spa", OXM_BASIC, 22, 4, "ip"),
    FieldSpec("arp_tpa", OXM_BASIC, 23, 4, "ip"),
    FieldSpec("arp_sha", OXM_BASIC, 24, 6, "mac"),
    FieldSpec("arp_tha", OXM_BASIC, 25, 6, "mac"),
    FieldSpec("tun_id", OXM_BASIC, 38, 8, "int"),
    *[FieldSpec(f"reg{i}", NXM_1, i, 4, "int") for i in range(16)],
    FieldSpec("nw_ttl", NXM_1, 29, 1, "int"),
    FieldSpec("tun_src", NXM_1, 31, 4, "ip"),
    FieldSpec("tun_dst", NXM_1, 32, 4, "ip"),
    FieldSpec("tun_metadata0", NXM_1, 40, 8, "int"),  # mapped by the TLV map to Geneve opt 0xffee/0, 8 bytes
    FieldSpec("ct_state", NXM_1, 105, 4, "int"),
    FieldSpec("ct_zone", NXM_1, 106, 2, "int"),
    FieldSpec("ct_mark", NXM_1, 107, 4, "int"),  # bit 0: the ACL blocked the connection (pipeline/acl.py)
    FieldSpec("conj_id", NXM_1, 37, 4, "int"),  # which conjunction() matched (pipeline/acl.py)
]
FIELDS: dict[str, FieldSpec] = {f.text: f for f in _FIELDS}
_VARLEN = frozenset({"tun_metadata0"})  # variable-length in OVS: text needs explicit bit ranges
_ORDER: dict[str, int] = {f.text: i for i, f in enumerate(_FIELDS)}


def fmt_mac(v: int) -> str:
    return ":".join(f"{(v >> s) & 0xFF:02x}" for s in range(40, -1, -8))


def fmt_ip(v: int) -> str:
    return ".".join(str((v >> s) & 0xFF) for s in (24, 16, 8, 0))


def mac_int(mac: str) -> int:
    return int(mac.replace(":", ""), 16)


def ip_int(ip: str) -> int:
    return int.from_bytes(socket.inet_aton(ip), "big")


def _fmt_value(spec: FieldSpec, value: int, mask: int | None) -> str:
    if spec.kind == "mac":
        text = fmt_mac(value)
        return text if mask is None else f"{text}/{fmt_mac(mask)}"
    if spec.kind == "ip":
        text = fmt_ip(value)
        if mask is None:
            return text
        plen = bin(mask).count("1")
        if mask == ((1 << 32) - 1) ^ ((1 << (32 - plen)) - 1):
            return f"{text}/{plen}"
        return f"{text}/{fmt_ip(mask)}"
    text = hex(value) if spec.text not in ("in_port",) else str(value)
    return text if mask is None else f"{text}/{hex(mask)}"


class M(NamedTuple):
    """One match field: value, optional bit mask (None = exact)."""

    field: str
    value: int
    mask: int | None = None

    def text(self) -> str:
        return f"{self.field}={_fmt_value(FIELDS[self.field], self.value, self.mask)}"


_new_m = tuple.__new__


def _order_key(m: tuple) -> int:
    return _ORDER[m[0]]


def match(*items: M, **exact: int) -> tuple[M, ...]:
    """Canonical match tuple: fields sorted by registry order, exact fields given as keywords."""
    ms = [*items, *(_new_m(M, (k, v, None)) for k, v in exact.items())]
    try:
        ms.sort(key=_order_key)
    except KeyError as exc:
        raise ValueError(f"unknown match field {exc}") from None
    return tuple(ms)


def _sub(name: str, ofs: int, nbits: int | None) -> str:
    if nbits is None:
        return f"{name}[]"
    if nbits == 1:
        return f"{name}[{ofs}]"
    return f"{name}[{ofs}..{ofs + nbits - 1}]"


# ----------------------------------------------------------------------------------------------- actions


class Output(NamedTuple):
    port: int

    def text(self) -> str:
        return "in_port" if self.port == OFPP_IN_PORT else f"output:{self.port}"


class OutputReg(NamedTuple):
    """Output to the port number held in a register sub-field (NXAST_OUTPUT_REG)."""

    field: str
    ofs: int = 0
    nbits: int = 32

    def text(self) -> str:
        return f"output:{_sub(self.field, self.ofs, None if (self.ofs, self.nbits) == (0, 32) else self.nbits)}"


class Resubmit(NamedTuple):
    table: int

    def text(self) -> str:
        return f"resubmit(,{self.table})"


class SetField(NamedTuple):
    """Set a whole field (OFPAT_SET_FIELD)."""

    field: str
    value: int

    def text(self) -> str:
        return f"set_field:{_fmt_value(FIELDS[self.field], self.value, None)}->{self.field}"


class Load(NamedTuple):
    """Load an immediate into a sub-field (NXAST_REG_LOAD): bits [ofs, ofs+nbits) of `field`."""

    field: str
    value: int
    ofs: int = 0
    nbits: int | None = None  # None: the whole field

    def text(self) -> str:
        return f"load:{hex(self.value)}->{_sub(self.field, self.ofs, self.nbits)}"


class Move(NamedTuple):
    """Copy bits between fields (NXAST_REG_MOVE); nbits None means the whole (equal-width) fields."""

    src: str
    dst: str
    src_ofs: int = 0
    dst_ofs: int = 0
    nbits: int | None = None

    def text(self) -> str:
        if self.nbits is None:
            # ovs-ofctl reads `tun_metadata0[]` as the field's 992-bit maximum: spell out the mapped width.
            src = f"{self.src}[]" if self.src not in _VARLEN else _sub(self.src, 0, FIELDS[self.src].nbytes * 8)
            dst = f"{self.dst}[]" if self.dst not in _VARLEN else _sub(self.dst, 0, FIELDS[self.dst].nbytes * 8)
            return f"move:{src}->{dst}"
        return f"move:{_sub(self.src, self.src_ofs, self.nbits)}->{_sub(self.dst, self.dst_ofs, self.nbits)}"


class DecTtl(NamedTuple):
    def text(self) -> str:
        return "dec_ttl"


class Controller(NamedTuple):
    """Send to the agent (NXAST_CONTROLLER2) with `userdata`; `pause` keeps a continuation to resume."""

    userdata: bytes
    pause: bool = False
    max_len: int = 65535

    def text(self) -> str:
        parts = [f"userdata={'.'.join(f'{b:02x}' for b in self.userdata)}"] if self.userdata else []
        if self.max_len != 65535:
            parts.insert(0, f"max_len={self.max_len}")
        if self.pause:
            parts.append("pause")
        return f"controller({','.join(parts)})"


class Meter(NamedTuple):
    """Pass the packet through OpenFlow meter `meter_id` (an OFPIT_METER instruction): only as a flow's
    first action, and it rate-limits the whole flow, so give it flows whose job is the metered action."""

    meter_id: int

    def text(self) -> str:
        return f"meter:{self.meter_id}"


class BundleLoad(NamedTuple):
    """Pick a live member port by hash and load it into a register (NXAST_BUNDLE_LOAD)."""

    fields: str  # eth_src | symmetric_l4 | symmetric_l3l4 | symmetric_l3l4+udp | nw_src | nw_dst
    members: tuple[int, ...]
    dst: str = "reg4"
    ofs: int = 0
    nbits: int = 16
    algorithm: str = "hrw"
    basis: int = 0

    def text(self) -> str:
        members = ",".join(str(p) for p in self.members)
        return (f"bundle_load({self.fields},{self.basis},{self.algorithm},ofport,"
                f"{_sub(self.dst, self.ofs, self.nbits)},members:{members})")


class Nat(NamedTuple):
    kind: str | None = None  # "src" | "dst" | None (un-NAT using the connection's state)
    ip: int | None = None
    port: int | None = None  # the L4 port to translate to (load balancers: nat(dst=backend:port))

    def text(self) -> str:
        if self.kind is None:
            return "nat"
        return f"nat({self.kind}={fmt_ip(self.ip or 0)}" + (f":{self.port})" if self.port else ")")


class CtClear(NamedTuple):
    """Forget the packet's conntrack state (NXAST_CT_CLEAR): the next ct() looks the packet up afresh, as
    a second connection (the load balancer's hairpin SNAT after its DNAT, in the same zone)."""

    def text(self) -> str:
        return "ct_clear"


class Ct(NamedTuple):
    commit: bool = False
    table: int | None = None
    zone: int | None = None
    nat: Nat | None = None
    exec: tuple = ()  # loads/set_fields of ct_mark run on commit (exec(...))

    def text(self) -> str:
        parts = []
        if self.commit:
            parts.append("commit")
        if self.zone is not None:
            parts.append(f"zone={self.zone}")
        if self.table is not None:
            parts.append(f"table={self.table}")
        if self.nat is not None:
            parts.append(self.nat.text())
        if self.exec:
            parts.append(f"exec({','.join(a.text() for a in self.exec)})")
        return f"ct({','.join(parts)})"


class Conjunction(NamedTuple):
    """Clause `clause` (1-based) of `n_clauses` of conjunctive match `conj_id` (NXAST_CONJUNCTION): a flow
    whose only actions are these matches nothing by itself; a flow matching `conj_id=<id>` at the same
    priority matches once every clause has a matching flow, so N x M combinations cost N + M + 1 flows."""

    conj_id: int
    clause: int
    n_clauses: int

    def text(self) -> str:
        return f"conjunction({self.conj_id},{self.clause}/{self.n_clauses})"


class ToGroup(NamedTuple):
    """Pass the packet to OpenFlow group `group_id` (OFPAT_GROUP); the engine installs the group first."""

    group_id: int

    def text(self) -> str:
        return f"group:{self.group_id}"


class Multipath(NamedTuple):
    """Hash `fields` and choose one of `n_links` links by `algorithm`, into dst[ofs..ofs+nbits)
    (NXAST_MULTIPATH): ECMP without a group, the link index then selects a next hop."""

    fields: str  # as in BundleLoad
    n_links: int
    dst: str = "reg4"
    ofs: int = 0
    nbits: int = 16
    algorithm: str = "hash_threshold"  # modulo_n | hash_threshold | hrw | iter_hash
    basis: int = 0
    arg: int = 0

    def text(self) -> str:
        return (f"multipath({self.fields},{self.basis},{self.algorithm},{self.n_links},{self.arg},"
                f"{_sub(self.dst, self.ofs, self.nbits)})")


class Clone(NamedTuple):
    """Run `actions` on a copy of the packet; the original continues unchanged (NXAST_CLONE)."""

    actions: tuple

    def text(self) -> str:
        return f"clone({','.join(a.text() for a in self.actions)})"


class Sample(NamedTuple):
    """Sample 1 in 65535/`probability` packets to IPFIX collector set `collector_set_id` (NXAST_SAMPLE)."""

    probability: int
    collector_set_id: int = 0
    obs_domain_id: int = 0
    obs_point_id: int = 0

    def text(self) -> str:
        return (f"sample(probability={self.probability},collector_set_id={self.collector_set_id},"
                f"obs_domain_id={self.obs_domain_id},obs_point_id={self.obs_point_id})")


Action = (Output | OutputReg | Resubmit | SetField | Load | Move | DecTtl | Controller | Meter | BundleLoad | Ct
          | ToGroup | Multipath | Clone | Sample | Conjunction | CtClear)


# ------------------------------------------------------------------------------------------------- flows


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
