"""Pure parts of the store: prefixes, endpoints, JSON-gateway encoding and the watch-line decoder."""

from __future__ import annotations

import base64
import json

import pytest

from tuplenet.store import KV, Compare, Event, Op, StoreError, TxnConflict, TxnResult, normalise_prefix
from tuplenet.store.codec import (
    decode_kv,
    decode_op_response,
    decode_watch_line,
    encode_compare,
    encode_op,
    prefix_end,
    range_fields,
)
from tuplenet.store.endpoints import parse_endpoints
from tuplenet.store.transport import gateway_error


def b64(raw: bytes | str) -> str:
    return base64.b64encode(raw.encode() if isinstance(raw, str) else raw).decode()


@pytest.mark.parametrize("given,expected", [
    ("/tuplenet", "/tuplenet/"), ("/tuplenet/", "/tuplenet/"), ("t1/", "t1/"), ("t1", "t1/"), ("", ""),
    ("/", "/"), ("a/b", "a/b/"),
])
def test_normalise_prefix(given: str, expected: str) -> None:
    assert normalise_prefix(given) == expected


@pytest.mark.parametrize("key,end", [
    (b"a", b"b"), (b"/tn/", b"/tn0"), (b"a\xff", b"b"), (b"a\xff\xff", b"b"), (b"\xff", b"\x00"),
    (b"", b"\x00"),
])
def test_prefix_end(key: bytes, end: bytes) -> None:
    assert prefix_end(key) == end


def test_range_fields() -> None:
    assert range_fields(b"k", False) == {"key": b64("k")}
    assert range_fields(b"p/", True) == {"key": b64("p/"), "range_end": b64("p0")}
    assert range_fields(b"", True) == {"key": b64(b"\x00"), "range_end": b64(b"\x00")}
    with pytest.raises(StoreError):
        range_fields(b"", False)


def test_parse_endpoints() -> None:
    assert parse_endpoints("127.0.0.1:2379,127.0.0.1:2479") == [("127.0.0.1", 2379, False),
                                                                ("127.0.0.1", 2479, False)]
    assert parse_endpoints(["http://h1:1", " h2:2 ", "h3", "[::1]:5", "::1"]) == [
        ("h1", 1, False), ("h2", 2, False), ("h3", 2379, False), ("::1", 5, False), ("::1", 2379, False)]
    for bad in ("", "h:port", "unix://h:1", "h:0", "h:70000", "h:１２", "h:1_0", "h:+1", ":1"):
        with pytest.raises(StoreError):
            parse_endpoints(bad)


def test_parse_endpoints_tls_by_scheme_or_by_options() -> None:
    assert parse_endpoints("https://h:1,http://h:2,h:3") == [("h", 1, True), ("h", 2, False), ("h", 3, False)]
    # TLS files given: endpoints without a scheme use https (as etcdctl), an explicit http:// stays plain
    assert parse_endpoints("h:3,http://h:2", tls=True) == [("h", 3, True), ("h", 2, False)]


def test_decode_kv_strips_prefix_and_defaults_missing_fields() -> None:
    kv = decode_kv({"key": b64("/tn/a/b"), "value": b64("x=1"), "mod_revision": "7"}, len("/tn/"))
    assert kv == KV("a/b", "x=1", 7, 0, 0, 0)
    full = {"key": b64("/tn/k"), "value": b64("v"), "mod_revision": "9", "create_revision": "3",
            "version": "2", "lease": "123"}
    assert decode_kv(full, 4) == KV("k", "v", 9, 3, 2, 123)


def test_decode_non_utf8_round_trips() -> None:
    kv = decode_kv({"key": b64(b"/tn/k"), "value": b64(b"\xff\x00ok"), "mod_revision": "1"}, 4)
    assert kv.value.encode("utf-8", "surrogateescape") == b"\xff\x00ok"


def _line(result: dict) -> bytes:
    return json.dumps({"result": result}).encode()


def test_decode_watch_events() -> None:
    header = {"cluster_id": "1", "member_id": "2", "revision": "12", "raft_term": "2"}
    line = _line({"header": header, "events": [
        {"kv": {"key": b64("/tuplenet/entity_view/LS/ls1"), "value": b64("id=1"), "mod_revision": "11",
                "create_revision": "11", "version": "1"}},
        {"type": "DELETE", "kv": {"key": b64("/tuplenet/entity_view/LS/ls0"), "mod_revision": "12"}},
    ]})
    msg = decode_watch_line(line, len("/tuplenet/"))
    assert msg.header_revision == 12 and not msg.created and not msg.canceled
    assert msg.events == [Event("PUT", KV("entity_view/LS/ls1", "id=1", 11, 11, 1, 0)),
                          Event("DELETE", KV("entity_view/LS/ls0", "", 12, 0, 0, 0))]
    assert msg.events[1].key == "entity_view/LS/ls0" and msg.events[1].revision == 12


