"""OpenFlow 1.4 messages we send and receive, as pure functions over bytes (stdlib struct only).

We speak wire version 0x05 because it is the oldest version with native bundles (atomic apply) while
every Nicira extension we need (packet-in2, resume, TLV map, CT, bundle_load) works with it.
"""

from __future__ import annotations

import struct

from tuplenet.agent.flow import OFPP_CONTROLLER, Action, Flow

from ...records import dataclass, field
from . import oxm
from .actions import NX_VENDOR_ID, encode_actions, encode_instructions

OFP_VERSION = 0x05

OFPT_HELLO = 0
OFPT_ERROR = 1
OFPT_ECHO_REQUEST = 2
OFPT_ECHO_REPLY = 3
OFPT_EXPERIMENTER = 4
OFPT_FEATURES_REQUEST = 5
OFPT_SET_CONFIG = 9
OFPT_PACKET_IN = 10
OFPT_FLOW_REMOVED = 11
OFPT_PORT_STATUS = 12
OFPT_PACKET_OUT = 13
OFPT_FLOW_MOD = 14
OFPT_MULTIPART_REQUEST = 18
OFPT_MULTIPART_REPLY = 19
OFPT_BARRIER_REQUEST = 20
OFPT_BARRIER_REPLY = 21
OFPT_BUNDLE_CONTROL = 33
OFPT_BUNDLE_ADD_MESSAGE = 34

OFPFC_ADD = 0
OFPFC_DELETE = 3
OFPFC_DELETE_STRICT = 4
OFPTT_ALL = 0xFF
OFPP_ANY = 0xFFFFFFFF
OFPG_ANY = 0xFFFFFFFF
OFP_NO_BUFFER = 0xFFFFFFFF
OFPMP_FLOW = 1
OFPMPF_REPLY_MORE = 1
OFPHET_VERSIONBITMAP = 1

OFPBCT_OPEN_REQUEST = 0
OFPBCT_OPEN_REPLY = 1
OFPBCT_COMMIT_REQUEST = 4
OFPBCT_COMMIT_REPLY = 5
OFPBCT_DISCARD_REQUEST = 6
OFPBCT_DISCARD_REPLY = 7
OFPBF_ATOMIC = 1
OFPBF_ORDERED = 2

NXT_SET_PACKET_IN_FORMAT = 16
NXT_TLV_TABLE_MOD = 24
NXT_TLV_TABLE_REQUEST = 25
NXT_TLV_TABLE_REPLY = 26
NXT_RESUME = 28
NXT_PACKET_IN2 = 30
NXPIF_NXT_PACKET_IN2 = 2
NXTTMC_ADD = 0

NXPINT_PACKET = 0
NXPINT_FULL_LEN = 1
NXPINT_BUFFER_ID = 2
NXPINT_TABLE_ID = 3
NXPINT_COOKIE = 4
NXPINT_REASON = 5
NXPINT_METADATA = 6
NXPINT_USERDATA = 7
NXPINT_CONTINUATION = 8

HEADER = struct.Struct("!BBHI")
_NX_HDR = struct.Struct("!BBHIII")  # header + vendor + subtype
_FLOW_MOD = struct.Struct("!BBHIQQBBHHHIIIHH")  # header + ofp_flow_mod fields (48 bytes)
_BUNDLE_ADD = struct.Struct("!BBHIIHH")
_BUNDLE_CTRL = struct.Struct("!BBHIIHH")
_ADD_FLOW_PACK = struct.Struct("!BBHIIHH" + "BBHIQQBBHHHIIIHH").pack  # bundle add + flow_mod headers
_PACKET_OUT = struct.Struct("!BBHIIIH6x")
_MP_FLOW_REQ = struct.Struct("!BBHIHH4xB3xII4xQQ")
_FLOW_STATS = struct.Struct("!HBxIIHHHHH2xQQQ")  # 48 bytes then the match
_PROP = struct.Struct("!HH")
_U64 = struct.Struct("!Q")
_TLV_MAP = struct.Struct("!HBBH2x")
_ALL_ONES_64 = 0xFFFFFFFFFFFFFFFF


def _pad8(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 8)


def msg(mtype: int, body: bytes = b"", xid: int = 0) -> bytes:
    return HEADER.pack(OFP_VERSION, mtype, 8 + len(body), xid) + body


def nx_msg(subtype: int, body: bytes = b"", xid: int = 0) -> bytes:
    return _NX_HDR.pack(OFP_VERSION, OFPT_EXPERIMENTER, 16 + len(body), xid, NX_VENDOR_ID, subtype) + body


