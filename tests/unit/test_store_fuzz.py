"""Fuzz targets for every decoder in tuplenet.store: whatever etcd (or an impostor on its port) sends, only
StoreError or its documented subclasses escape, and what decodes has the documented types.

Sized by tests/fuzz_settings.py: 10,000 derandomised cases per target in CI, more with `make fuzz`.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz_settings import fuzz
from tuplenet.store import KV, Compare, Event, MalformedAnswer, Op, Store, StoreError, TxnResult
from tuplenet.store import watch as watch_mod
from tuplenet.store.codec import decode_watch_line
from tuplenet.store.endpoints import Endpoint, parse_endpoints
from tuplenet.store.security import EtcdSecurity, add_arguments, from_args
from tuplenet.store.transport import decode_answer, gateway_error

pytestmark = pytest.mark.fuzz

# ---- strategies ---------------------------------------------------------------------------------------------
# Generation is the cost of a fuzz target, so answers are built cheaply: a valid answer from a few drawn numbers
# and bytes, then one "mutation" that replaces or deletes any one slot of it (a key's value or a list item) with
# junk of any JSON type. That reaches every decoder branch with every type confusion at a few draws per case.

junk = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=8),
                 st.sampled_from([[], {}, [1], {"k": None}, "", "0", "-1", "1e5", "!!", "AAAA", "9" * 30]))


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def as_line(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def _slots(obj: Any, out: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key-or-index) in `obj`, depth first."""
    if isinstance(obj, dict):
        for k in list(obj):
            out.append((obj, k))
            _slots(obj[k], out)
    elif isinstance(obj, list):
        for i in range(len(obj)):
            out.append((obj, i))
            _slots(obj[i], out)
    return out


def mutate(obj: Any, mutation: tuple[int, int, Any]) -> Any:
    """mutation = (kind, where, junk): kind 0 keeps `obj`, 1 replaces slot `where` with junk, 2 deletes it,
    3 replaces the whole answer."""
    kind, where, value = mutation
    if kind == 3:
        return value
    slots = _slots(obj, [])
    if kind == 0 or not slots:
        return obj
    parent, key = slots[where % len(slots)]
    if kind == 1:
        parent[key] = value
    else:
        del parent[key]
    return obj


mutations = st.tuples(st.sampled_from([0, 1, 1, 1, 2, 2, 3]), st.integers(0, 63), junk)
revs = st.integers(0, 2**63 - 1)
keys = st.binary(max_size=6)


def kv(key: bytes, rev: int, value: bytes = b"v") -> dict[str, Any]:
    return {"key": b64(b"/tn/" + key), "value": b64(value), "mod_revision": str(rev), "create_revision": str(rev),
            "version": "1", "lease": str(rev % 3)}


def watch_message(kind: int, rev: int, key: bytes, flag: bool) -> dict[str, Any]:
    header = {"revision": str(rev), "member_id": "1"}
    if kind == 0:
        events = [{"kv": kv(key, rev)}, {"type": "DELETE", "kv": {"key": b64(b"/tn/" + key), "mod_revision": str(rev)}}]
        return {"result": {"header": header, "events": events}}
    if kind == 1:
        return {"result": {"header": header, "created": True, "canceled": flag, "cancel_reason": "etcdserver: x"}}
    if kind == 2:
        return {"result": {"header": header, "canceled": True, "compact_revision": str(rev)}}
    return {"error": {"grpc_code": 14, "http_code": 503, "message": "boom", "http_status": "Unavailable"}}


watch_lines = st.one_of(
    st.builds(lambda k, r, key, f, m: as_line(mutate(watch_message(k, r, key, f), m)),
              st.integers(0, 3), revs, keys, st.booleans(), mutations),
    st.binary(max_size=40),
    st.tuples(st.integers(0, 3), revs, st.integers(0, 200)).map(
        lambda t: as_line(watch_message(t[0], t[1], b"k", False))[:t[2]]),  # truncated
)


# ---- watch lines ---------------------------------------------------------------------------------------------

@fuzz
@given(watch_lines)
def test_fuzz_watch_line_decodes_or_raises_malformed(line: bytes) -> None:
    try:
        msg = decode_watch_line(line, 4)
    except MalformedAnswer:
        return
    assert isinstance(msg.header_revision, int) and isinstance(msg.compact_revision, int)
    assert isinstance(msg.reason, str) and isinstance(msg.created, bool) and isinstance(msg.canceled, bool)
    for ev in msg.events:
        assert isinstance(ev, Event) and ev.type in ("PUT", "DELETE")
        kv = ev.kv
        assert isinstance(kv.key, str) and isinstance(kv.value, str)
        assert all(isinstance(n, int) for n in (kv.mod_revision, kv.create_revision, kv.version, kv.lease))


