"""etcd's gRPC messages in the JSON gateway's shapes and back, for the gRPC transport: which method serves each
gateway path, gateway bodies as protobuf requests, answers as gateway dicts. The conversion is protobuf's JSON
mapping (the one the gateway itself uses) except where a hand path is measurably faster on a hot path: range
answers (a cold start's listing) and txn requests (claims, on the port-up path)."""

from __future__ import annotations

from binascii import a2b_base64, b2a_base64
from collections.abc import Callable
from typing import Any

from .errors import StoreError
from .etcdpb import rpc_pb2 as pb
from .transport import one_line


def _b64(raw: bytes) -> str:
    return b2a_base64(raw, newline=False).decode("ascii")


def _to_dict(msg: Any) -> dict[str, Any]:
    from google.protobuf import json_format  # ~80 ms to import: not on the start-up listing's path

    return json_format.MessageToDict(msg, preserving_proto_field_name=True)


def parse_request(body: dict[str, Any], request: type) -> Any:
    """A gateway JSON body as the protobuf request (protobuf's JSON mapping; StoreError if it does not fit).
    Range requests, the start-up listing's pages, are built directly."""
    if request is pb.RangeRequest and body.keys() <= _RANGE_FIELDS:
        try:
            return pb.RangeRequest(key=a2b_base64(body.get("key", "")),
                                   range_end=a2b_base64(body.get("range_end", "")),
                                   limit=int(body.get("limit", 0)), revision=int(body.get("revision", 0)),
                                   count_only=bool(body.get("count_only", False)))
        except (ValueError, TypeError) as exc:
            raise StoreError(f"bad range request: {one_line(str(exc))}") from None
    if request is pb.TxnRequest:
        txn = _txn_request(body)
        if txn is not None:
            return txn
    from google.protobuf import json_format

    try:
        return json_format.ParseDict(body, request(), ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise StoreError(f"bad request: {one_line(str(exc))}") from None


_RANGE_FIELDS = frozenset(("key", "range_end", "limit", "revision", "count_only"))
_COMPARE_VALUE = {"VERSION": "version", "CREATE": "create_revision", "MOD": "mod_revision", "LEASE": "lease",
                  "VALUE": "value"}
_TXN_FIELDS = frozenset(("compare", "success", "failure"))


def _unb64(text: str) -> bytes:
    """Strict standard base64, what the store writes; anything else raises (json_format takes it then)."""
    return a2b_base64(text.encode("ascii"), strict_mode=True)


def _int(value: Any) -> int:
    """An int64 as protobuf's JSON mapping takes it (a number or its text; no bool, no spaces)."""
    if isinstance(value, bool) or (isinstance(value, str) and " " in value) or \
            (isinstance(value, float) and not value.is_integer()) or not isinstance(value, int | str | float):
        raise ValueError(f"not an integer: {value!r}")
    return int(value)


def _txn_request(body: dict[str, Any]) -> Any:
    """The shapes Store.txn builds, as a TxnRequest without json_format's reflection (36 -> 8 us a claim,
    on the port-up path); None for anything else (json_format then parses it, or says what is wrong)."""
    try:
        if body.keys() - _TXN_FIELDS or not all(isinstance(body.get(f, []), list) for f in _TXN_FIELDS):
            return None
        cmps = []
        for c in body.get("compare", ()):
            target = c["target"]
            field = _COMPARE_VALUE[target]
            if c.keys() - {"key", "target", "result", field}:
                return None
            cmp = pb.Compare(key=_unb64(c["key"]), target=pb.Compare.CompareTarget.Value(target),
                             result=pb.Compare.CompareResult.Value(c["result"]))
            if target == "VALUE":
                cmp.value = _unb64(c["value"])
            else:
                setattr(cmp, field, _int(c[field]))
            cmps.append(cmp)
        return pb.TxnRequest(compare=cmps, success=[_request_op(op) for op in body.get("success", ())],
                             failure=[_request_op(op) for op in body.get("failure", ())])
    except (KeyError, ValueError, TypeError, AttributeError):
        return None


def _request_op(op: dict[str, Any]) -> Any:
    (kind, req), = op.items()
    if kind == "request_put":
        if req.keys() - {"key", "value", "lease"}:
            raise KeyError(kind)
        return pb.RequestOp(request_put=pb.PutRequest(key=_unb64(req["key"]), value=_unb64(req["value"]),
                                                      lease=_int(req.get("lease", 0))))
    if kind in ("request_range", "request_delete_range") and req.keys() <= {"key", "range_end"}:
        cls = pb.RangeRequest if kind == "request_range" else pb.DeleteRangeRequest
        return pb.RequestOp(**{kind: cls(key=_unb64(req["key"]), range_end=_unb64(req.get("range_end", "")))})
    raise KeyError(kind)


def _range_dict(resp: pb.RangeResponse) -> dict[str, Any]:
    """RangeResponse -> the gateway's dict, without json_format's per-field reflection (20k keys at start).
    Each kv is a raw tuple (store/codec.py decode_kv takes both shapes): base64-encoding 20k keys and values
    only for the store to decode them again was a fifth of the agent's start-up listing."""
    kvs = [(kv.key, kv.value, kv.mod_revision, kv.create_revision, kv.version, kv.lease) for kv in resp.kvs]
    return {"header": {"revision": resp.header.revision}, "kvs": kvs, "more": resp.more, "count": resp.count}


class _Method:
    """One gateway path: the gRPC method, its request type and how its answer becomes the gateway dict."""

    __slots__ = ("name", "request", "response", "convert")

    def __init__(self, name: str, request: type, response: type,
                 convert: Callable[[Any], dict[str, Any]] = _to_dict) -> None:
        self.name, self.request, self.response, self.convert = name, request, response, convert


METHODS: dict[str, _Method] = {
    "/v3/kv/range": _Method("/etcdserverpb.KV/Range", pb.RangeRequest, pb.RangeResponse, _range_dict),
    "/v3/kv/put": _Method("/etcdserverpb.KV/Put", pb.PutRequest, pb.PutResponse),
    "/v3/kv/deleterange": _Method("/etcdserverpb.KV/DeleteRange", pb.DeleteRangeRequest,
                                  pb.DeleteRangeResponse),
    "/v3/kv/txn": _Method("/etcdserverpb.KV/Txn", pb.TxnRequest, pb.TxnResponse),
    "/v3/kv/compaction": _Method("/etcdserverpb.KV/Compact", pb.CompactionRequest, pb.CompactionResponse),
    "/v3/lease/grant": _Method("/etcdserverpb.Lease/LeaseGrant", pb.LeaseGrantRequest, pb.LeaseGrantResponse),
    "/v3/lease/revoke": _Method("/etcdserverpb.Lease/LeaseRevoke", pb.LeaseRevokeRequest,
                                pb.LeaseRevokeResponse),
    "/v3/lease/timetolive": _Method("/etcdserverpb.Lease/LeaseTimeToLive", pb.LeaseTimeToLiveRequest,
                                    pb.LeaseTimeToLiveResponse),
    "/v3/auth/authenticate": _Method("/etcdserverpb.Auth/Authenticate", pb.AuthenticateRequest,
                                     pb.AuthenticateResponse),
    "/v3/maintenance/status": _Method("/etcdserverpb.Maintenance/Status", pb.StatusRequest,
                                      pb.StatusResponse),
    "/v3/cluster/member/list": _Method("/etcdserverpb.Cluster/MemberList", pb.MemberListRequest,
                                       pb.MemberListResponse),
}
KEEPALIVE = "/etcdserverpb.Lease/LeaseKeepAlive"
