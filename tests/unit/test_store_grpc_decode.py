"""Pure parts of the gRPC transport: protobuf watch answers -> events, error mapping, import hygiene."""

from __future__ import annotations

import subprocess
import sys

import grpc
import pytest
from google.protobuf.message import DecodeError
from hypothesis import given
from hypothesis import strategies as st

from fuzz_settings import fuzz
from tuplenet.store import Compacted, MalformedAnswer, Store, StoreError
from tuplenet.store.codec import WatchMessage, decode_kv, kv_size
from tuplenet.store.etcdpb import rpc_pb2 as pb
from tuplenet.store.grpc_messages import _range_dict
from tuplenet.store.grpc_transport import describe_connect_failure, rpc_error
from tuplenet.store.grpc_watch import watch_message
from tuplenet.store.transport import EtcdError
from tuplenet.store.types import KV


def _kv(key: bytes, value: bytes, rev: int) -> pb.KeyValue:
    return pb.KeyValue(key=key, value=value, mod_revision=rev, create_revision=rev - 1, version=2, lease=7)


def test_watch_message_cuts_the_prefix_and_keeps_every_field() -> None:
    resp = pb.WatchResponse(header=pb.ResponseHeader(revision=12), events=[
        pb.Event(type=pb.Event.PUT, kv=_kv(b"/tn/a", b"x\xff", 10)),
        pb.Event(type=pb.Event.DELETE, kv=_kv(b"/tn/b", b"", 11))])
    msg = watch_message(pb.WatchResponse.FromString(resp.SerializeToString()), len(b"/tn/"))
    assert msg.header_revision == 12 and not msg.created and not msg.canceled
    got = [(e.type, e.kv.key, e.kv.value, e.kv.mod_revision, e.kv.create_revision, e.kv.version, e.kv.lease)
           for e in msg.events]
    assert got == [("PUT", "a", "x\udcff", 10, 9, 2, 7), ("DELETE", "b", "", 11, 10, 2, 7)]


def test_watch_message_cancel_and_compaction() -> None:
    msg = watch_message(pb.WatchResponse(created=True, canceled=True, compact_revision=40,
                                         cancel_reason="mvcc: required revision has been compacted"), 0)
    assert (msg.created, msg.canceled, msg.compact_revision) == (True, True, 40)
    assert "compacted" in msg.reason


def test_unknown_event_type_is_malformed() -> None:
    with pytest.raises(MalformedAnswer, match="unknown event type 5"):
        watch_message(pb.WatchResponse(events=[pb.Event(type=5, kv=_kv(b"k", b"v", 3))]), 0)


def test_range_dict_is_the_gateway_shape_with_raw_kvs() -> None:
    resp = pb.RangeResponse(header=pb.ResponseHeader(revision=9), kvs=[_kv(b"/p/k", b"v", 5)], more=True,
                            count=3)
    answer = _range_dict(resp)
    assert answer == {"header": {"revision": 9}, "more": True, "count": 3, "kvs": [(b"/p/k", b"v", 5, 4, 2, 7)]}
    # the store decodes the raw tuple exactly as it decodes the gateway's base64 dict for the same key
    gateway = {"key": "L3Avaw==", "value": "dg==", "mod_revision": "5", "create_revision": "4", "version": "2",
               "lease": "7"}
    assert decode_kv(answer["kvs"][0], 3) == decode_kv(gateway, 3) == KV("k", "v", 5, 4, 2, 7)
    assert kv_size(answer["kvs"][0]) == 5


