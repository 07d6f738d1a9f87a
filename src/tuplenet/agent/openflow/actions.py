"""Encoding of flow.py actions as OpenFlow 1.4 actions and Nicira (0x2320) experimenter actions.

Each action value encodes to the same bytes every time, so encodings are cached per action and per
action tuple: pipelines share a small vocabulary of action lists across very many flows.
"""

from __future__ import annotations

import struct

from tuplenet.agent.flow import (
    FIELDS,
    OFPP_CONTROLLER,
    OFPP_IN_PORT,
    Action,
    BundleLoad,
    Clone,
    Conjunction,
    Controller,
    Ct,
    CtClear,
    DecTtl,
    Load,
    Meter,
    Move,
    Multipath,
    Nat,
    Output,
    OutputReg,
    Resubmit,
    Sample,
    SetField,
    ToGroup,
)

from . import oxm

NX_VENDOR_ID = 0x00002320

OFPAT_OUTPUT = 0
OFPAT_GROUP = 22
OFPAT_DEC_NW_TTL = 24
OFPAT_SET_FIELD = 25
OFPAT_EXPERIMENTER = 0xFFFF

NXAST_REG_MOVE = 6
NXAST_REG_LOAD = 7
NXAST_MULTIPATH = 10
NXAST_BUNDLE_LOAD = 13
NXAST_RESUBMIT_TABLE = 14
NXAST_OUTPUT_REG = 15
NXAST_REG_LOAD2 = 33
NXAST_CT = 35
NXAST_CONJUNCTION = 34
NXAST_NAT = 36
NXAST_SAMPLE = 29
NXAST_CONTROLLER2 = 37
NXAST_CLONE = 42
NXAST_CT_CLEAR = 43

NXAC2PT_MAX_LEN = 0
NXAC2PT_USERDATA = 3
NXAC2PT_PAUSE = 4

NX_CT_F_COMMIT = 1
NX_CT_RECIRC_NONE = 0xFF
NX_NAT_F_SRC = 1
NX_NAT_F_DST = 2
NX_NAT_RANGE_IPV4_MIN = 1
NX_NAT_RANGE_PROTO_MIN = 16

OFPIT_APPLY_ACTIONS = 4
OFPIT_METER = 6
OFPM_MAX = 0xFFFF0000
OFPCML_NO_BUFFER = 0xFFFF
OFPP_IN_PORT_16 = 0xFFF8
NXM_OF_IN_PORT = 0x00000002  # bundle member type: OpenFlow port numbers

NX_BD_ALGORITHMS = {"active_backup": 0, "hrw": 1}
NX_HASH_FIELDS = {"eth_src": 0, "symmetric_l4": 1, "symmetric_l3l4": 2, "symmetric_l3l4+udp": 3,
                  "nw_src": 4, "nw_dst": 5, "symmetric_l3": 6}

_OUTPUT = struct.Struct("!HHIH6x")
_DEC_TTL = struct.Struct("!HH4x").pack(OFPAT_DEC_NW_TTL, 8)
_CT_CLEAR = struct.Struct("!HHIH6x").pack(OFPAT_EXPERIMENTER, 16, NX_VENDOR_ID, NXAST_CT_CLEAR)
_NX_HDR = struct.Struct("!HHIH")  # type, len, vendor, subtype (10 bytes; the body follows)
_RESUBMIT = struct.Struct("!HHIHHB3x")
_REG_MOVE = struct.Struct("!HHIHHHHII")
_REG_LOAD = struct.Struct("!HHIHHIQ")
_OUTPUT_REG = struct.Struct("!HHIHHIH6x")
_BUNDLE = struct.Struct("!HHIHHHHIHHI4x")
_CT = struct.Struct("!HHIHHIHB3xH")
_NAT = struct.Struct("!HHIH2xHH")
_PROP = struct.Struct("!HH")
_GROUP = struct.Struct("!HHI")
_MULTIPATH = struct.Struct("!HHIHHH2xHHI2xHI")
_SAMPLE = struct.Struct("!HHIHHIII")
_CLONE = struct.Struct("!HHIH6x")
_CONJUNCTION = struct.Struct("!HHIHBBI")
NX_MP_ALGORITHMS = {"modulo_n": 0, "hash_threshold": 1, "hrw": 2, "iter_hash": 3}
_INSTRUCTION = struct.Struct("!HH4x")
_METER_INSTRUCTION = struct.Struct("!HHI")
_CACHE_LIMIT = 65_536  # per cache; cleared when full