class _Resp:
    def __init__(self, data: bytes) -> None:
        self.chunks = [data]

    def read1(self, _n: int) -> bytes:
        return self.chunks.pop() if self.chunks else b""


class _Conn:
    sock = None

    def close(self) -> None:
        pass


def _event_line(revs: list[int]) -> bytes:
    evs = [{"kv": {"key": b64(b"/tn/k%d" % r), "mod_revision": str(r)}} for r in revs]
    return as_line({"result": {"header": {"revision": str(max(revs))}, "events": evs}})


def _header_line(rev: int, **extra: Any) -> bytes:
    return as_line({"result": {"header": {"revision": str(rev)}, **extra}})


# Whole streams: cheap lines that steer the watch (events, created, progress, cancels, junk); the line decoder
# itself is fuzzed above.
stream_lines = st.one_of(
    st.lists(st.integers(0, 40), min_size=1, max_size=3).map(_event_line),
    st.integers(0, 40).map(lambda r: _header_line(r, created=True)),
    st.integers(0, 40).map(_header_line),
    st.sampled_from([
        _header_line(5, canceled=True, compact_revision="3"), _header_line(5, canceled=True),
        _header_line(5, created=True, canceled=True, cancel_reason="etcdserver: permission denied"),
        _header_line(5, created=True, canceled=True, cancel_reason="etcdserver: invalid auth token"),
        as_line({"error": {"message": "boom"}}), b'{"result": {"events": [{}]}}', b"{bad", b"<html>", b"",
    ]),
)


@fuzz
@given(st.lists(st.lists(stream_lines, max_size=6), min_size=1, max_size=4), st.integers(0, 50))
def test_fuzz_watch_stream_only_store_errors_and_increasing_revisions(streams: list[list[bytes]],
                                                                      start: int) -> None:
    """A watch fed any sequence of streams of any lines: it ends cleanly or with a StoreError, and what it
    delivers never goes back in revision (no replay, no reorder)."""
    scripts = [b"\n".join(s) + b"\n" for s in streams]
    store = Store("127.0.0.1:1", prefix="/tn/")
    watch = store.watch("", start)

    def connect() -> tuple[_Conn, _Resp]:
        if not scripts:
            watch.close()
            raise ConnectionRefusedError("script over")
        return _Conn(), _Resp(scripts.pop(0))

    watch._connect = connect  # type: ignore[method-assign]
    saved = watch_mod.BACKOFF_MIN, watch_mod.BACKOFF_MAX
    watch_mod.BACKOFF_MIN = watch_mod.BACKOFF_MAX = 0.0
    delivered: list[int] = []
    previous = start - 1
    try:
        for batch in watch:
            revs = [e.kv.mod_revision for e in batch.events]
            assert revs == sorted(revs) and all(r > previous for r in revs)
            assert batch.revision >= previous and (not revs or batch.revision == revs[-1])
            previous = batch.revision
            delivered.extend(revs)
    except StoreError:
        pass
    finally:
        watch_mod.BACKOFF_MIN, watch_mod.BACKOFF_MAX = saved
        store.close()
    assert delivered == sorted(delivered)


# ---- gateway answers -----------------------------------------------------------------------------------------

error_bodies = st.one_of(
    st.builds(lambda m, c, mut: as_line(mutate({"error": m, "message": m, "code": c}, mut)),
              st.text(max_size=20), st.integers(0, 20), mutations),
    st.binary(max_size=60),
    st.text(max_size=30).map(lambda t: f"<html><body>{t}</body></html>".encode()),
)


@fuzz
@given(st.integers(100, 599), error_bodies)
def test_fuzz_gateway_error_is_one_line_store_error(status: int, body: bytes) -> None:
    err = gateway_error("/v3/kv/range", status, body)
    assert isinstance(err, StoreError)
    text = str(err)
    assert text.startswith("etcd /v3/kv/range: ") and "\n" not in text and "\r" not in text
    assert isinstance(getattr(err, "code", 0), int)


@fuzz
@given(error_bodies)
def test_fuzz_200_answer_is_a_dict_or_malformed(body: bytes) -> None:
    try:
        answer = decode_answer("/v3/kv/put", body)
    except MalformedAnswer as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(answer, dict)


