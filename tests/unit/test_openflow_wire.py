"""Byte-level checks of the OpenFlow 1.4 codec against layouts worked out by hand from the specs
(OpenFlow 1.4, Open vSwitch nicira-ext.h). The integration tests check the same bytes against OVS."""

from __future__ import annotations

import struct

import pytest

from tuplenet.agent.flow import (
    OFPP_CONTROLLER,
    BundleLoad,
    Controller,
    Ct,
    DecTtl,
    Flow,
    Load,
    M,
    Move,
    Nat,
    Output,
    OutputReg,
    Resubmit,
    SetField,
    ip_int,
    match,
)
from tuplenet.agent.openflow import codec, oxm
from tuplenet.agent.openflow.actions import encode_action, encode_instructions
from tuplenet.agent.openflow.errors import parse_error
from tuplenet.agent.openflow.handshake import check_hello


def h(s: str) -> bytes:
    return bytes.fromhex(s.replace(" ", ""))


# ------------------------------------------------------------------------------------------ messages

def test_session_messages() -> None:
    assert codec.hello(1) == h("05 00 0010 00000001  0001 0008 00000020")
    assert codec.set_config() == h("05 09 000c 00000000  0000 ffff")
    assert codec.set_packet_in_format(xid=2) == h("05 04 0014 00000002  00002320 00000010  00000002")
    assert codec.barrier(5) == h("05 14 0008 00000005")
    assert codec.echo_reply(b"ab", 3) == h("05 03 000a 00000003 6162")
    assert codec.tlv_table_request(4) == h("05 04 0010 00000004 00002320 00000019")


def test_flow_add_layout() -> None:
    f = Flow(10, 100, match(reg0=5), (Output(1),))
    got = codec.flow_add(f, 7)
    expect = (h("05 0e 0058 00000007") + struct.pack("!QQ", f.cookie, 0)
              + h("0a 00 0000 0000 0064 ffffffff ffffffff ffffffff 0000 0000")
              + h("0001 000c 00010004 00000005 00000000")                      # OXM match, padded
              + h("0004 0018 00000000  0000 0010 00000001 0000 000000000000"))  # apply-actions: output:1
    assert got == expect


def test_drop_flow_has_no_instruction() -> None:
    got = codec.flow_add(Flow(1, 2), 0)
    assert len(got) == 48 + 8 and got.endswith(oxm.EMPTY_MATCH)


def test_delete_by_cookie_and_strict() -> None:
    assert codec.flow_delete_by_cookie(0x7470000000000001, 9) == (
        h("05 0e 0038 00000009 7470000000000001 ffffffffffffffff ff 03 0000 0000 0000")
        + h("ffffffff ffffffff ffffffff 0000 0000 0001000400000000"))
    strict = codec.flow_delete_strict(Flow(3, 4, match(reg1=1), (Output(1),)), 1)
    assert strict[25] == codec.OFPFC_DELETE_STRICT and strict[24] == 3 and len(strict) == 48 + 16


def test_bundle_messages() -> None:
    open_ = codec.bundle_control(3, codec.OFPBCT_OPEN_REQUEST, xid=8)
    assert open_ == h("05 21 0010 00000008 00000003 0000 0003")
    reply = codec.parse_bundle_control(h("00000003 0005 0003"))
    assert reply == codec.BundleReply(3, codec.OFPBCT_COMMIT_REPLY, 3)
    inner = codec.flow_add(Flow(1, 1, (), (Output(2),)), 0x42)
    add = codec.bundle_add(3, inner)
    assert add[:16] == h("05 22") + struct.pack("!H", 16 + len(inner)) + h("00000042 00000003 0000 0003")
    assert add[16:] == inner


@pytest.mark.parametrize("flow", [
    Flow(0, 0), Flow(5, 65535, match(M("nw_dst", ip_int("10.0.0.0"), 0xFF000000), dl_type=0x800),
                     (DecTtl(), SetField("dl_dst", 1), Resubmit(9))),
    Flow(9, 9, match(tun_metadata0=1, reg15=2), (Controller(b"\x01\x02\x03", pause=True), Ct(commit=True))),
])
def test_bundle_add_flow_equals_wrapping_flow_add(flow: Flow) -> None:
    assert codec.bundle_add_flow(7, flow, 0x1234) == codec.bundle_add(7, codec.flow_add(flow, 0x1234))


