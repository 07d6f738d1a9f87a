"""Fuzz: etcd keys and values (anyone with etcd access writes them) through the model's decoders.

Only ModelError may escape; whatever decodes re-encodes to a value that decodes to the same entity; hostile
bitmaps fail fast and cleanly; import markers always parse."""

from __future__ import annotations

import base64
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz_settings import fuzz
from tuplenet.model import ModelError, decode, decode_kv, parse_key
from tuplenet.model.importmark import ImportMarker
from tuplenet.model.ovsnames import patch_port_problem
from tuplenet.model.roaring import decode_bitmap, encode_bitmap

FIELDS = ["digest", "records", "started", "host", "id", "ip", "mac", "peer", "chassis", "prefix", "next_hop", "outport", "xlate_type", "xlate_ip", "tick",
          "requested_chassis", "port_security", "x"]
ATOMS = ["1", "0", "65535", "65536", "+1", "-1", "1_0", "１０", "٣", "007", " 5 ", "24", "33", "2_4",
         "10.0.0.1", "10.0.0.256", "010.0.0.1", "１0.0.0.1", "1.2.3", "255.255.255.255",
         "f2:01:0a:00:00:01", "F2-01-0A-00-00-01", "ｆ2:01:0a:00:00:01", "f2:01:0a:00:00", "snat", "DNAT", "",
         "=", ",", "hv1", "br-int", "18446744073709551616", "9" * 30,
         "99999999999999999", "4611686018427387904"]
# An explicit alphabet: the characters that matter here (separators, signs, digits of other scripts, controls)
# without hypothesis' full-Unicode character tables, which cost seconds per process.
ALPHABET = "abcfhlpsx019:.-_+=,/ \t\n\x00\x7fé１٣²\u3000"
text = st.text(ALPHABET, max_size=12)
# Known fields and atoms three times as often as free text: each text draw costs, and most bugs sit at the
# boundary of a known field's syntax.
fields = st.one_of(*[st.sampled_from(FIELDS)] * 3, text)
atoms = st.one_of(*[st.sampled_from(ATOMS)] * 3, text)
values = st.lists(st.tuples(fields, atoms), max_size=5).map(lambda kv: ",".join(f"{k}={v}" for k, v in kv))
names = st.sampled_from(["a", "ls1", "p", " x ", "é", "-", ".", "a=b", "a,b"]) | st.text(ALPHABET, min_size=1, max_size=6)
keys = st.one_of(
    st.tuples(st.sampled_from(["LS", "LR", "chassis"]), names).map(lambda t: f"entity_view/{t[0]}/{t[1]}"),
    st.tuples(st.sampled_from(["LS/{}/lsp", "LR/{}/lrp", "LR/{}/lsr", "LR/{}/lnat", "LS/{}/lrp"]), names, names)
    .map(lambda t: "entity_view/" + t[0].format(t[1]) + "/" + t[2]),
    st.sampled_from(["entity_view/import_in_progress", "entity_view/", "globals/version"]),
    text)


@pytest.mark.fuzz
@fuzz
@given(keys, values)
def test_records_decode_or_raise_model_error(key, value):
    try:
        ent = decode_kv(key, value)
    except ModelError as exc:
        assert str(exc).isprintable()
        return
    if ent is None:
        assert parse_key(key) is None
        return
    assert ent.key == key
    again = decode(ent.kind, ent.ident, ent.to_value())
    assert again == ent and again.extra == ent.extra


def _raw_bitmap(data: bytes) -> str:
    return base64.b64encode(data).decode()


header = st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))
bitmaps = st.one_of(
    st.binary(max_size=64).map(_raw_bitmap),
    st.tuples(st.sampled_from([12346, 12347]), st.integers(0, 70000), st.lists(header, max_size=6),
              st.binary(max_size=200))
    .map(lambda t: _raw_bitmap(struct.pack("<I", t[0] | ((t[1] & 0xFFFF) << 16 if t[0] == 12347 else 0))
                               + (b"" if t[0] == 12347 else struct.pack("<I", t[1]))
                               + (b"\xff" if t[0] == 12347 else b"")
                               + b"".join(struct.pack("<HH", *h) for h in t[2]) + t[3])),
    st.sets(st.integers(0, 0xFFFFFFFF), max_size=20).map(encode_bitmap),
    text)


@pytest.mark.fuzz
@fuzz
@given(bitmaps)
def test_bitmaps_decode_or_raise_model_error(value):
    try:
        members = decode_bitmap(value)
    except ModelError as exc:
        assert "\n" not in str(exc)
        return
    assert len(members) <= 1 << 17 and all(0 <= m <= 0xFFFFFFFF for m in members)


@pytest.mark.fuzz
@fuzz
@given(values, names, names)
def test_markers_and_patch_names_never_raise(value, name, bridge):
    marker = ImportMarker.parse(value)
    assert ImportMarker.parse(marker.to_value()).records == marker.records
    assert marker.describe().isprintable()
    problem = patch_port_problem(name, bridge)
    assert problem is None or "\n" not in problem
