"""Model: key parsing, 0.3 value decoding/encoding, validation messages, bitmaps, IPAM."""

from __future__ import annotations

import pytest

from tuplenet.model import (
    LNAT,
    LR,
    LRP,
    LS,
    LSP,
    LSR,
    Chassis,
    ModelError,
    decode,
    decode_kv,
    derive_mac,
    entity_key,
    first_free_ip,
    format_value,
    int_to_ip,
    ip_to_int,
    normalize_mac,
    parse_cidr,
    parse_key,
    parse_uint,
    parse_value,
    port_id,
    validate_name,
)
from tuplenet.model.roaring import EMPTY, decode_bitmap, encode_bitmap


@pytest.mark.parametrize("key,expected", [
    ("entity_view/LS/ls1", ("LS", ("ls1",))),
    ("entity_view/LR/lr1", ("LR", ("lr1",))),
    ("entity_view/LS/ls1/lsp/p1", ("lsp", ("ls1", "p1"))),
    ("entity_view/LR/lr1/lrp/p1", ("lrp", ("lr1", "p1"))),
    ("entity_view/LR/lr1/lsr/r1", ("lsr", ("lr1", "r1"))),
    ("entity_view/LR/lr1/lnat/n1", ("lnat", ("lr1", "n1"))),
    ("entity_view/chassis/hv1", ("chassis", ("hv1",))),
    ("entity_view/LS/ls1/lrp/p1", None),
    ("entity_view/LS/", None),
    ("entity_view/LS//lsp/p1", None),
    ("globals/version", None),
    ("ip_book/LS/ls1", None),
    ("entity_view/LR/lr1/lsr/r1/x", None),
    ("communicate/push/hv1/cmd/1", None),
])
def test_parse_key(key, expected):
    assert parse_key(key) == expected
    if expected:
        assert entity_key(*expected) == key


def test_parse_value_trims_and_keeps_unknown():
    assert parse_value(" ip = 10.0.0.1 , mac=aa ,bogus, ,x=a=b,") == {"ip": "10.0.0.1", "mac": "aa", "x": "a=b"}
    assert format_value([("a", "1"), ("b", "")]) == "a=1,b=" == format_value({"a": "1", "b": ""})


def test_decode_03_lsp_with_agent_order_and_unknown_field():
    v = "ip=10.0.0.2,mac=F2:01:0A:00:00:02,chassis=hv1,peer=x,future=42"
    lsp = decode("lsp", ("ls1", "p1"), v)
    assert lsp == LSP("ls1", "p1", "10.0.0.2", "f2:01:0a:00:00:02", "x", "hv1")
    assert lsp.extra == (("future", "42"),)
    # Rewritten in 0.3 Go order, unknown field preserved at the end.
    assert lsp.to_value() == "ip=10.0.0.2,mac=f2:01:0a:00:00:02,peer=x,chassis=hv1,future=42"
    assert lsp.key == "entity_view/LS/ls1/lsp/p1"


def test_decode_lrp_with_empty_peer_and_go_output():
    lrp = decode("lrp", ("lr1", "lr1_to_ls1"), "ip=10.0.0.1,prefix=24,mac=f2:01:0a:00:00:01,peer=")
    assert lrp.peer is None
    assert lrp.to_value() == "ip=10.0.0.1,prefix=24,mac=f2:01:0a:00:00:01,peer="


def test_all_kinds_roundtrip():
    objs = [LS("a", 1), LR("r", 2), LR("r2", 3, "hv1"), LSP("a", "p", "10.0.0.3", "f2:01:0a:00:00:03"),
            LRP("r", "rp", "10.0.0.1", 24, "f2:01:0a:00:00:01", "a_to_r"),
            LSR("r", "s", "0.0.0.0", 0, "10.0.0.254", "rp"), LNAT("r", "n", "10.0.0.0", 24, "snat", "1.2.3.4"),
            Chassis("hv1", "192.168.0.1", 1234)]
    for obj in objs:
        kind, ident = parse_key(obj.key)
        assert decode(kind, ident, obj.to_value()) == obj
        assert decode_kv(obj.key, obj.to_value()) == obj
    assert LR("r", 2).to_value() == "id=2"
    assert LR("r", 2, "hv1").to_value() == "id=2,chassis=hv1"


def test_same_port_name_in_two_switches_is_two_identities():
    a = LSP("ls1", "p1", "10.0.0.2", "f2:01:0a:00:00:02")
    b = LSP("ls2", "p1", "10.0.0.2", "f2:01:0a:00:00:02")
    assert a != b and a.key != b.key and len({a, b}) == 2