def test_flow_stats_request_filters_on_our_tag() -> None:
    req = codec.flow_stats_request(0x7470 << 48, 0xFFFF << 48, xid=3)
    assert req == (h("05 12 0038 00000003 0001 0000 00000000 ff 000000 ffffffff ffffffff 00000000")
                   + h("7470000000000000 ffff000000000000 0001000400000000"))


def test_packet_out() -> None:
    msg = codec.packet_out(b"\xaa" * 14, (Output(2),), xid=1)
    assert msg == (h("05 0d 0036 00000001 ffffffff fffffffd 0010 000000000000")
                   + h("0000 0010 00000002 0000 000000000000") + b"\xaa" * 14)


def test_tlv_table_mod() -> None:
    assert codec.tlv_table_mod_add([codec.TlvMapping(0xFFEE, 0, 8, 0)], 2) == h(
        "05 04 0020 00000002 00002320 00000018  0000 000000000000  ffee 00 08 0000 0000")


# ------------------------------------------------------------------------------------------- actions

@pytest.mark.parametrize("action,expect", [
    (Output(1), "0000 0010 00000001 0000 000000000000"),
    (Output(OFPP_CONTROLLER), "0000 0010 fffffffd ffff 000000000000"),
    (Resubmit(20), "ffff 0010 00002320 000e fff8 14 000000"),
    (DecTtl(), "0018 0008 00000000"),
    (SetField("reg1", 5), "0019 0010 00010204 00000005 00000000"),
    (SetField("dl_dst", 0x525400000001), "0019 0010 80000606 525400000001 0000"),
    (SetField("in_port", 0), "0019 0010 00000002 0000 000000000000"),
    (Load("reg1", 3, 0, 16), "ffff 0018 00002320 0007 000f 00010204 0000000000000003"),
    (Load("reg1", 7), "0019 0010 00010204 00000007 00000000"),  # whole field: a set-field
    (Load("metadata", 1, 63, 1), "ffff 0018 00002320 0007 0fc0 80000408 0000000000000001"),
    (Move("reg0", "reg1", 0, 16, 16), "ffff 0018 00002320 0006 0010 0000 0010 00010004 00010204"),
    (Move("metadata", "tun_id"), "ffff 0018 00002320 0006 0040 0000 0000 80000408 80004c08"),
    (Move("tun_metadata0", "reg0", 8, 0, 16), "ffff 0018 00002320 0006 0010 0008 0000 00015008 00010004"),
    (OutputReg("reg15"), "ffff 0018 00002320 000f 001f 00011e04 ffff 000000000000"),
    (Controller(b"\xde\xad\xbe\xef", pause=True),
     "ffff 0020 00002320 0025 000000000000  0003 0008 deadbeef  0004 0004 00000000"),
    (Controller(b"\x01", max_len=128),
     "ffff 0020 00002320 0025 000000000000  0000 0006 0080 0000  0003 0005 01 000000"),
    (BundleLoad("symmetric_l4", (1, 2, 3)),
     "ffff 0028 00002320 000d 0001 0001 0000 00000002 0003 000f 00010804 00000000  0001 0002 0003 0000"),
    (Ct(), "ffff 0018 00002320 0023 0000 00000000 0000 ff 000000 0000"),
    (Ct(commit=True, zone=5, table=30, nat=Nat("src", ip_int("10.0.0.1"))),
     "ffff 0030 00002320 0023 0001 00000000 0005 1e 000000 0000"
     "  ffff 0018 00002320 0024 0000 0001 0001 0a000001 00000000"),
    (Ct(nat=Nat()), "ffff 0028 00002320 0023 0000 00000000 0000 ff 000000 0000"
                    "  ffff 0010 00002320 0024 0000 0000 0000"),
])
def test_action_bytes(action, expect: str) -> None:
    got = encode_action(action)
    assert got == h(expect)
    assert len(got) % 8 == 0 and struct.unpack_from("!H", got, 2)[0] == len(got)


