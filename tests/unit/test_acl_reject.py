"""ACL reject answers (agent/aclreject.py): exact TCP RST and ICMP port-unreachable bytes, and no answer to
what must not be answered (RST, ICMP errors, later fragments, non-IP, garbage)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz_settings import fuzz
from tuplenet.agent import tables as T
from tuplenet.agent.aclreject import AclReject, icmp_port_unreachable, reject_reply, tcp_reset
from tuplenet.agent.flow import Load, Resubmit, SetField
from tuplenet.sandbox import packets as P

A = ("f2:01:0a:00:00:02", "10.0.0.2")
B = ("f2:01:0a:00:00:03", "10.0.0.3")


def _tcp(flags: int, seq: int = 100, ack: int = 0, payload: bytes = b"") -> bytes:
    seg = P.tcp(40000, 22, seq=seq, ack=ack, flags=flags, src=A[1], dst=B[1]) + payload
    return P.eth(B[0], A[0], P.ETH_IP, P.ipv4(A[1], B[1], P.PROTO_TCP, seg))


def test_rst_for_a_syn_acknowledges_it() -> None:
    r = P.parse(tcp_reset(_tcp(P.TCP_SYN, seq=7000)))
    assert (r.eth_src, r.eth_dst, r.ip_src, r.ip_dst, r.sport, r.dport) == (B[0], A[0], B[1], A[1], 22, 40000)
    assert r.tcp_flags == P.TCP_RST | P.TCP_ACK and r.checksum_ok()
    assert int.from_bytes(r.l4[4:8], "big") == 0 and int.from_bytes(r.l4[8:12], "big") == 7001


def test_rst_for_a_segment_with_ack_takes_its_sequence_from_it() -> None:
    r = P.parse(tcp_reset(_tcp(P.TCP_ACK | P.TCP_PSH, seq=5, ack=9999, payload=b"data")))
    assert r.tcp_flags == P.TCP_RST and int.from_bytes(r.l4[4:8], "big") == 9999 and r.checksum_ok()


def test_port_unreachable_quotes_header_and_8_bytes() -> None:
    udp = P.eth(B[0], A[0], P.ETH_IP, P.ipv4(A[1], B[1], P.PROTO_UDP, P.udp(5000, 53, b"x" * 40, src=A[1],
                                                                               dst=B[1])))
    r = P.parse(icmp_port_unreachable(udp))
    assert (r.ip_src, r.ip_dst, r.icmp_type, r.icmp_code) == (B[1], A[1], 3, 3) and r.checksum_ok()
    assert r.l4[8:] == udp[14:14 + 28]
    ping = P.icmp_frame(A[0], B[0], A[1], B[1])
    assert P.parse(reject_reply(ping)).icmp_type == 3  # an echo request is answered


@pytest.mark.parametrize("frame", [
    _tcp(P.TCP_RST), _tcp(P.TCP_RST | P.TCP_ACK),
    P.icmp_frame(A[0], B[0], A[1], B[1], type=3),  # an ICMP error
    P.arp_request(A[0], A[1], B[1]), b"", b"\x00" * 13, b"\x00" * 60,
])
def test_never_answered(frame: bytes) -> None:
    assert reject_reply(frame) is None


def test_handler_injects_into_the_senders_switch_skipping_egress_acls() -> None:
    class Conn:
        sent: list = []

        def packet_out(self, data, actions):
            self.sent.append((data, actions))

    class Pin:
        data = _tcp(P.TCP_SYN)
        metadata = {"metadata": 5}

    conn = Conn()
    h = AclReject(conn)
    h.handle(Pin())
    data, actions = conn.sent[0]
    assert actions == (SetField("metadata", 5), Load(T.R_FLAGS, T.F_ACL_SKIP), Resubmit(T.LS_IN_LOOKUP))
    assert P.parse(data).tcp_flags == P.TCP_RST | P.TCP_ACK and h.replies == 1


@pytest.mark.fuzz
@fuzz
@given(frame=st.binary(max_size=80), proto=st.sampled_from([1, 6, 17, 47]), cut=st.integers(0, 80))
def test_any_bytes_give_a_valid_answer_or_none(frame: bytes, proto: int, cut: int) -> None:
    base = P.eth(B[0], A[0], P.ETH_IP, P.ipv4(A[1], B[1], proto, frame))[: 14 + 20 + cut]
    for f in (frame, base):
        out = reject_reply(f)
        if out is not None:
            r = P.parse(out)
            assert r.checksum_ok() and r.ip_dst == A[1]