@pytest.mark.parametrize("kind,ident,value,reason", [
    ("LS", ("a",), "", "missing required field id"),
    ("LS", ("a",), "id=x", "bad id"),
    ("LS", ("a",), "id=0", "bad id"),
    ("LS", ("a",), "id=65536", "bad id"),
    ("lsp", ("a", "p"), "ip=10.0.0.1", "missing required field mac"),
    ("lsp", ("a", "p"), "ip=10.0.0.1,mac=zz:01:02:03:04:05", "invalid MAC address"),
    ("lsp", ("a", "p"), "ip=10.0.0,mac=f2:01:0a:00:00:01", "invalid IP"),
    ("lrp", ("r", "p"), "ip=10.0.0.1,prefix=33,mac=f2:01:0a:00:00:01", "bad prefix"),
    ("lsr", ("r", "s"), "ip=10.0.0.0,prefix=24,next_hop=x,outport=p", "bad next_hop"),
    ("lnat", ("r", "n"), "ip=10.0.0.0,prefix=24,xlate_type=foo,xlate_ip=1.1.1.1", "snat/dnat"),
    ("chassis", ("hv",), "ip=1.2.3.4,tick=abc", "bad tick"),
])
def test_decode_errors_name_the_key(kind, ident, value, reason):
    with pytest.raises(ModelError) as exc:
        decode(kind, ident, value)
    msg = str(exc.value)
    assert msg.startswith(entity_key(kind, ident) + ": ") and reason in msg and "\n" not in msg


def test_ip_and_mac_helpers():
    assert ip_to_int("10.0.0.1") == 0x0A000001 and int_to_ip(0x0A000001) == "10.0.0.1"
    for bad in ("10.0.0", "10.0.0.256", "01.0.0.1", "a.b.c.d", "::1", "", "1.2.3.4 "):
        with pytest.raises(ModelError, match="invalid IP"):
            ip_to_int(bad)
    assert port_id("10.1.2.3") == 0x0203
    assert derive_mac("10.0.0.1") == "f2:01:0a:00:00:01"
    assert normalize_mac("AA-BB-CC-DD-EE-FF") == "aa:bb:cc:dd:ee:ff"
    with pytest.raises(ModelError, match="invalid MAC address"):
        normalize_mac("aa:bb:cc:dd:ee")
    assert parse_cidr("10.0.0.1/24") == ("10.0.0.1", 24)
    for bad in ("10.0.0.1", "10.0.0.1/33", "x/24", "10.0.0.1/"):
        with pytest.raises(ModelError, match="invalid CIDR address"):
            parse_cidr(bad)


def test_validate_name_messages():
    assert validate_name("  ls1 ") == "ls1"
    with pytest.raises(ModelError, match='"/" is not allowed'):
        validate_name("a/b")
    with pytest.raises(ModelError, match="string provided contains only spaces"):
        validate_name("   ")
    with pytest.raises(ModelError, match='"," is not allowed'):
        validate_name("a,b")


def test_bitmap_matches_reference_encodings():
    assert encode_bitmap([]) == EMPTY == "OjAAAAAAAAA="
    assert encode_bitmap([1]) == "OjAAAAEAAAAAAAAAEAAAAAEA"
    assert encode_bitmap([111, 222, 333]) == "OjAAAAEAAAAAAAIAEAAAAG8A3gBNAQ=="
    assert decode_bitmap("OjAAAAEAAAAAAAIAEAAAAG8A3gBNAQ==") == {111, 222, 333}
    assert decode_bitmap("") == set() and decode_bitmap(EMPTY) == set()
    for members in (set(range(0, 65536)), {0, 65535, 70000, 0xFFFFFFFF}, set(range(1, 5000, 1))):
        assert decode_bitmap(encode_bitmap(members)) == members
    with pytest.raises(ModelError):
        decode_bitmap("not base64!")


def test_bitmap_decodes_run_containers():
    import base64
    import struct
    # cookie 12347 with 1 container (size-1 = 0), run flag set, key 0 card-1 = 9, one run 5..14.
    data = struct.pack("<HH", 12347, 0) + b"\x01" + struct.pack("<HH", 0, 9) + struct.pack("<HHH", 1, 5, 9)
    assert decode_bitmap(base64.b64encode(data).decode()) == set(range(5, 15))