class _Answers:
    """Stands in for the transport of a Store: every call answers `answer` (already-parsed JSON)."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.names = ["fuzz:1"]
        self.preferred = 0
        self.timeout = 1.0

    def call(self, path: str, body: dict, idempotent: bool = True, timeout: float | None = None) -> Any:
        return decode_answer(path, json.dumps(self.answer).encode())  # as the real transport hands it over

    def close(self) -> None:
        pass


def answer(rev: int, key: bytes, more: bool) -> dict[str, Any]:
    """One valid-looking answer with the fields of every call (each call reads only its own)."""
    header = {"revision": str(rev), "member_id": "2", "raft_term": "3"}
    return {
        "header": header, "kvs": [kv(key, rev), kv(key + b"x", rev)], "more": more, "count": "2", "deleted": "1",
        "succeeded": more,
        "responses": [{"response_put": {"header": header}}, {"response_delete_range": {"deleted": "1"}},
                      {"response_range": {"kvs": [kv(key, rev)]}}],
        "ID": str(rev or 1), "TTL": "5", "result": {"ID": str(rev), "TTL": "4"}, "version": "3.4.23",
        "dbSize": "20480", "leader": "2", "raftTerm": "3",
        "members": [{"ID": "2", "name": "m", "peerURLs": ["http://p"], "clientURLs": ["http://c"]}],
    }


answers = st.builds(lambda r, k, more, m: mutate(answer(r, k, more), m), revs, keys, st.booleans(), mutations)


CALLS = {
    "get": lambda s: s.get("k"),
    "get_prefix": lambda s: s.get_prefix("", page_size=2),
    "get_prefix_page": lambda s: s.get_prefix_page(""),
    "revision": lambda s: s.revision(),
    "put": lambda s: s.put("k", "v", lease=7),
    "delete": lambda s: s.delete("k"),
    "delete_prefix": lambda s: s.delete_prefix("k"),
    "txn": lambda s: s.txn([Compare.missing("k")], [Op.put("k", "v"), Op.delete("d"), Op.get("k")],
                           [Op.get("k"), Op.get_prefix(""), Op.delete_prefix("p")]),
    "lease_grant": lambda s: s.lease_grant(5).id,
    "lease_refresh": lambda s: s.lease(1, 5).refresh(),
    "time_to_live": lambda s: s.lease(1, 5).time_to_live(),
    "status": lambda s: s.status(),
    "members": lambda s: s.members(),
}


@fuzz
@given(answers, st.sampled_from(sorted(CALLS)))
def test_fuzz_store_calls_decode_or_raise_store_error(answer: Any, call: str) -> None:
    store = Store("127.0.0.1:1", prefix="/tn/")
    store._t = _Answers(answer)  # type: ignore[assignment]
    if call == "get_prefix" and isinstance(answer, dict):  # "more" for ever would page without end
        answer["more"] = False
    try:
        out = CALLS[call](store)
    except StoreError:
        return
    if call == "get":
        assert out is None or isinstance(out, KV)
    elif call in ("get_prefix", "get_prefix_page"):
        assert all(isinstance(kv, KV) for kv in out[0]) and isinstance(out[1], int)
    elif call == "txn":
        assert isinstance(out, TxnResult) and isinstance(out.revision, int)
    elif call in ("revision", "put", "delete", "delete_prefix", "lease_grant", "lease_refresh", "time_to_live"):
        assert isinstance(out, int)


# ---- options and endpoints -------------------------------------------------------------------------------

@fuzz
@given(st.text(max_size=40))
def test_fuzz_parse_endpoints(text: str) -> None:
    try:
        eps = parse_endpoints(text)
    except StoreError:
        return
    assert eps and all(isinstance(e, Endpoint) and 0 < e.port < 65536 and e.host for e in eps)


_parser = argparse.ArgumentParser()
add_arguments(_parser)
opt_values = st.none() | st.sampled_from(["", "u", "u:p", ":", ":p", "u:", "a:b:c", "/f"]) | st.text(max_size=6)


@fuzz
@given(st.fixed_dictionaries({n: opt_values for n in ("cacert", "cert", "key", "user", "password")}),
       st.dictionaries(st.sampled_from(["ETCDCTL_CACERT", "ETCDCTL_CERT", "ETCDCTL_KEY", "ETCDCTL_USER",
                                        "ETCDCTL_PASSWORD"]), st.text(max_size=10)))
def test_fuzz_security_options(opts: dict[str, str | None], env: dict[str, str]) -> None:
    try:
        sec = from_args(argparse.Namespace(**opts), env)
    except StoreError:
        return
    assert isinstance(sec, EtcdSecurity)
    assert bool(sec.cert) == bool(sec.key)
    assert sec.user is None or sec.password is not None
    assert repr(sec) == repr(dataclasses.replace(sec, password=""))  # the password never shows
