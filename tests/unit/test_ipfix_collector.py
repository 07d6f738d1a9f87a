"""The sandbox IPFIX collector's decoder (RFC 7011) on messages built here, its UDP loop, and fuzzing."""

from __future__ import annotations

import random
import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz_settings import fuzz
from tuplenet.sandbox.ipfix_collector import Decoder, IpfixCollector, IpfixError, main

# IE ids used below: sourceIPv4Address 8, destinationIPv4Address 12, protocolIdentifier 4,
# sourceTransportPort 7, destinationTransportPort 11, packetDeltaCount 2, octetDeltaCount 1, interfaceName 82.
FLOW_FIELDS = [(8, 4), (12, 4), (4, 1), (7, 2), (11, 2), (2, 8), (1, 8)]


def message(*sets: bytes, domain: int = 7, seq: int = 1, version: int = 10, length: int | None = None) -> bytes:
    body = b"".join(sets)
    n = 16 + len(body) if length is None else length
    return struct.pack("!HHIII", version, n, 1_700_000_000, seq, domain) + body


def a_set(set_id: int, body: bytes) -> bytes:
    return struct.pack("!HH", set_id, 4 + len(body)) + body


def template(tid: int, fields: list[tuple], scope: int | None = None) -> bytes:
    head = struct.pack("!HH", tid, len(fields)) + (struct.pack("!H", scope) if scope is not None else b"")
    out = b""
    for f in fields:
        ie, length, *ent = f
        if ent:
            out += struct.pack("!HHI", ie | 0x8000, length, ent[0])
        else:
            out += struct.pack("!HH", ie, length)
    return head + out


