"""Fuzz: whatever an operator types into `tpctl trace --simulate` (options, addresses, a hex frame) ends
in a trace or a clean one-line error; and whatever packet enters the interpreter, the walk finishes with
an outcome and never raises. Pure: the topology is the tutorial's, no etcd."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from topo_helpers import tutorial_facts

from fuzz_settings import fuzz
from tuplenet.cli import tpctl
from tuplenet.cli.trace import request_of
from tuplenet.trace import packet as P
from tuplenet.trace.fabric import Fabric, Model
from tuplenet.trace.packet import WIDTH, TraceError, decode_frame
from tuplenet.trace.report import document, to_text
from tuplenet.trace.request import build

MODEL = Model(tutorial_facts())
FABRIC = Fabric(MODEL)
PARSER = tpctl.build_parser(only_trace=True)

OPTIONS = ["--simulate", "-s", "--src-port", "--dst-ip", "--dst-mac", "--src-ip", "--src-mac", "--proto", "--ttl",
           "--sport", "--dport", "--icmp-type", "--frame", "--header", "--brief", "-j", "--json", "--", "-x"]
VALUES = ["LS-A/vm1", "vm1", "vm3", "LS-B/vm3", "LS-A/vm2", "LS-A/LS-A_to_LR-central", "LS-A/", "/vm1", "nope",
          "10.10.1.3", "10.10.2.2", "10.10.1.1", "8.8.8.8", "0.0.0.0", "255.255.255.255", "10.10.1", "1.2.3.4.5",
          "f2:01:0a:0a:01:03", "F2-01-0A-0A-01-01", "ff:ff:ff:ff:ff:ff", "f2:01", "icmp", "TCP", "udp", "arp", "gre",
          "0", "1", "64", "255", "256", "-1", "65535", "65536", "0x10", "1e3", "", " ", "a\nb", "\u00e9", "x" * 200,
          "f201" * 20, "0x" + "ab" * 14, "zz", "abc"]
tokens = st.one_of(st.sampled_from(OPTIONS + VALUES), st.text("-./:0123456789abcdefsx \n\u00e9", max_size=8))
frames = st.one_of(st.binary(max_size=80).map(bytes.hex), st.text(max_size=60),
                   st.binary(min_size=14, max_size=80).map(lambda b: " ".join(f"{x:02X}" for x in b)))


def one_line(message: str) -> None:
    assert message and "\n" not in message and "Traceback" not in message, repr(message)


def trace_cli(args: list[str], render: bool = True) -> None:
    """What tpctl does between parsing and etcd, with the model given."""
    try:
        opts = PARSER.parse_args(["trace", *args])
        req = request_of(opts)
        ls, port, pkt = build(MODEL.facts, req)
        t = FABRIC.trace(ls, port, pkt)
        if not render:
            assert t.outcomes
            return
        doc = document(FABRIC, t)
    except tpctl.UsageError as exc:  # argparse's words; tpctl prints them on one line (tpctl._fail)
        assert str(exc).strip()
        return
    except TraceError as exc:
        one_line(str(exc))
        return
    assert doc["outcomes"] and doc["result"]
    to_text(doc)


@pytest.mark.fuzz
@fuzz
@given(st.lists(tokens, max_size=5))
def test_trace_arguments_give_a_trace_or_one_line(args: list[str]) -> None:
    if any(a.startswith("-") and "--help".startswith(a) and len(a) > 1 for a in args):
        return  # --help, -h and their abbreviations print help and exit, as they should
    trace_cli(["--simulate", *args])


@pytest.mark.fuzz
@fuzz
@given(st.sampled_from(["LS-A/vm1", "vm3"]), st.sampled_from(["10.10.1.3", "10.10.2.2", "8.8.8.8", "10.10.2.1"]),
       st.sampled_from(["icmp", "tcp", "udp", "arp"]), st.integers(-5, 300), st.integers(-5, 70000))
def test_address_requests_trace_or_fail_in_one_line(src: str, dst: str, proto: str, ttl: int, port: int) -> None:
    trace_cli(["-s", src, "--dst-ip", dst, "--proto", proto, "--ttl", str(ttl), "--dport", str(port)], render=False)


@pytest.mark.fuzz
@fuzz
@given(frames)
def test_hex_frames_decode_or_fail_in_one_line(text: str) -> None:
    try:
        pkt = decode_frame(text)
    except TraceError as exc:
        one_line(str(exc))
        return
    assert set(pkt) == set(WIDTH)
    for name, value in pkt.items():
        assert 0 <= value < 1 << WIDTH[name], name


@pytest.mark.fuzz
@fuzz
@given(st.binary(min_size=14, max_size=120), st.sampled_from(["LS-A/vm1", "LS-B/vm3"]))
def test_any_frame_from_a_port_walks_to_an_outcome(frame: bytes, src: str) -> None:
    ls, port = src.split("/")
    t = FABRIC.trace(ls, port, decode_frame(frame))
    assert t.outcomes and all(o["result"] in ("delivered", "physical", "controller", "drop") for o in t.outcomes)


def test_decoder_agrees_with_the_builders() -> None:
    from tuplenet.sandbox import packets as S

    frame = S.icmp_frame("f2:01:0a:0a:01:02", "f2:01:0a:0a:01:01", "10.10.1.2", "10.10.2.2", ttl=7)
    assert decode_frame(frame) == P.icmp("f2:01:0a:0a:01:02", "f2:01:0a:0a:01:01", "10.10.1.2", "10.10.2.2", ttl=7)
    arp = S.arp_request("f2:01:0a:0a:01:02", "10.10.1.2", "10.10.1.3")
    assert decode_frame(arp.hex()) == P.arp_request("f2:01:0a:0a:01:02", "10.10.1.2", "10.10.1.3")
    udp = S.eth("f2:01:0a:0a:01:01", "f2:01:0a:0a:01:02", S.ETH_IP,
                S.ipv4("10.10.1.2", "10.10.2.2", S.PROTO_UDP, S.udp(5, 53, src="10.10.1.2", dst="10.10.2.2")))
    assert decode_frame(udp) == P.l4("udp", "f2:01:0a:0a:01:02", "f2:01:0a:0a:01:01", "10.10.1.2", "10.10.2.2",
                                     sport=5, dport=53)


URL_PARTS = ["http://", "https://", "ftp://", "", "//", "127.0.0.1", "[::1]", "[::1", "localhost", "h\u00e9", ":",
             ":8080", ":99999", ":-1", ":x", "/", "/api/v2", "/a b", "?q=1", "#f", "@", "user:pw@", "%00", "\n", " "]


@pytest.mark.fuzz
@fuzz
@given(st.lists(st.sampled_from(URL_PARTS), max_size=6).map("".join) | st.text(max_size=40))
def test_fuzz_api_urls_are_a_target_or_one_line_error(api: str) -> None:
    """`--api URL` / $TUPLENET_API: a (host, port, path, tls) fit for one HTTP request line, or TraceError."""
    from tuplenet.cli.trace import ApiError, api_target

    try:
        host, port, path, tls = api_target(api)
    except ApiError as exc:
        assert "\n" not in str(exc).replace("\\n", "")
        return
    assert host and 0 < port < 65536 and path.startswith("/") and isinstance(tls, bool)
    assert not any(c in path for c in " ?#\r\n") and host.isprintable()
