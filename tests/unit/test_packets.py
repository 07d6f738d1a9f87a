"""Packet builders and parsers against known vectors (no OVS needed)."""

from __future__ import annotations

import struct

import pytest

from tuplenet.sandbox import packets as P


def ones_add(a: int, b: int) -> int:
    s = a + b
    return (s & 0xFFFF) + (s >> 16)


def test_mac_and_ip_helpers() -> None:
    assert P.mac_bytes("aa:bb:cc:00:01:02") == bytes.fromhex("aabbcc000102")
    assert P.mac_bytes("aa-bb-cc-00-01-02") == P.mac_bytes("aabbcc000102")
    assert P.mac_str(bytes.fromhex("0a0000c0a864ff")[:6]) == "0a:00:00:c0:a8:64"
    assert P.ip_bytes("192.168.100.2") == bytes([192, 168, 100, 2])
    assert P.ip_str(b"\x0a\x00\x00\x01") == "10.0.0.1"
    for bad in ("1.2.3", "1.2.3.256", "x.y.z.w"):
        with pytest.raises(ValueError):
            P.ip_bytes(bad)
    with pytest.raises(ValueError):
        P.mac_bytes("aa:bb")


def test_ip_checksum_known_header() -> None:
    # The classic worked example: 192.168.0.1 -> 192.168.0.199, UDP, checksum 0xb861.
    header = bytes.fromhex("450000730000400040110000c0a80001c0a800c7")
    assert P.ip_checksum(header) == 0xB861
    built = P.ipv4("192.168.0.1", "192.168.0.199", P.PROTO_UDP, b"\x00" * (0x73 - 20), frag=0x4000)
    assert built[:20].hex() == "45000073000040004011b861c0a80001c0a800c7"
    assert P.ip_checksum(built[:20]) == 0


def test_ping_frame_matches_0_3_layout() -> None:
    frame = P.icmp_frame("50:54:00:00:00:01", "50:54:00:00:00:02", "10.0.0.1", "10.0.0.2", ttl=64)
    assert len(frame) == 98
    assert frame[:14].hex() == "505400000002" "505400000001" "0800"
    # Hand-summed header: ~(0x4500+0x54+0x4001+0x0a00+0x1+0x0a00+0x2) = 0x66a7.
    assert frame[14:34].hex() == "4500005400000000400166a70a0000010a000002"
    assert frame[34:42].hex() == "080085105fbf0001"
    assert frame[42:] == bytes(range(1, 57))
    f = P.Frame.parse(frame)
    assert (f.icmp_type, f.icmp_code, f.icmp_id, f.icmp_seq) == (8, 0, 0x5FBF, 1)
    assert (f.ip_src, f.ip_dst, f.ip_ttl, f.ip_proto, f.ip_checksum) == (
        "10.0.0.1", "10.0.0.2", 64, 1, 0x66A7)
    assert f.checksum_ok()
    assert P.Frame.parse(frame.hex()).raw == frame


def test_ttl_decrement_is_rfc1624_incremental() -> None:
    # TTL 64->63 lowers the TTL/proto word by 0x0100, so the checksum rises by 0x0100 (one's complement).
    c64 = P.Frame.parse(P.icmp_frame("02:00:00:00:00:01", "02:00:00:00:00:02", "10.0.0.1", "10.0.1.2",
                                     ttl=64)).ip_checksum
    c63 = P.Frame.parse(P.icmp_frame("02:00:00:00:00:01", "02:00:00:00:00:02", "10.0.0.1", "10.0.1.2",
                                     ttl=63)).ip_checksum
    assert c64 is not None and c63 is not None
    assert c63 == ones_add(c64, 0x0100)


def test_explicit_checksums_are_used_verbatim() -> None:
    frame = P.icmp_frame("02:00:00:00:00:01", "02:00:00:00:00:02", "10.0.0.1", "10.0.0.2",
                         ip_csum=0x1234, icmp_csum=0xBEEF)
    f = P.Frame.parse(frame)
    assert (f.ip_checksum, f.icmp_checksum) == (0x1234, 0xBEEF)
    assert not f.checksum_ok()