# ------------------------------------------------------------------------------ session messages

def hello(xid: int = 0) -> bytes:
    """HELLO offering exactly version 1.4 (bitmap element), so the switch cannot pick another."""
    return msg(OFPT_HELLO, struct.pack("!HHI", OFPHET_VERSIONBITMAP, 8, 1 << OFP_VERSION), xid)


def echo_request(data: bytes = b"", xid: int = 0) -> bytes:
    return msg(OFPT_ECHO_REQUEST, data, xid)


def echo_reply(data: bytes = b"", xid: int = 0) -> bytes:
    return msg(OFPT_ECHO_REPLY, data, xid)


def barrier(xid: int = 0) -> bytes:
    return msg(OFPT_BARRIER_REQUEST, b"", xid)


def set_config(miss_send_len: int = 0xFFFF, xid: int = 0) -> bytes:
    """miss_send_len must be non-zero or a service connection (br-int.mgmt) gets no packet-ins."""
    return msg(OFPT_SET_CONFIG, struct.pack("!HH", 0, miss_send_len), xid)


def set_packet_in_format(fmt: int = NXPIF_NXT_PACKET_IN2, xid: int = 0) -> bytes:
    """NXT_PACKET_IN2 is the only packet-in that carries controller(userdata=...) and continuations."""
    return nx_msg(NXT_SET_PACKET_IN_FORMAT, struct.pack("!I", fmt), xid)


# ------------------------------------------------------------------------------------ flow mods

def _flow_mod(command: int, cookie: int, cookie_mask: int, table: int, priority: int, match: bytes,
              instructions: bytes, xid: int) -> bytes:
    length = 48 + len(match) + len(instructions)
    return _FLOW_MOD.pack(OFP_VERSION, OFPT_FLOW_MOD, length, xid, cookie, cookie_mask, table, command,
                          0, 0, priority, OFP_NO_BUFFER, OFPP_ANY, OFPG_ANY, 0, 0) + match + instructions


def flow_add(flow: Flow, xid: int = 0) -> bytes:
    return _flow_mod(OFPFC_ADD, flow.cookie, 0, flow.table, flow.priority, oxm.encode_match(flow.match),
                     encode_instructions(flow.actions), xid)


def flow_delete_by_cookie(cookie: int, xid: int = 0) -> bytes:
    return _flow_mod(OFPFC_DELETE, cookie, _ALL_ONES_64, OFPTT_ALL, 0, oxm.EMPTY_MATCH, b"", xid)


def flow_delete_strict(flow: Flow, xid: int = 0) -> bytes:
    return _flow_mod(OFPFC_DELETE_STRICT, 0, 0, flow.table, flow.priority, oxm.encode_match(flow.match),
                     b"", xid)


# -------------------------------------------------------------------------------------- bundles

BUNDLE_FLAGS = OFPBF_ATOMIC | OFPBF_ORDERED


def bundle_control(bundle_id: int, ctype: int, flags: int = BUNDLE_FLAGS, xid: int = 0) -> bytes:
    return _BUNDLE_CTRL.pack(OFP_VERSION, OFPT_BUNDLE_CONTROL, 16, xid, bundle_id, ctype, flags)


def bundle_add(bundle_id: int, inner: bytes, flags: int = BUNDLE_FLAGS) -> bytes:
    """Wrap `inner` (its xid is reused: OpenFlow requires the outer and inner xids to be equal)."""
    (xid,) = struct.unpack_from("!I", inner, 4)
    head = _BUNDLE_ADD.pack(OFP_VERSION, OFPT_BUNDLE_ADD_MESSAGE, 16 + len(inner), xid, bundle_id, 0, flags)
    return head + inner


def bundle_add_flow(bundle_id: int, flow: Flow, xid: int, flags: int = BUNDLE_FLAGS) -> bytes:
    """bundle_add(flow_add(flow)) in one pack: this is the cold-start hot path."""
    match = oxm.encode_match(flow.match)
    ins = encode_instructions(flow.actions)
    inner_len = 48 + len(match) + len(ins)
    return _ADD_FLOW_PACK(OFP_VERSION, OFPT_BUNDLE_ADD_MESSAGE, 16 + inner_len, xid, bundle_id, 0, flags,
                          OFP_VERSION, OFPT_FLOW_MOD, inner_len, xid, flow.cookie, 0, flow.table, OFPFC_ADD,
                          0, 0, flow.priority, OFP_NO_BUFFER, OFPP_ANY, OFPG_ANY, 0, 0) + match + ins


@dataclass(frozen=True)
class BundleReply:
    bundle_id: int
    type: int
    flags: int


