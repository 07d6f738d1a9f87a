"""OXM/NXM field encoding: match entries, field headers for actions, and metadata decoding.

An OXM header is class(16) | field(7) | hasmask(1) | length(8). Match entries and field headers are
cached by value: a pipeline repeats the same few thousand (field, value) pairs across 100k flows, and
a dict lookup is far cheaper than packing each one again.

tun_metadata0 is variable-length in OVS (up to 124 bytes); we always give it its TLV-mapped length,
8 bytes, in match entries (16 when masked), set-field TLVs and reg_load/reg_move/output_reg field
headers. OVS accepts all of these when the map is {class=0xffee,type=0,len=8} (verified against
ovs-ofctl's own encoding in tests/integration/test_openflow_codec.py); with no map it rejects them.
"""

from __future__ import annotations

import struct

from tuplenet.agent.flow import FIELDS, NXM_0, NXM_1, OXM_BASIC, M

OXM_PACKET_REGS = 0x8001  # OVS sends 64-bit xregs (pairs of 32-bit regs) in this class
OXM_EXPERIMENTER = 0xFFFF
_CACHE_LIMIT = 65_536  # entries per cache; when full it is cleared (hot values come right back)

_U32 = struct.Struct("!I")
_OFP_MATCH_HDR = struct.Struct("!HH")  # type OFPMT_OXM = 1, length (without padding)
OFPMT_OXM = 1
EMPTY_MATCH = _OFP_MATCH_HDR.pack(OFPMT_OXM, 4) + b"\0" * 4


def header(oxm_class: int, oxm_field: int, length: int, hasmask: bool = False) -> int:
    return (oxm_class << 16) | (oxm_field << 9) | (int(hasmask) << 8) | length


def field_header(name: str, hasmask: bool = False) -> int:
    """The 32-bit header naming `name` (length = its width, doubled when masked)."""
    spec = FIELDS[name]
    return header(spec.oxm_class, spec.oxm_field, spec.nbytes * (2 if hasmask else 1), hasmask)


def field_bits(name: str) -> int:
    """Width of `name` in bits (for sub-field checks)."""
    return FIELDS[name].nbytes * 8


def encode_set_tlv(name: str, value: int, mask: int | None = None) -> bytes:
    """An OXM TLV for set-field style actions (OFPAT_SET_FIELD, NXAST_REG_LOAD2)."""
    spec = FIELDS[name]
    cls, fld, n = spec.oxm_class, spec.oxm_field, spec.nbytes
    if not 0 <= value < (1 << (8 * n)):
        raise ValueError(f"{name}={value:#x} does not fit in {n} bytes")
    if mask is None:
        return _U32.pack(header(cls, fld, n)) + value.to_bytes(n, "big")
    return (_U32.pack(header(cls, fld, 2 * n, True)) + (value & mask).to_bytes(n, "big")
            + mask.to_bytes(n, "big"))


# name -> (exact header bytes, masked header bytes, width in bytes, all-ones value)
_MATCH_SPECS: dict[str, tuple[bytes, bytes, int, int]] = {
    s.text: (_U32.pack(header(s.oxm_class, s.oxm_field, s.nbytes)),
             _U32.pack(header(s.oxm_class, s.oxm_field, 2 * s.nbytes, True)),
             s.nbytes, (1 << (8 * s.nbytes)) - 1)
    for s in FIELDS.values()}
_PADS = [b"\0" * i for i in range(8)]
_entry_cache: dict[M, bytes] = {}
_match_cache: dict[tuple[M, ...], bytes] = {}


def encode_entry(m: M) -> bytes:
    """One match TLV: header, value (and mask). The value is masked as OVS would store it."""
    got = _entry_cache.get(m)
    if got is not None:
        return got
    try:
        hdr, hdr_masked, n, full = _MATCH_SPECS[m.field]
    except KeyError:
        raise ValueError(f"unknown match field {m.field}") from None
    value, mask = m.value, m.mask
    if not 0 <= value <= full:
        raise ValueError(f"{m.field}={value:#x} does not fit in {n} bytes")
    if mask is None or mask & full == full:
        out = hdr + value.to_bytes(n, "big")
    else:
        mask &= full
        out = hdr_masked + (value & mask).to_bytes(n, "big") + mask.to_bytes(n, "big")
    if len(_entry_cache) >= _CACHE_LIMIT:
        _entry_cache.clear()
    _entry_cache[m] = out
    return out


def encode_match(match: tuple[M, ...]) -> bytes:
    """A complete `struct ofp_match` (OXM type), padded to 8 bytes."""
    got = _match_cache.get(match)
    if got is not None:
        return got
    get = _entry_cache.get
    body = b"".join([get(m) or encode_entry(m) for m in match])
    length = 4 + len(body)
    got = _OFP_MATCH_HDR.pack(OFPMT_OXM, length) + body + _PADS[-length % 8]
    if len(_match_cache) >= _CACHE_LIMIT:
        _match_cache.clear()
    _match_cache[match] = got
    return got


# ------------------------------------------------------------------------------------- decoding

def _decode_names() -> dict[tuple[int, int], str]:
    """(class, field) -> name for everything OVS may report in packet-in metadata or dumps."""
    names = {(s.oxm_class, s.oxm_field): s.text for s in FIELDS.values()}
    names.update({
        (NXM_0, 0): "in_port",        # NXM_OF_IN_PORT (16-bit)
        (NXM_1, 16): "tun_id",        # NXM_NX_TUN_ID
        (NXM_1, 31): "tun_src",       # NXM_NX_TUN_IPV4_SRC
        (NXM_1, 32): "tun_dst",
        (NXM_1, 33): "pkt_mark",
        (NXM_1, 104): "tun_flags",
        (NXM_1, 107): "ct_mark",
        (OXM_BASIC, 0): "in_port",
        (OXM_BASIC, 1): "in_phy_port",
    })
    for i in range(1, 64):
        names.setdefault((NXM_1, 40 + i), f"tun_metadata{i}")
    return names


DECODE_NAMES = _decode_names()


def iter_entries(buf: bytes | memoryview, offset: int = 0, end: int | None = None):
    """Yield (class, field, hasmask, value_bytes, mask_bytes|None) for each TLV in buf[offset:end]."""
    end = len(buf) if end is None else end
    while offset + 4 <= end:
        (hdr,) = _U32.unpack_from(buf, offset)
        cls, fld, hasmask, length = hdr >> 16, (hdr >> 9) & 0x7F, bool(hdr & 0x100), hdr & 0xFF
        start = offset + 4
        if cls == OXM_EXPERIMENTER:  # 4-byte experimenter id follows the header, counted in length
            start += 4
            length -= 4
        body = bytes(buf[start:start + length])
        if hasmask:
            half = length // 2
            yield cls, fld, True, body[:half], body[half:]
        else:
            yield cls, fld, False, body, None
        offset = start + length


def decode_fields(buf: bytes | memoryview) -> dict[str, int]:
    """Decode a bare sequence of OXM/NXM entries into {field name: value}; xregs are split into regs."""
    out: dict[str, int] = {}
    for cls, fld, _masked, value, _mask in iter_entries(buf):
        v = int.from_bytes(value, "big")
        if cls == OXM_PACKET_REGS:
            out[f"reg{2 * fld}"] = v >> 32
            out[f"reg{2 * fld + 1}"] = v & 0xFFFFFFFF
            continue
        out[DECODE_NAMES.get((cls, fld), f"oxm_{cls:04x}_{fld}")] = v
    return out