def _pad8(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 8)


def _ofs_nbits(ofs: int, nbits: int) -> int:
    if not (0 < nbits <= 64 and 0 <= ofs < 1024):
        raise ValueError(f"bad sub-field ofs={ofs} nbits={nbits}")
    return (ofs << 6) | (nbits - 1)


def _check_subfield(name: str, ofs: int, nbits: int) -> None:
    if ofs + nbits > oxm.field_bits(name):
        raise ValueError(f"{name}[{ofs}..{ofs + nbits - 1}] is past the end of the field")


def _prop(ptype: int, payload: bytes = b"") -> bytes:
    return _pad8(_PROP.pack(ptype, 4 + len(payload)) + payload)


def _output(a: Output) -> bytes:
    if not 0 <= a.port <= 0xFFFFFFFF:
        raise ValueError(f"bad output port {a.port}")
    return _OUTPUT.pack(OFPAT_OUTPUT, 16, a.port, OFPCML_NO_BUFFER if a.port == OFPP_CONTROLLER else 0)


def _output_reg(a: OutputReg) -> bytes:
    _check_subfield(a.field, a.ofs, a.nbits)
    return _OUTPUT_REG.pack(OFPAT_EXPERIMENTER, 24, NX_VENDOR_ID, NXAST_OUTPUT_REG,
                            _ofs_nbits(a.ofs, a.nbits), oxm.field_header(a.field), OFPCML_NO_BUFFER)


def _resubmit(a: Resubmit) -> bytes:
    if not 0 <= a.table < 255:
        raise ValueError(f"bad resubmit table {a.table}")
    return _RESUBMIT.pack(OFPAT_EXPERIMENTER, 16, NX_VENDOR_ID, NXAST_RESUBMIT_TABLE, OFPP_IN_PORT_16,
                          a.table)


def _set_field_prefixes() -> dict[str, tuple[bytes, int, bytes]]:
    """field -> (action header + OXM header, value width, trailing pad) for OFPAT_SET_FIELD."""
    out = {}
    for name, spec in FIELDS.items():
        n = spec.nbytes
        length = 8 + n + (-(8 + n) % 8)
        out[name] = (struct.pack("!HHI", OFPAT_SET_FIELD, length, oxm.field_header(name)), n,
                     b"\0" * (length - 8 - n))
    return out


_SET_FIELD = _set_field_prefixes()


def _set_field(a: SetField) -> bytes:
    prefix, n, pad = _SET_FIELD[a.field]
    if not 0 <= a.value < (1 << (8 * n)):
        raise ValueError(f"set_field {a.field}={a.value:#x} does not fit in {n} bytes")
    return prefix + a.value.to_bytes(n, "big") + pad


def _load(a: Load) -> bytes:
    width = oxm.field_bits(a.field)
    nbits = width - a.ofs if a.nbits is None else a.nbits
    _check_subfield(a.field, a.ofs, nbits)
    if a.value >> nbits:
        raise ValueError(f"load value {a.value:#x} does not fit in {nbits} bits")
    if nbits == width and a.ofs == 0:
        return _set_field(SetField(a.field, a.value))
    if nbits <= 64:
        return _REG_LOAD.pack(OFPAT_EXPERIMENTER, 24, NX_VENDOR_ID, NXAST_REG_LOAD,
                              _ofs_nbits(a.ofs, nbits), oxm.field_header(a.field), a.value)
    # Wider than 64 bits: a masked set-field TLV inside NXAST_REG_LOAD2.
    mask = ((1 << nbits) - 1) << a.ofs
    tlv = oxm.encode_set_tlv(a.field, a.value << a.ofs, mask)
    body = _NX_HDR.pack(OFPAT_EXPERIMENTER, 0, NX_VENDOR_ID, NXAST_REG_LOAD2) + tlv
    body = _pad8(body)
    return body[:2] + struct.pack("!H", len(body)) + body[4:]