def test_caches_never_confuse_equal_valued_actions_of_different_types() -> None:
    """Actions may be NamedTuples, where Output(3) == Resubmit(3)."""
    out, res = encode_instructions((Output(3),)), encode_instructions((Resubmit(3),))
    assert out != res and encode_instructions((Output(3),)) == out
    assert encode_action(Resubmit(3)) == res[8:] and encode_action(Output(3)) == out[8:]


@pytest.mark.parametrize("action", [
    Load("reg0", 1 << 32), Load("reg0", 4, 0, 2), Load("reg0", 1, 31, 2), Move("reg0", "metadata"),
    Move("reg0", "reg1", 20, 0, 16), Resubmit(255), SetField("reg0", 1 << 32), OutputReg("reg0", 16, 32),
    Output(-1), BundleLoad("eth_src", ()), BundleLoad("nope", (1,)),
])
def test_bad_actions_raise_before_sending(action) -> None:
    with pytest.raises((ValueError, KeyError)):
        encode_action(action)


# --------------------------------------------------------------------------------------------- match

def test_match_entries() -> None:
    assert oxm.encode_match(()) == h("0001 0004 00000000")
    assert oxm.encode_match(match(reg0=5)) == h("0001 000c 00010004 00000005 00000000")
    # host bits outside the mask are cleared, as OVS stores them; an all-ones mask is an exact match
    assert oxm.encode_entry(M("nw_dst", ip_int("10.0.0.5"), 0xFFFFFF00)) == h("80001908 0a000000 ffffff00")
    assert oxm.encode_entry(M("nw_dst", 1, 0xFFFFFFFF)) == h("80001804 00000001")
    assert oxm.encode_entry(M("tun_metadata0", 0x1122, 0xFFFF)) == h(
        "00015110 0000000000001122 000000000000ffff")
    assert oxm.encode_entry(M("in_port", 3)) == h("00000002 0003")
    with pytest.raises(ValueError):
        oxm.encode_entry(M("reg0", 1 << 32))
    with pytest.raises(ValueError):
        oxm.encode_entry(M("nosuch", 1))


# ------------------------------------------------------------------------------------------- parsing

def _prop(ptype: int, payload: bytes) -> bytes:
    raw = struct.pack("!HH", ptype, 4 + len(payload)) + payload
    return raw + b"\0" * (-len(raw) % 8)


def _packet_in2_body(frame: bytes, full_len: int | None = None) -> bytes:
    metadata = (h("00000002 0001")                      # NXM_OF_IN_PORT = 1
                + h("00010004 00000011")                # reg0
                + h("80010208 0000000100000002")        # xreg1 = reg2:reg3
                + h("80000408 0000000000000022")        # metadata
                + h("00015008 00000000aabbccdd")        # tun_metadata0
                + h("0001d204 00000021"))               # ct_state
    props = [(codec.NXPINT_PACKET, frame), (codec.NXPINT_TABLE_ID, b"\x07"),
             (codec.NXPINT_COOKIE, b"\0" * 4 + struct.pack("!Q", 0x7470ABCDEF012345)),
             (codec.NXPINT_REASON, b"\x01"), (codec.NXPINT_METADATA, metadata),
             (codec.NXPINT_USERDATA, b"\xde\xad"), (codec.NXPINT_CONTINUATION, b"\x00\x08\x00\x08opaque")]
    if full_len is not None:
        props.insert(1, (codec.NXPINT_FULL_LEN, struct.pack("!I", full_len)))
    return b"".join(_prop(t, p) for t, p in props)


def test_parse_packet_in2() -> None:
    pin = codec.parse_packet_in2(_packet_in2_body(b"\x01" * 60, full_len=1500))
    assert (pin.data, pin.total_len, pin.table_id, pin.reason) == (b"\x01" * 60, 1500, 7, 1)
    assert pin.cookie == 0x7470ABCDEF012345  # read past the property's 4-byte pad
    assert pin.userdata == b"\xde\xad" and pin.paused and pin.continuation == b"\x00\x08\x00\x08opaque"
    md = pin.metadata
    assert (md["in_port"], md["reg0"], md["reg2"], md["reg3"], md["metadata"], md["tun_metadata0"],
            md["ct_state"]) == (1, 0x11, 1, 2, 0x22, 0xAABBCCDD, 0x21)


