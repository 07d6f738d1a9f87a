"""Flow actions: one immutable named tuple per OpenFlow/Nicira action, each rendering its ovs-ofctl text.

The OpenFlow codec encodes them (openflow/codec.py); flow.py re-exports them.
"""

from __future__ import annotations

from ..records import NamedTuple
from .flow_fields import _VARLEN, FIELDS, _fmt_value, _sub, fmt_ip

OFPP_IN_PORT = 0xFFFFFFF8
OFPP_CONTROLLER = 0xFFFFFFFD
OFPP_NONE_16 = 0xFFFF  # 16-bit "no port", as 0.3 used in reg4


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


__all__ = ["OFPP_CONTROLLER", "OFPP_IN_PORT", "OFPP_NONE_16", "Action", "BundleLoad", "Clone", "Conjunction",
           "Controller", "Ct", "CtClear", "DecTtl", "Load", "Meter", "Move", "Multipath", "Nat", "Output",
           "OutputReg", "Resubmit", "Sample", "SetField", "ToGroup"]