def test_arp_request_and_reply_layout() -> None:
    sha, tha = "f0:00:00:00:00:01", "00:00:06:08:06:01"
    req = P.arp_request(sha, "10.10.1.2", "10.10.1.1", tha=P.BROADCAST)
    # 0.3's literal: ffffffffffff<sha>0806 0001 0800 0604 0001 <sha><spa> ffffffffffff <tpa>
    assert req.hex() == ("ffffffffffff" "f00000000001" "0806" "0001080006040001" "f00000000001" "0a0a0102"
                         "ffffffffffff" "0a0a0101")
    assert P.arp_request(sha, "10.10.1.2", "10.10.1.1")[32:38] == b"\x00" * 6
    rep = P.arp_reply(tha, "10.10.1.1", sha, "10.10.1.2")
    assert rep.hex() == ("f00000000001" "000006080601" "0806" "0001080006040002" "000006080601" "0a0a0101"
                         "f00000000001" "0a0a0102")
    f = P.Frame.parse(rep)
    assert (f.eth_type, f.arp_op, f.arp_sha, f.arp_spa, f.arp_tha, f.arp_tpa) == (
        P.ETH_ARP, P.ARP_REPLY, tha, "10.10.1.1", sha, "10.10.1.2")
    assert f.checksum_ok()


def test_udp_and_tcp_checksums() -> None:
    src, dst = "10.0.0.1", "10.0.0.2"
    seg = P.udp(1234, 53, b"hello", src, dst)
    frame = P.eth("02:00:00:00:00:02", "02:00:00:00:00:01", P.ETH_IP, P.ipv4(src, dst, P.PROTO_UDP, seg))
    f = P.Frame.parse(frame)
    assert (f.sport, f.dport, f.payload) == (1234, 53, b"hello")
    assert f.checksum_ok()
    assert P.udp(1234, 53, b"hello")[6:8] == b"\x00\x00"  # no pseudo header -> "no checksum"
    bad = bytearray(frame)
    bad[-1] ^= 0xFF
    assert not P.Frame.parse(bytes(bad)).checksum_ok()

    syn = P.tcp(40000, 80, seq=7, flags=P.TCP_SYN, src=src, dst=dst)
    frame = P.eth("02:00:00:00:00:02", "02:00:00:00:00:01", P.ETH_IP, P.ipv4(src, dst, P.PROTO_TCP, syn))
    f = P.Frame.parse(frame)
    assert (f.sport, f.dport, f.tcp_flags, f.payload) == (40000, 80, P.TCP_SYN, b"")
    assert f.checksum_ok()
    assert struct.unpack("!I", syn[4:8])[0] == 7


def test_vlan_tag_is_parsed() -> None:
    frame = P.eth(P.BROADCAST, "02:00:00:00:00:01", P.ETH_ARP,
                  P.arp(P.ARP_REQUEST, "02:00:00:00:00:01", "10.0.0.1", P.ZERO_MAC, "10.0.0.9"), vlan=42)
    f = P.Frame.parse(frame)
    assert (f.vlan, f.eth_type, f.arp_tpa) == (42, P.ETH_ARP, "10.0.0.9")


def test_geneve_round_trip() -> None:
    inner = P.icmp_frame("02:00:00:00:00:01", "02:00:00:00:00:02", "10.0.0.1", "10.0.0.2")
    gnv = P.geneve(5, inner, [(0xFFEE, 0, bytes.fromhex("1122334455667788"))])
    assert gnv[:8].hex() == "0300655800000500"  # 3 option words (4-byte header + 8 data), VNI 5
    outer = P.eth("0a:00:c0:a8:64:03", "0a:00:c0:a8:64:02", P.ETH_IP,
                  P.ipv4("192.168.100.2", "192.168.100.3", P.PROTO_UDP,
                         P.udp(50000, P.GENEVE_PORT, gnv, "192.168.100.2", "192.168.100.3")))
    f = P.Frame.parse(outer)
    assert f.geneve_vni == 5
    assert [(o.cls, o.type, o.data.hex()) for o in f.geneve_options] == [(0xFFEE, 0, "1122334455667788")]
    assert f.geneve_inner is not None and f.geneve_inner.raw == inner
    assert f.checksum_ok()


def test_short_frame_rejected() -> None:
    with pytest.raises(ValueError):
        P.Frame.parse(b"\x00" * 10)
