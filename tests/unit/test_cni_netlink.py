"""tpcni's rtnetlink link removal: the RTM_DELLINK request it builds, how it reads the kernel's answer (also any
bytes at all, fuzzed) and how links.Deletion reports the outcome. The kernel side runs in the CNI conformance
test (DEL leaves no host link behind)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz_settings import fuzz
from tuplenet.cni import links, netlink
from tuplenet.cni.errors import IO_FAILURE, CniError


def ack(seq: int, error: int, pid: int = 4242) -> bytes:
    """An NLMSG_ERROR answer as the kernel sends it: header, errno (negative), the request's header."""
    echoed = struct.pack("=IHHII", 32, netlink.RTM_DELLINK, 5, seq, 0)
    body = struct.pack("=i", -error) + echoed
    return struct.pack("=IHHII", 16 + len(body), netlink.NLMSG_ERROR, 0, seq, pid) + body


def test_request_names_the_link_and_asks_for_an_acknowledgement() -> None:
    req = netlink.dellink_request("tp0123456789a", 7)
    length, kind, flags, seq, pid = struct.unpack_from("=IHHII", req)
    assert (length, kind, flags, seq, pid) == (len(req), 17, netlink.NLM_F_REQUEST | netlink.NLM_F_ACK, 7, 0)
    family, _, index, _, _ = struct.unpack_from("=BxHiII", req, 16)
    assert family == 0 and index == 0  # by name, not by index
    alen, atype = struct.unpack_from("=HH", req, 32)
    assert atype == netlink.IFLA_IFNAME and req[36:36 + alen - 4] == b"tp0123456789a\0"
    assert len(req) % 4 == 0 and len(req) == 32 + ((alen + 3) & ~3)


@pytest.mark.parametrize("name", ["", "x" * 16, "a\0b", "é" * 8])
def test_names_the_kernel_cannot_hold_are_refused_before_sending(name: str) -> None:
    with pytest.raises(ValueError):
        netlink.dellink_request(name, 1)
    with pytest.raises(OSError) as info:
        netlink.delete_link(name)
    assert info.value.errno == 22


def test_the_acknowledgement_of_our_request_gives_its_errno() -> None:
    assert netlink.ack_errno(ack(3, 0), 3) == 0
    assert netlink.ack_errno(ack(3, netlink.ENODEV), 3) == netlink.ENODEV
    assert netlink.ack_errno(ack(2, 1), 3) is None  # another request's
    assert netlink.ack_errno(ack(2, 1) + ack(3, 1), 3) == 1
    assert netlink.ack_errno(b"", 3) is None


@pytest.mark.parametrize("data", [ack(3, 0)[:20], b"\x08\x00\x00\x00" + bytes(12), ack(2, 0) + b"\x01\x02",
                                  struct.pack("=IHHII", 16, netlink.NLMSG_ERROR, 0, 3, 0)])
def test_broken_answers_are_value_errors(data: bytes) -> None:
    with pytest.raises(ValueError):
        netlink.ack_errno(data, 3)


@fuzz
@given(st.one_of(st.binary(max_size=96), st.lists(st.tuples(st.integers(0, 3), st.integers(-200, 200)),
                                                   max_size=4).map(lambda xs: b"".join(ack(s, e) for s, e in xs))),
       st.integers(0, 3))
def test_fuzz_any_answer_is_an_errno_none_or_a_value_error(data: bytes, seq: int) -> None:
    try:
        got = netlink.ack_errno(data, seq)
    except ValueError:
        return
    assert got is None or isinstance(got, int)


def test_deletion_reports_refusals_as_cni_errors_and_absence_as_false(monkeypatch: pytest.MonkeyPatch) -> None:
    outcomes = {"gone": True, "absent": False, "denied": PermissionError(1, "Operation not permitted")}

    def fake(name: str) -> bool:
        out = outcomes[name]
        if isinstance(out, OSError):
            raise out
        return out

    monkeypatch.setattr(netlink, "delete_link", fake)
    assert links.Deletion("gone").wait() is True
    assert links.Deletion("absent").wait() is False
    with pytest.raises(CniError) as info:
        links.Deletion("denied").wait()
    assert info.value.code == IO_FAILURE and info.value.msg == "deleting denied: Operation not permitted"