class _Err(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


def test_rpc_errors_map_like_gateway_errors() -> None:
    err = rpc_error("/v3/kv/range", _Err(grpc.StatusCode.OUT_OF_RANGE, "etcdserver: mvcc: required revision "
                                                                        "has been compacted"))
    assert isinstance(err, Compacted)
    err = rpc_error("/v3/kv/put", _Err(grpc.StatusCode.NOT_FOUND, "etcdserver: requested lease not found"))
    assert isinstance(err, EtcdError) and err.code == 5 and "lease not found" in str(err)
    err = rpc_error("/v3/kv/put", _Err(grpc.StatusCode.PERMISSION_DENIED, "etcdserver: permission denied\nx"))
    assert err.code == 7 and "\n" not in str(err)


def test_connect_failures_are_named() -> None:
    verify = "failed to connect: ... CERTIFICATE_VERIFY_FAILED: unable to get local issuer certificate"
    why, tls = describe_connect_failure(verify, True)
    assert tls and why.startswith("etcd's certificate is not trusted: unable to get local issuer")
    assert "--cacert" in why
    why, tls = describe_connect_failure("failed to connect; Unwrap failed (TSI_DATA_CORRUPTED)", True)
    assert tls and "--cert/--key" in why
    why, tls = describe_connect_failure("failed to connect to all addresses; Socket closed", False)
    assert not tls and "https://" in why
    assert describe_connect_failure("Connection refused", False) == ("Connection refused", False)


def test_unknown_transport_is_refused() -> None:
    with pytest.raises(StoreError, match="unknown etcd transport 'http3'"):
        Store("127.0.0.1:1", transport="http3")


def test_cli_path_never_imports_grpc() -> None:
    code = ("import sys, tuplenet.cli.tpctl, tuplenet.store as s; s.Store('127.0.0.1:1').close(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('grpc', 'google')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.fuzz
@fuzz
@given(st.binary(max_size=300), st.integers(0, 8))
def test_fuzz_watch_answer_bytes(data: bytes, plen: int) -> None:
    """Whatever bytes arrive as a WatchResponse: a protobuf DecodeError (gRPC ends the stream, the watch
    resumes), MalformedAnswer, or a WatchMessage of well-typed events - nothing else."""
    try:
        resp = pb.WatchResponse.FromString(data)
    except DecodeError:
        return
    try:
        msg = watch_message(resp, plen)
    except MalformedAnswer:
        return
    assert isinstance(msg, WatchMessage)
    for e in msg.events:
        assert e.type in ("PUT", "DELETE") and isinstance(e.kv.key, str)
        assert isinstance(e.kv.mod_revision, int)


def test_range_requests_built_directly_equal_the_json_mapping() -> None:
    from google.protobuf import json_format

    from tuplenet.store.codec import range_fields
    from tuplenet.store.grpc_messages import parse_request

    for body in ({**range_fields(b"/tn/", True), "limit": "8", "revision": "42"},
                 {**range_fields(b"/tn/", True), "count_only": True}, range_fields(b"/tn/key", False),
                 {**range_fields(b"", True), "limit": "1000"}):
        want = json_format.ParseDict(body, pb.RangeRequest())
        assert parse_request(body, pb.RangeRequest) == want
    with pytest.raises(StoreError, match="bad range request"):
        parse_request({"key": "a2V5", "limit": "many"}, pb.RangeRequest)
    with pytest.raises(StoreError, match="bad request"):
        parse_request({"TTL": "soon"}, pb.LeaseGrantRequest)


def _body(compares, ops, failure=()) -> dict:
    from tuplenet.store.codec import encode_compare, encode_op

    pfx = b"/tuplenet/"
    return {"compare": [encode_compare(c, pfx) for c in compares], "success": [encode_op(o, pfx) for o in ops],
            "failure": [encode_op(o, pfx) for o in failure]}


def test_txn_requests_are_built_as_json_format_builds_them() -> None:
    """The hand-built TxnRequest (the claims' path) is the very message protobuf's JSON mapping gives."""
    from google.protobuf import json_format

    from tuplenet.store import Compare, Op
    from tuplenet.store.grpc_messages import parse_request

    shapes = [
        _body([Compare.mod_revision("a/b", "=", 17)], [Op.put("a/b", "x=1,chassis=hv2")]),
        _body([Compare.exists("k")], [Op.put("k", "v", lease=0x1234)]),
        _body([Compare.missing("k"), Compare.value("k", "=", "zz"), Compare.version("k", ">", 2)],
              [Op.get("k"), Op.get_prefix("p/"), Op.delete("d"), Op.delete_prefix("dp/")], [Op.put("k", "")]),
    ]
    for body in shapes:
        assert parse_request(body, pb.TxnRequest) == json_format.ParseDict(body, pb.TxnRequest())


@fuzz
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.sampled_from(
                        ["compare", "success", "failure", "key", "target", "result", "mod_revision", "value",
                         "version", "request_put", "request_range", "request_delete_range", "range_end", "lease"]),
                        kids, max_size=4), max_leaves=12))
def test_fuzz_txn_request_bodies(body) -> None:
    """Any body: a TxnRequest or a StoreError, never another exception; and whenever the hand path builds a
    message, it is the one protobuf's JSON mapping builds."""
    from google.protobuf import json_format

    from tuplenet.store.grpc_messages import _txn_request, parse_request

    body = body if isinstance(body, dict) else {"compare": body}
    try:
        parse_request(body, pb.TxnRequest)
    except StoreError:
        pass
    fast = _txn_request(body)
    if fast is not None:
        assert fast == json_format.ParseDict(body, pb.TxnRequest())