def _move(a: Move) -> bytes:
    nbits = a.nbits
    if nbits is None:
        nbits = oxm.field_bits(a.src)
        if nbits != oxm.field_bits(a.dst) or a.src_ofs or a.dst_ofs:
            raise ValueError(f"move {a.src}[]->{a.dst}[] needs equal widths")
    _check_subfield(a.src, a.src_ofs, nbits)
    _check_subfield(a.dst, a.dst_ofs, nbits)
    return _REG_MOVE.pack(OFPAT_EXPERIMENTER, 24, NX_VENDOR_ID, NXAST_REG_MOVE, nbits, a.src_ofs, a.dst_ofs,
                          oxm.field_header(a.src), oxm.field_header(a.dst))


def _controller(a: Controller) -> bytes:
    props = b""
    if a.max_len != 0xFFFF:
        props += _prop(NXAC2PT_MAX_LEN, struct.pack("!H", a.max_len))
    if a.userdata:
        props += _prop(NXAC2PT_USERDATA, bytes(a.userdata))
    if a.pause:
        props += _prop(NXAC2PT_PAUSE)
    head = _NX_HDR.pack(OFPAT_EXPERIMENTER, 16 + len(props), NX_VENDOR_ID, NXAST_CONTROLLER2)
    return head + b"\0" * 6 + props


def _bundle_load(a: BundleLoad) -> bytes:
    if not a.members:
        raise ValueError("bundle_load needs at least one member")
    _check_subfield(a.dst, a.ofs, a.nbits)
    members = _pad8(struct.pack(f"!{len(a.members)}H", *a.members))
    return _BUNDLE.pack(OFPAT_EXPERIMENTER, 32 + len(members), NX_VENDOR_ID, NXAST_BUNDLE_LOAD,
                        NX_BD_ALGORITHMS[a.algorithm], NX_HASH_FIELDS[a.fields], a.basis, NXM_OF_IN_PORT,
                        len(a.members), _ofs_nbits(a.ofs, a.nbits), oxm.field_header(a.dst)) + members


def _nat(n: Nat) -> bytes:
    flags, present, ranges = 0, 0, b""
    if n.kind is not None:
        flags = {"src": NX_NAT_F_SRC, "dst": NX_NAT_F_DST}[n.kind]
        if n.ip:
            present, ranges = NX_NAT_RANGE_IPV4_MIN, struct.pack("!I", n.ip)
        if n.port:
            present, ranges = present | NX_NAT_RANGE_PROTO_MIN, ranges + struct.pack("!H", n.port)
    body = _pad8(_NAT.pack(OFPAT_EXPERIMENTER, 0, NX_VENDOR_ID, NXAST_NAT, flags, present) + ranges)
    return body[:2] + struct.pack("!H", len(body)) + body[4:]


def _ct(a: Ct) -> bytes:
    nested = (_nat(a.nat) if a.nat is not None else b"") + encode_actions(a.exec)
    table = NX_CT_RECIRC_NONE if a.table is None else a.table
    if not 0 <= table <= 0xFF:
        raise ValueError(f"bad ct table {a.table}")
    return _CT.pack(OFPAT_EXPERIMENTER, 24 + len(nested), NX_VENDOR_ID, NXAST_CT,
                    NX_CT_F_COMMIT if a.commit else 0, 0, a.zone or 0, table, 0) + nested


def _conjunction(a: Conjunction) -> bytes:
    if not 1 <= a.clause <= a.n_clauses <= 64 or a.n_clauses < 2 or not 0 <= a.conj_id <= 0xFFFFFFFF:
        raise ValueError(f"bad {a.text()}")
    return _CONJUNCTION.pack(OFPAT_EXPERIMENTER, 16, NX_VENDOR_ID, NXAST_CONJUNCTION, a.clause - 1, a.n_clauses,
                             a.conj_id)


def _group(a: ToGroup) -> bytes:
    if not 0 <= a.group_id <= 0xFFFFFF00:
        raise ValueError(f"bad group id {a.group_id}")
    return _GROUP.pack(OFPAT_GROUP, 8, a.group_id)