def test_decode_watch_control_messages() -> None:
    created = decode_watch_line(_line({"header": {"revision": "5"}, "created": True}), 0)
    assert created.created and created.events == [] and created.header_revision == 5
    compacted = decode_watch_line(_line({"header": {}, "canceled": True, "compact_revision": "2"}), 0)
    assert compacted.canceled and compacted.compact_revision == 2
    err = decode_watch_line(b'{"error":{"grpc_code":14,"message":"transport is closing"}}', 0)
    assert err.canceled and "transport is closing" in err.reason


def test_encode_compare() -> None:
    p = b"/tn/"
    assert encode_compare(Compare.missing("k"), p) == {"key": b64("/tn/k"), "target": "VERSION",
                                                       "result": "EQUAL", "version": "0"}
    assert encode_compare(Compare.exists("k"), p)["result"] == "GREATER"
    assert encode_compare(Compare.value("k", "!=", "v"), p)["value"] == b64("v")
    assert encode_compare(Compare.mod_revision("k", "<", 5), p)["mod_revision"] == "5"
    assert encode_compare(Compare.create_revision("k", "=", 3), p)["target"] == "CREATE"
    with pytest.raises(StoreError):
        Compare.value("k", "~", "v")


def test_encode_op() -> None:
    p = b"/tn/"
    assert encode_op(Op.put("k", "v", lease=7), p) == {
        "request_put": {"key": b64("/tn/k"), "value": b64("v"), "lease": "7"}}
    assert encode_op(Op.delete("k"), p) == {"request_delete_range": {"key": b64("/tn/k")}}
    assert encode_op(Op.delete_prefix("d/"), p) == {
        "request_delete_range": {"key": b64("/tn/d/"), "range_end": b64("/tn/d0")}}
    assert encode_op(Op.get("k"), p) == {"request_range": {"key": b64("/tn/k")}}


def test_decode_op_response() -> None:
    kv = {"key": b64("/tn/k"), "value": b64("v"), "mod_revision": "4"}
    assert decode_op_response(Op.put("k", "v"), {"response_put": {"header": {}}}, 4, 9) == 9
    assert decode_op_response(Op.delete("k"), {"response_delete_range": {"deleted": "1"}}, 4, 9) == 1
    assert decode_op_response(Op.delete("k"), {"response_delete_range": {}}, 4, 9) == 0
    assert decode_op_response(Op.get("k"), {"response_range": {"kvs": [kv]}}, 4, 9) == KV("k", "v", 4)
    assert decode_op_response(Op.get("k"), {"response_range": {}}, 4, 9) is None
    assert decode_op_response(Op.get_prefix(""), {"response_range": {"kvs": [kv]}}, 4, 9) == [KV("k", "v", 4)]


def test_gateway_error_mapping() -> None:
    from tuplenet.store import Compacted, EtcdError
    compacted = gateway_error("/v3/kv/range", 400, b'{"error":"x","message":"etcdserver: mvcc: required '
                              b'revision has been compacted","code":11}')
    assert isinstance(compacted, Compacted)
    not_found = gateway_error("/v3/lease/revoke", 404, b'{"message":"requested lease not found","code":5}')
    assert isinstance(not_found, EtcdError) and not_found.code == 5
    plain = gateway_error("/v3/x", 404, b"Not Found\n")
    assert str(plain) == "etcd /v3/x: HTTP 404: Not Found"


def test_txn_result_ensure() -> None:
    ok = TxnResult(True, 5, [])
    assert ok.ensure() is ok
    with pytest.raises(TxnConflict, match="create LS ls1"):
        TxnResult(False, 5, []).ensure("create LS ls1")


def test_peer_closed_detects_a_dead_idle_socket() -> None:
    import socket

    from tuplenet.store.transport import _peer_closed

    a, b = socket.socketpair()
    try:
        assert not _peer_closed(a)
        b.close()
        assert _peer_closed(a)
    finally:
        a.close()


def test_attempt_timeout_splits_the_deadline_between_endpoints() -> None:
    from tuplenet.store.transport import Transport

    assert Transport("h:1", timeout=5).attempt_timeout(5) == 5
    assert Transport("h:1,h:2", timeout=5).attempt_timeout(5) == 2.5
    assert Transport("h:1,h:2,h:3,h:4", timeout=2).attempt_timeout(2) == 1.0