def flow(src: str, dst: str, proto: int, sport: int, dport: int, pkts: int, octets: int) -> bytes:
    return (socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BHHQQ", proto, sport, dport, pkts, octets))


def test_template_and_data_in_one_message() -> None:
    d = Decoder()
    msg = d.decode(message(a_set(2, template(256, FLOW_FIELDS)),
                           a_set(256, flow("10.0.0.1", "10.0.0.2", 17, 1234, 53, 3, 99)
                                 + flow("10.0.0.2", "10.0.0.1", 17, 53, 1234, 1, 40))), "exp")
    assert msg.domain == 7 and msg.templates == (256,) and msg.unknown_sets == 0
    assert [r.fields for r in msg.records] == [
        {"sourceIPv4Address": "10.0.0.1", "destinationIPv4Address": "10.0.0.2", "protocolIdentifier": 17,
         "sourceTransportPort": 1234, "destinationTransportPort": 53, "packetDeltaCount": 3, "octetDeltaCount": 99},
        {"sourceIPv4Address": "10.0.0.2", "destinationIPv4Address": "10.0.0.1", "protocolIdentifier": 17,
         "sourceTransportPort": 53, "destinationTransportPort": 1234, "packetDeltaCount": 1, "octetDeltaCount": 40}]
    assert msg.records[0].get("packetDeltaCount") == 3 and msg.records[0].domain == 7


def test_templates_are_kept_per_exporter_and_domain() -> None:
    d = Decoder()
    d.decode(message(a_set(2, template(256, FLOW_FIELDS))), "a")
    data = a_set(256, flow("10.0.0.1", "10.0.0.2", 6, 1, 2, 1, 60))
    assert len(d.decode(message(data), "a").records) == 1
    other_exporter = d.decode(message(data), "b")
    other_domain = d.decode(message(data, domain=8), "a")
    assert (other_exporter.records, other_exporter.unknown_sets) == ((), 1)
    assert (other_domain.records, other_domain.unknown_sets) == ((), 1)


def test_data_before_its_template_is_skipped() -> None:
    d = Decoder()
    msg = d.decode(message(a_set(300, b"\x00" * 8)))
    assert msg.records == () and msg.unknown_sets == 1


def test_reduced_size_variable_length_enterprise_and_padding() -> None:
    d = Decoder()
    fields = [(2, 2), (82, 0xFFFF), (82, 0xFFFF), (99, 3, 6876)]
    long_name = "x" * 300
    rec = struct.pack("!H", 5) + b"\x03br0" + b"\xff" + struct.pack("!H", 300) + long_name.encode() + b"abc"
    msg = d.decode(message(a_set(2, template(400, fields) + b"\x00\x00"), a_set(400, rec + b"\x00\x00")))
    (r,) = msg.records
    assert r.fields == {"packetDeltaCount": 5, "interfaceName": "br0", "interfaceName#2": long_name,
                        "ie6876.99": b"abc"}


def test_options_template_records() -> None:
    d = Decoder()
    msg = d.decode(message(a_set(3, template(500, [(149, 4), (1, 8)], scope=1)),
                           a_set(500, struct.pack("!IQ", 7, 1000))))
    (r,) = msg.records
    assert r.options and r.fields == {"observationDomainId": 7, "octetDeltaCount": 1000}


def test_withdrawals() -> None:
    d = Decoder()
    d.decode(message(a_set(2, template(256, FLOW_FIELDS) + template(257, [(2, 8)]))), "a")
    d.decode(message(a_set(2, struct.pack("!HH", 256, 0))), "a")  # one template
    assert set(d.templates) == {("a", 7, 257)}
    d.decode(message(a_set(2, template(258, [(2, 8)]))), "b")
    d.decode(message(a_set(2, struct.pack("!HH", 2, 0))), "a")  # all of exporter a, domain 7
    assert set(d.templates) == {("b", 7, 258)}


@pytest.mark.parametrize(("data", "msg"), [
    (b"\x00\x0a", "shorter than the 16-byte header"),
    (message(version=9), "version 9"),
    (message(length=99), "header length 99"),
    (message(b"\x00\x02\x00"), "truncated set header"),
    (message(struct.pack("!HH", 2, 3)), "bad set length 3"),
    (message(struct.pack("!HH", 2, 40)), "bad set length 40"),
    (message(a_set(1, b"")), "not used in IPFIX"),
    (message(a_set(2, template(100, [(2, 8)]))), "template id below 256"),
    (message(a_set(2, template(256, [(8, 5)]))), "sourceIPv4Address has length 5"),
    (message(a_set(2, template(256, [(2, 9)]))), "at most 8"),
    (message(a_set(2, template(256, [(2, 0)]))), "length 0"),
    (message(a_set(2, template(256, [(2, 8), (1, 8)])[:-2])), "runs past the set"),
    (message(a_set(3, template(256, [(2, 8)], scope=2))), "scope field count 2"),
    (message(a_set(2, template(256, [(82, 0xFFFF), (2, 8)])), a_set(256, b"\x09abc" + b"\x00" * 5)),
     "interfaceName runs past the set"),
])
def test_invalid_messages_raise_ipfix_error(data: bytes, msg: str) -> None:
    with pytest.raises(IpfixError, match=msg):
        Decoder().decode(data)


def test_a_bad_message_teaches_nothing() -> None:
    d = Decoder()
    with pytest.raises(IpfixError):
        d.decode(message(a_set(2, template(256, FLOW_FIELDS)), a_set(0, b"")))
    assert d.templates == {}


def test_collector_over_udp_counts_bad_datagrams() -> None:
    with IpfixCollector() as c:
        host, port = c.address.split(":")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"garbage", (host, int(port)))
            s.sendto(message(a_set(2, template(256, FLOW_FIELDS)),
                             a_set(256, flow("10.1.0.1", "10.1.0.2", 1, 0, 0, 2, 196))), (host, int(port)))
        (r,) = c.wait_records(lambda r: r.get("destinationIPv4Address") == "10.1.0.2", timeout=5)
        assert r.get("packetDeltaCount") == 2
        assert c.messages == 1 and len(c.errors) == 1 and "shorter than the 16-byte header" in c.errors[0]