def _multipath(a: Multipath) -> bytes:
    _check_subfield(a.dst, a.ofs, a.nbits)
    if not 1 <= a.n_links <= 0x10000 or a.n_links > 1 << a.nbits:
        raise ValueError(f"multipath: {a.n_links} links do not fit {a.nbits} bits")
    return _MULTIPATH.pack(OFPAT_EXPERIMENTER, 32, NX_VENDOR_ID, NXAST_MULTIPATH, NX_HASH_FIELDS[a.fields], a.basis,
                           NX_MP_ALGORITHMS[a.algorithm], a.n_links - 1, a.arg, _ofs_nbits(a.ofs, a.nbits),
                           oxm.field_header(a.dst))


def _clone(a: Clone) -> bytes:
    nested = encode_actions(a.actions)
    return _CLONE.pack(OFPAT_EXPERIMENTER, 16 + len(nested), NX_VENDOR_ID, NXAST_CLONE) + nested


def _sample(a: Sample) -> bytes:
    if not 0 < a.probability <= 0xFFFF:
        raise ValueError(f"bad sample probability {a.probability}")
    return _SAMPLE.pack(OFPAT_EXPERIMENTER, 24, NX_VENDOR_ID, NXAST_SAMPLE, a.probability, a.collector_set_id,
                        a.obs_domain_id, a.obs_point_id)


def _meter_misplaced(a: Meter) -> bytes:
    raise ValueError(f"{a.text()} must be a flow's first action (it is an instruction in OpenFlow 1.4)")


def _meter_instruction(a: Meter) -> bytes:
    if not 0 < a.meter_id <= OFPM_MAX:
        raise ValueError(f"bad meter id {a.meter_id}")
    return _METER_INSTRUCTION.pack(OFPIT_METER, 8, a.meter_id)


_ENCODERS = {
    Output: _output, OutputReg: _output_reg, Resubmit: _resubmit, SetField: _set_field, Load: _load,
    Move: _move, DecTtl: lambda a: _DEC_TTL, Controller: _controller, BundleLoad: _bundle_load, Ct: _ct,
    Meter: _meter_misplaced, ToGroup: _group, Multipath: _multipath, Clone: _clone, Sample: _sample,
    Conjunction: _conjunction, CtClear: lambda a: _CT_CLEAR,
}

# Caches are keyed by type as well as value: actions may be NamedTuples, and Output(3) == Resubmit(3).
_action_cache: dict[type, dict[Action, bytes]] = {t: {} for t in _ENCODERS}
_list_cache: dict[tuple[Action, ...], tuple[tuple[type, ...], bytes]] = {}


def encode_action(a: Action) -> bytes:
    try:
        cache = _action_cache[type(a)]
    except KeyError:
        raise TypeError(f"cannot encode action {a!r}") from None
    got = cache.get(a)
    if got is None:
        got = _ENCODERS[type(a)](a)
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[a] = got
    return got


def encode_actions(actions: tuple[Action, ...]) -> bytes:
    """The encoded action list (no instruction header)."""
    return b"".join([encode_action(a) for a in actions])


def encode_instructions(actions: tuple[Action, ...]) -> bytes:
    """One APPLY_ACTIONS instruction holding `actions`; nothing at all for a drop flow. A leading Meter
    becomes an OFPIT_METER instruction ahead of it."""
    types = tuple(map(type, actions))
    got = _list_cache.get(actions)
    if got is not None and got[0] == types:
        return got[1]
    meter, rest = b"", actions
    if actions and types[0] is Meter:
        meter, rest = _meter_instruction(actions[0]), actions[1:]
    if not rest:
        enc = meter
    else:
        body = encode_actions(rest)
        enc = meter + _INSTRUCTION.pack(OFPIT_APPLY_ACTIONS, 8 + len(body)) + body
    if len(_list_cache) >= _CACHE_LIMIT:
        _list_cache.clear()
    _list_cache[actions] = (types, enc)
    return enc


def output_port_ok(port: int) -> bool:
    """Whether OVS can map `port` to its 16-bit port space (else BAD_OUT_PORT)."""
    return port < 0xFF00 or port >= 0xFFFFFF00 or port == OFPP_IN_PORT