def parse_bundle_control(body: bytes) -> BundleReply:
    bundle_id, ctype, flags = struct.unpack_from("!IHH", body)
    return BundleReply(bundle_id, ctype, flags)


# ---------------------------------------------------------------------------------- flow stats

def flow_stats_request(cookie: int = 0, cookie_mask: int = 0, table: int = OFPTT_ALL, xid: int = 0) -> bytes:
    return _MP_FLOW_REQ.pack(OFP_VERSION, OFPT_MULTIPART_REQUEST, 56, xid, OFPMP_FLOW, 0, table, OFPP_ANY,
                             OFPG_ANY, cookie, cookie_mask) + oxm.EMPTY_MATCH


@dataclass(frozen=True, slots=True)
class FlowStats:
    table_id: int
    priority: int
    cookie: int
    n_packets: int
    n_bytes: int
    match: bytes  # raw OXM entries (without the ofp_match header and padding)
    instructions: bytes


def multipart_reply_info(body: bytes) -> tuple[int, int]:
    """(multipart type, flags) of an OFPT_MULTIPART_REPLY body; flags & OFPMPF_REPLY_MORE = more parts."""
    mtype, flags = struct.unpack_from("!HH", body)
    return mtype, flags


def iter_flow_stats(body: bytes | memoryview):
    """Yield FlowStats for each entry of one OFPMP_FLOW reply part (`body` after the 8-byte header)."""
    off, end = 8, len(body)
    while off + 48 <= end:
        (length, table_id, _dsec, _dnsec, priority, _idle, _hard, _flags, _imp, cookie, n_packets,
         n_bytes) = _FLOW_STATS.unpack_from(body, off)
        _mtype, mlen = struct.unpack_from("!HH", body, off + 48)
        ins_off = off + 48 + mlen + (-mlen % 8)
        yield FlowStats(table_id, priority, cookie, n_packets, n_bytes, bytes(body[off + 52:off + 48 + mlen]),
                        bytes(body[ins_off:off + length]))
        if length < 48:
            raise ValueError("bad flow stats entry length")
        off += length


def iter_flow_cookies(body: bytes | memoryview):
    """Yield (cookie, table_id, priority) only: the fast path for dump_cookies of 100k+ flows."""
    off, end, unpack = 8, len(body), _FLOW_STATS.unpack_from
    while off + 48 <= end:
        length, table_id, _s, _n, priority, _i, _h, _f, _m, cookie, _p, _b = unpack(body, off)
        yield cookie, table_id, priority
        if length < 48:
            raise ValueError("bad flow stats entry length")
        off += length


# -------------------------------------------------------------------------------------- TLV map

@dataclass(frozen=True)
class TlvMapping:
    option_class: int
    option_type: int
    option_len: int
    index: int


def tlv_table_mod_add(mappings: list[TlvMapping], xid: int = 0) -> bytes:
    body = struct.pack("!H6x", NXTTMC_ADD) + b"".join(
        _TLV_MAP.pack(m.option_class, m.option_type, m.option_len, m.index) for m in mappings)
    return nx_msg(NXT_TLV_TABLE_MOD, body, xid)


def tlv_table_request(xid: int = 0) -> bytes:
    return nx_msg(NXT_TLV_TABLE_REQUEST, b"", xid)


def parse_tlv_table_reply(body: bytes) -> list[TlvMapping]:
    """`body` follows the 16-byte Nicira header: max_option_space, max_fields, reserved, mappings."""
    return [TlvMapping(*_TLV_MAP.unpack_from(body, off)) for off in range(16, len(body) - 7, 8)]


# ------------------------------------------------------------------------------- packet in/out

def packet_out(data: bytes, actions: tuple[Action, ...], in_port: int = OFPP_CONTROLLER,
               xid: int = 0) -> bytes:
    acts = encode_actions(actions)
    return _PACKET_OUT.pack(OFP_VERSION, OFPT_PACKET_OUT, 24 + len(acts) + len(data), xid, OFP_NO_BUFFER,
                            in_port, len(acts)) + acts + data


@dataclass
class PacketIn:
    """A parsed NXT_PACKET_IN2. `props` keeps every property as received, for NXT_RESUME."""

    data: bytes
    total_len: int
    reason: int
    table_id: int
    cookie: int
    userdata: bytes
    metadata: dict[str, int]
    continuation: bytes | None
    buffer_id: int | None = None
    props: list[tuple[int, bytes]] = field(default_factory=list, repr=False)

    @property
    def paused(self) -> bool:
        return self.continuation is not None