def test_cli_prints_one_json_line_per_record() -> None:
    import json
    import subprocess
    import sys

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "tuplenet.sandbox.ipfix_collector", "--listen",
                             f"127.0.0.1:{port}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr.readline().startswith("listening on 127.0.0.1:")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(message(a_set(2, template(256, FLOW_FIELDS)),
                             a_set(256, flow("10.2.0.1", "10.2.0.2", 6, 80, 8080, 4, 400))), ("127.0.0.1", port))
        line = json.loads(proc.stdout.readline())
        assert line == {"domain": 7, "template": 256, "sourceIPv4Address": "10.2.0.1",
                        "destinationIPv4Address": "10.2.0.2", "protocolIdentifier": 6, "sourceTransportPort": 80,
                        "destinationTransportPort": 8080, "packetDeltaCount": 4, "octetDeltaCount": 400}
    finally:
        proc.kill()
        proc.wait(5)


def test_cli_refuses_a_bad_listen_address(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--listen", "nowhere"]) == 2
    assert "cannot listen on 'nowhere'" in capsys.readouterr().err


# ---- fuzz: whatever arrives, decode() returns a Message or raises IpfixError, and a failure learns nothing ----

_FIELD_CHOICES = [(1, 8), (2, 4), (4, 1), (7, 2), (11, 2), (61, 1), (86, 8), (8, 4), (12, 4), (56, 6), (80, 6),
                  (82, 1), (82, 0xFFFF), (999, 3), (999, 0xFFFF)]
_VAR_LENGTHS = [0, 3, 254, 255, 300]


def _message_from(seed: int, options: bool, early_data: bool, damage: int) -> bytes:
    """A valid message (a template or options template and matching data), then damaged `damage` times.
    Built from a seed, so hypothesis draws four values per example (CI time per target)."""
    rnd = random.Random(seed)
    tid = rnd.randrange(256, 259)
    fields: list[tuple] = []
    for _ in range(rnd.randrange(1, 5)):
        if rnd.random() < 0.2:  # an enterprise IE of any length
            fields.append((rnd.randrange(1, 300), rnd.randrange(1, 12), rnd.randrange(1, 1 << 20)))
        else:
            fields.append(rnd.choice(_FIELD_CHOICES))
    recs = b""
    for _ in range(rnd.randrange(3)):
        for f in fields:
            if f[1] == 0xFFFF:
                n = rnd.choice(_VAR_LENGTHS)
                recs += (bytes([n]) if n < 255 else b"\xff" + struct.pack("!H", n)) + b"v" * n
            else:
                recs += rnd.randbytes(f[1])
    sets = [a_set(tid, recs)] if early_data else []  # data before its template: skipped
    sets.append(a_set(3 if options else 2, template(tid, fields, scope=1 if options else None)))
    sets.append(a_set(tid, recs))
    data = bytearray(message(*sets, domain=rnd.randrange(6, 8)))
    for _ in range(damage):
        op = rnd.randrange(3)
        if op == 0 and data:
            data[rnd.randrange(len(data))] = rnd.randrange(256)
        elif op == 1:
            del data[rnd.randrange(len(data) + 1):]
        else:
            data += rnd.randbytes(rnd.randrange(9))
    if damage and len(data) >= 4 and rnd.random() < 0.8:
        struct.pack_into("!H", data, 2, len(data))  # get past the header check: damage deeper in
    return bytes(data)


_messages = st.builds(_message_from, st.integers(0, 1 << 32), st.booleans(), st.booleans(), st.integers(0, 2))
_KNOWN = message(a_set(2, template(256, FLOW_FIELDS)), a_set(3, template(257, [(149, 4), (2, 8)], scope=1)))


@pytest.mark.fuzz
@fuzz
@given(st.one_of(_messages, st.binary(max_size=64)))
def test_fuzz_decoder_raises_only_ipfix_error(data: bytes) -> None:
    d = Decoder()
    d.decode(_KNOWN, "exp")
    before = dict(d.templates)
    try:
        msg = d.decode(data, "exp")
    except IpfixError:
        assert d.templates == before  # a bad datagram teaches nothing
        return
    assert all(isinstance(r.fields, dict) for r in msg.records)