def test_resume_sends_the_properties_back_with_a_new_packet() -> None:
    pin = codec.parse_packet_in2(_packet_in2_body(b"\x01" * 60, full_len=1500))
    msg = codec.resume(pin, b"\x02" * 42, xid=5)
    assert msg[:16] == h("05 04") + struct.pack("!H", len(msg)) + h("00000005 00002320 0000001c")
    back = codec.parse_packet_in2(msg[16:])
    assert back.data == b"\x02" * 42 and back.total_len == 42  # FULL_LEN dropped with the new packet
    assert (back.continuation, back.cookie, back.metadata, back.userdata) == (
        pin.continuation, pin.cookie, pin.metadata, pin.userdata)
    same = codec.parse_packet_in2(codec.resume(pin)[16:])
    assert same.props == pin.props
    with pytest.raises(ValueError):
        codec.resume(codec.parse_packet_in2(_prop(codec.NXPINT_PACKET, b"x")))


def test_flow_stats_reply_parsing() -> None:
    def entry(table: int, prio: int, cookie: int, packets: int) -> bytes:
        m = h("0001 000c 00010004 00000005 00000000")
        ins = encode_instructions((Output(1),))
        length = 48 + len(m) + len(ins)
        return (struct.pack("!HBxIIHHHHH2xQQQ", length, table, 1, 2, prio, 0, 0, 0, 0, cookie, packets, 10)
                + m + ins)

    body = h("0001 0001 00000000") + entry(3, 100, 0x7470000000000001, 5) + entry(4, 7, 0x1234, 0)
    assert codec.multipart_reply_info(body) == (codec.OFPMP_FLOW, codec.OFPMPF_REPLY_MORE)
    stats = list(codec.iter_flow_stats(body))
    assert [(s.table_id, s.priority, s.cookie, s.n_packets) for s in stats] == [
        (3, 100, 0x7470000000000001, 5), (4, 7, 0x1234, 0)]
    assert stats[0].match == h("00010004 00000005")
    assert stats[0].instructions == encode_instructions((Output(1),))
    assert list(codec.iter_flow_cookies(body)) == [(0x7470000000000001, 3, 100), (0x1234, 4, 7)]


def test_tlv_table_reply_parsing() -> None:
    body = h("00000100 0040 00000000000000000000  ffee 00 08 0000 0000  0102 03 04 0001 0000")
    assert codec.parse_tlv_table_reply(body) == [codec.TlvMapping(0xFFEE, 0, 8, 0),
                                                 codec.TlvMapping(0x0102, 3, 4, 1)]


def test_error_parsing() -> None:
    e = parse_error(9, h("0002 0004") + b"request")
    assert (e.name, e.xid, e.data) == ("OFPBAC_BAD_OUT_PORT", 9, b"request")
    assert parse_error(1, h("ffff 0014 00002320")).name == "NXTTMFC_ALREADY_MAPPED"
    assert parse_error(1, h("ffff 0025 00002320")).name == "NXFMFC_INVALID_TLV_FIELD"  # no TLV map yet
    assert parse_error(1, h("0011 000d")).name == "OFPBFC_MSG_FAILED"
    assert parse_error(1, h("0063 0003")).name == "99(code=3)"
    assert parse_error(1, h("ffff 0001 12345678")).name.startswith("EXPERIMENTER(")


def test_split_messages_keeps_partial_tail() -> None:
    buf = bytearray(codec.barrier(1) + codec.echo_request(b"xyz", 2) + codec.barrier(3)[:5])
    msgs, used = codec.split_messages(buf)
    assert [(m[1], m[2], m[3]) for m in msgs] == [(codec.OFPT_BARRIER_REQUEST, 1, b""),
                                                  (codec.OFPT_ECHO_REQUEST, 2, b"xyz")]
    assert used == 8 + 11
    with pytest.raises(ValueError):
        codec.split_messages(bytearray(h("05 00 0004 00000000")))


def test_hello_negotiation() -> None:
    check_hello(6, h("0001 0008 0000007e"))  # OVS: 1.0 .. 1.5
    check_hello(5, b"")
    with pytest.raises(Exception, match="1.4"):
        check_hello(6, h("0001 0008 00000012"))  # 1.0 and 1.3 only
    with pytest.raises(Exception, match="1.4"):
        check_hello(4, b"")
