"""JSON-gateway encoding: keys and values are base64 text, int64s come as strings, zero fields are omitted.

Kept free of I/O so the hot path (watch lines -> Event objects) can be unit-tested and benchmarked alone.
"""

from __future__ import annotations

import binascii

from .errors import MalformedAnswer, StoreError
from .jsonlite import loads
from .types import KV, Compare, Event, Op

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_a2b = binascii.a2b_base64
_b2a = binascii.b2a_base64
_loads = loads  # json.loads without the json package (store.jsonlite)

# What decoding a malformed answer raises in Python (binascii.Error and UnicodeError are ValueErrors).
DECODE_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError, RecursionError)


class decoding:  # noqa: N801 - used as a context manager, named like one
    """`with decoding("/v3/kv/range"):` turns what a malformed answer raises into MalformedAnswer, so callers
    see only StoreError whatever a broken or hostile peer sends. Free on the normal path."""

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> decoding:
        return self

    def __exit__(self, tp: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        if tp is not None and issubclass(tp, DECODE_ERRORS) and not issubclass(tp, StoreError):
            detail = " ".join(f"{tp.__name__}: {exc}".split())[:160]
            raise MalformedAnswer(f"etcd {self.what}: malformed answer ({detail})") from exc
        return False


def normalise_prefix(prefix: str) -> str:
    """Ensure a trailing "/" (keys are joined as prefix + relative key); a leading "/" is never forced.

    "" stays "" and means the whole keyspace.
    """
    if prefix and not prefix.endswith("/"):
        return prefix + "/"
    return prefix


def to_bytes(text: str) -> bytes:
    # surrogateescape: any byte string read from etcd round-trips unchanged when written back.
    return text.encode("utf-8", "surrogateescape")


def b64(raw: bytes) -> str:
    return _b2a(raw, newline=False).decode("ascii")


def prefix_end(key: bytes) -> bytes:
    """The range_end that selects every key starting with `key` (etcd's "prefix" range)."""
    stripped = key.rstrip(b"\xff")
    if not stripped:
        return b"\x00"  # all keys
    return stripped[:-1] + bytes([stripped[-1] + 1])


def range_fields(full_key: bytes, is_prefix: bool) -> dict[str, str]:
    """key/range_end of a request; an empty prefix selects everything (key "\\0", range_end "\\0")."""
    if not is_prefix:
        if not full_key:
            raise StoreError("empty key")
        return {"key": b64(full_key)}
    start = full_key or b"\x00"
    return {"key": b64(start), "range_end": b64(prefix_end(full_key))}


RawKv = tuple[bytes, bytes, int, int, int, int]  # key, value, mod/create revision, version, lease (gRPC)


def decode_kv(kv: dict[str, Any] | RawKv, plen: int) -> KV:
    """Gateway kv dict (base64 text) or the gRPC transport's raw tuple -> KV with the first `plen` bytes (the
    store prefix) cut off the key."""
    if type(kv) is tuple:
        key, value, mod, create, version, lease = kv
        return KV(key[plen:].decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape"),
                  mod, create, version, lease)
    get = kv.get  # type: ignore[union-attr]
    value = get("value")
    return KV(
        _a2b(kv["key"])[plen:].decode("utf-8", "surrogateescape"),
        _a2b(value).decode("utf-8", "surrogateescape") if value else "",
        int(get("mod_revision", 0)),
        int(get("create_revision", 0)),
        int(get("version", 0)),
        int(get("lease", 0)),
    )


def kv_size(kv: dict[str, Any] | RawKv) -> float:
    """Bytes of key and value (page sizing), from either shape decode_kv takes."""
    if type(kv) is tuple:
        return len(kv[0]) + len(kv[1])
    return (len(kv["key"]) + len(kv.get("value", ""))) * 3 / 4  # type: ignore[call-overload,union-attr]


class WatchMessage:
    """One decoded line of the watch stream."""

    __slots__ = ("events", "header_revision", "created", "canceled", "compact_revision", "reason")

    def __init__(self, events: list[Event], header_revision: int, created: bool = False,
                 canceled: bool = False, compact_revision: int = 0, reason: str = "") -> None:
        self.events = events
        self.header_revision = header_revision
        self.created = created
        self.canceled = canceled
        self.compact_revision = compact_revision
        self.reason = reason


def decode_events(raw_events: list[dict[str, Any]], plen: int) -> list[Event]:
    """The hot loop: inlined decode_kv, one Event + one KV per event, nothing else allocated per event."""
    out: list[Event] = []
    append = out.append
    for ev in raw_events:
        kv = ev["kv"]
        get = kv.get
        value = get("value")
        kind = ev.get("type", "PUT")
        if kind != "PUT" and kind != "DELETE":
            raise ValueError(f"unknown event type {str(kind)[:40]!r}")
        append(Event(
            kind,
            KV(
                _a2b(kv["key"])[plen:].decode("utf-8", "surrogateescape"),
                _a2b(value).decode("utf-8", "surrogateescape") if value else "",
                int(get("mod_revision", 0)),
                int(get("create_revision", 0)),
                int(get("version", 0)),
                int(get("lease", 0)),
            ),
        ))
    return out


def decode_watch_line(line: bytes | str, plen: int) -> WatchMessage:
    """Parse one line of /v3/watch; a stream-level error becomes canceled with reason="error: ...".

    MalformedAnswer (and nothing else) for a line that is not a well-formed watch response.
    """
    with decoding("/v3/watch"):
        return _watch_message(line, plen)


def _watch_message(line: bytes | str, plen: int) -> WatchMessage:
    msg = _loads(line)
    result = msg.get("result")
    if result is None:
        err = msg.get("error") or {}
        text = err.get("message", str(err)) if isinstance(err, dict) else str(err)
        return WatchMessage([], 0, canceled=True, reason=f"error: {text}")
    header = result.get("header") or {}
    raw_events = result.get("events")
    events = decode_events(raw_events, plen) if raw_events else []
    return WatchMessage(
        events,
        int(header.get("revision", 0)),
        bool(result.get("created", False)),
        bool(result.get("canceled", False)),
        int(result.get("compact_revision", 0)),
        str(result.get("cancel_reason") or ""),
    )


def encode_compare(cmp: Compare, prefix: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {"key": b64(prefix + to_bytes(cmp.key)), "target": cmp.target, "result": cmp.result}
    if cmp.target == "VALUE":
        out["value"] = b64(to_bytes(str(cmp.operand)))
    elif cmp.target == "VERSION":
        out["version"] = str(cmp.operand)
    elif cmp.target == "CREATE":
        out["create_revision"] = str(cmp.operand)
    elif cmp.target == "MOD":
        out["mod_revision"] = str(cmp.operand)
    else:
        out["lease"] = str(cmp.operand)
    return out


def encode_op(op: Op, prefix: bytes) -> dict[str, Any]:
    full = prefix + to_bytes(op.key)
    if op.kind == "put":
        req: dict[str, Any] = {"key": b64(full), "value": b64(to_bytes(op.value))}
        if op.lease:
            req["lease"] = str(op.lease)
        return {"request_put": req}
    if op.kind in ("delete", "delete_prefix"):
        return {"request_delete_range": range_fields(full, op.kind == "delete_prefix")}
    if op.kind in ("get", "get_prefix"):
        return {"request_range": range_fields(full, op.kind == "get_prefix")}
    raise StoreError(f"unknown op kind {op.kind!r}")


def decode_op_response(op: Op, resp: dict[str, Any], plen: int, revision: int) -> Any:
    """One txn response -> the value documented on TxnResult.responses."""
    if "response_put" in resp:
        return revision
    if "response_delete_range" in resp:
        return int(resp["response_delete_range"].get("deleted", 0))
    kvs = [decode_kv(kv, plen) for kv in (resp.get("response_range") or {}).get("kvs", ())]
    if op.kind == "get":
        return kvs[0] if kvs else None
    return kvs