def _iter_props(buf: bytes | memoryview, off: int = 0):
    end = len(buf)
    while off + 4 <= end:
        ptype, plen = _PROP.unpack_from(buf, off)
        if plen < 4 or off + plen > end:
            raise ValueError(f"bad property length {plen}")
        yield ptype, bytes(buf[off + 4:off + plen])
        off += plen + (-plen % 8)


def parse_packet_in2(body: bytes | memoryview) -> PacketIn:
    """`body` follows the 16-byte Nicira header."""
    props = list(_iter_props(body))
    pin = PacketIn(b"", 0, 0, 0, _ALL_ONES_64, b"", {}, None, props=props)
    total_len = None
    for ptype, payload in props:
        if ptype == NXPINT_PACKET:
            pin.data = payload
        elif ptype == NXPINT_FULL_LEN:
            (total_len,) = struct.unpack_from("!I", payload)
        elif ptype == NXPINT_BUFFER_ID:
            (pin.buffer_id,) = struct.unpack_from("!I", payload)
        elif ptype == NXPINT_TABLE_ID:
            pin.table_id = payload[0]
        elif ptype == NXPINT_COOKIE:  # 4 bytes of padding precede the 64-bit cookie
            (pin.cookie,) = _U64.unpack_from(payload, len(payload) - 8)
        elif ptype == NXPINT_REASON:
            pin.reason = payload[0]
        elif ptype == NXPINT_METADATA:
            pin.metadata = oxm.decode_fields(payload)
        elif ptype == NXPINT_USERDATA:
            pin.userdata = payload
        elif ptype == NXPINT_CONTINUATION:
            pin.continuation = payload
    pin.total_len = len(pin.data) if total_len is None else total_len
    return pin


def _encode_prop(ptype: int, payload: bytes) -> bytes:
    return _pad8(_PROP.pack(ptype, 4 + len(payload)) + payload)


def resume(pin: PacketIn, data: bytes | None = None, xid: int = 0) -> bytes:
    """NXT_RESUME: the packet-in's own properties sent back, with the packet replaced if `data` given."""
    if pin.continuation is None:
        raise ValueError("packet-in was not paused: nothing to resume")
    new = pin.data if data is None else data
    body = b"".join(_encode_prop(ptype, new if ptype == NXPINT_PACKET else payload)
                    for ptype, payload in pin.props
                    if not (ptype == NXPINT_FULL_LEN and data is not None))
    return nx_msg(NXT_RESUME, body, xid)


# ----------------------------------------------------------------------------------- port status

OFPPR_ADD, OFPPR_DELETE, OFPPR_MODIFY = 0, 1, 2
PORT_NAME_MAX = 14  # bytes: the 16-byte name field holds 15 and a NUL, and 15 may be a longer name truncated
OFPORT_MAX = 0xFEFF  # ovs-vswitchd's highest port number (OFPP_MAX and above are reserved)
_PORT_STATUS = struct.Struct("!B7xI4x6x2x16s")  # reason, pad, port_no, length + pad, hw_addr, pad, name


def parse_port_status(body: bytes) -> tuple[int, int, str] | None:
    """(reason, port number, name) of an OpenFlow 1.4/1.5 port-status body (after the header); None when it
    is not one to use: short, an unknown reason, a reserved number, a name that may be truncated or not text."""
    if len(body) < _PORT_STATUS.size:
        return None
    reason, port_no, raw = _PORT_STATUS.unpack_from(body)
    name = raw.split(b"\0", 1)[0]
    if reason > OFPPR_MODIFY or not 1 <= port_no <= OFPORT_MAX or not name or len(name) > PORT_NAME_MAX:
        return None
    try:
        return reason, port_no, name.decode("ascii")
    except UnicodeDecodeError:
        return None


# ------------------------------------------------------------------------------------- framing

def split_messages(buf: bytearray) -> tuple[list[tuple[int, int, int, bytes]], int]:
    """Complete messages at the start of `buf` as (version, type, xid, body); and bytes consumed."""
    out = []
    off, end = 0, len(buf)
    unpack = HEADER.unpack_from
    while off + 8 <= end:
        version, mtype, length, xid = unpack(buf, off)
        if length < 8:
            raise ValueError(f"bad OpenFlow message length {length}")
        if off + length > end:
            break
        out.append((version, mtype, xid, bytes(buf[off + 8:off + length])))
        off += length
    return out, off


def nx_subtype(body: bytes) -> tuple[int, int]:
    """(vendor, subtype) of an OFPT_EXPERIMENTER body."""
    vendor, subtype = struct.unpack_from("!II", body)
    return vendor, subtype