def test_ipam_first_free_ip():
    used: set[int] = set()
    got = []
    for _ in range(13):
        ip = first_free_ip("172.16.1.1/28", used)
        used.add(port_id(ip))
        got.append(ip)
    assert got == [f"172.16.1.{i}" for i in range(2, 15)]
    with pytest.raises(ModelError, match="no free IP"):
        first_free_ip("172.16.1.1/28", used)
    assert first_free_ip("10.0.0.0/24", set(), gateway="10.0.0.1") == "10.0.0.2"
    assert first_free_ip("10.0.0.0/24", set(), gateway="10.0.0.5") == "10.0.0.1"
    # Larger than /16: full 32-bit arithmetic, no wrap.
    assert first_free_ip("10.0.0.0/15", {port_id("10.0.0.2")}) == "10.0.0.3"


def test_rewriting_chassis_keeps_unknown_fields():
    """What the agent does when it binds a port: set chassis=, keep everything else."""
    import dataclasses

    lsp = decode("lsp", ("ls1", "p1"), "ip=10.0.0.2,mac=f2:01:0a:00:00:02,vlan=7")
    moved = dataclasses.replace(lsp, chassis="hv2")
    assert moved.to_value() == "ip=10.0.0.2,mac=f2:01:0a:00:00:02,chassis=hv2,vlan=7"
    assert moved != lsp and moved.extra == lsp.extra


_MAC = "f2:01:0a:00:00:01"


@pytest.mark.parametrize("kind,ident,value", [
    ("LS", ("a",), "id=１_０"),  # fullwidth digits and "_": Python's int() reads 10, Go refuses
    ("LS", ("a",), "id=1_0"),
    ("LS", ("a",), "id=+10"),  # ParseUint takes no sign at all
    ("LS", ("a",), "id=-0"),
    ("LS", ("a",), "id=١٠"),  # Arabic-Indic digits
    ("LS", ("a",), "id=1 0"),
    ("LR", ("r",), "id=4294967297"),  # wraps to 1 in a 32-bit field: refused, not truncated
    ("LR", ("r",), "id=" + "9" * 5000),  # longer than Python's int() digit limit: still one clean error
    ("lrp", ("r", "p"), f"ip=10.0.0.1,prefix=+2_4,mac={_MAC}"),
    ("lrp", ("r", "p"), f"ip=10.0.0.1,prefix=２４,mac={_MAC}"),
    ("lsr", ("r", "s"), "ip=10.0.0.0,prefix=2_4,next_hop=10.0.0.1,outport=p"),
    ("lnat", ("r", "n"), "ip=10.0.0.0,prefix=-24,xlate_type=snat,xlate_ip=1.1.1.1"),
    ("chassis", ("hv",), "ip=1.2.3.4,tick=-5"),  # Go's field is uint64
    ("chassis", ("hv",), "ip=1.2.3.4,tick=1_000"),
    ("chassis", ("hv",), "ip=1.2.3.4,tick=18446744073709551616"),
    ("lsp", ("a", "p"), f"ip=１0.0.0.1,mac={_MAC}"),
    ("lsp", ("a", "p"), "ip=10.0.0.1,mac=ｆ2:01:0a:00:00:01"),
])
def test_numbers_parse_as_go_strconv_does(kind, ident, value):
    with pytest.raises(ModelError) as exc:
        decode(kind, ident, value)
    assert str(exc.value).startswith(entity_key(kind, ident) + ": ") and "\n" not in str(exc.value)


def test_numbers_go_accepts():
    assert decode("LS", ("a",), "id=007").id == 7  # leading zeros: Go accepts them
    assert decode("lrp", ("r", "p"), f"ip=10.0.0.1,prefix=024,mac={_MAC}").prefix == 24
    assert decode("chassis", ("hv",), "ip=1.2.3.4,tick=18446744073709551615").tick == 2**64 - 1
    assert parse_uint("0") == 0 and parse_uint("255", 8) == 255
    for bad in ("", "+1", "-1", "1_0", "٣", "0x10", " 1", "256"):
        with pytest.raises(ModelError):
            parse_uint(bad, 8)
    for bad in ("10.0.0.1/+24", "10.0.0.1/２４", "10.0.0.1/2_4", "10.0.0.1/-0", "１0.0.0.1/24"):
        with pytest.raises(ModelError, match="invalid CIDR address"):
            parse_cidr(bad)


def test_decode_errors_are_one_printable_line():
    """Keys and values come from etcd and end up in logs and tpctl's one-line errors (found by fuzzing)."""
    for kind, ident, value in (("LS", ("a\nb",), ""), ("lsp", ("s", "p"), "ip=1\n2,mac=x"),
                               ("chassis", ("h\x00",), "ip=1.2.3.4,tick=\x1b[31m")):
        with pytest.raises(ModelError) as exc:
            decode(kind, ident, value)
        assert str(exc.value).isprintable(), str(exc.value)
