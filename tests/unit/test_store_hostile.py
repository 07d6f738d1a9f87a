"""The store against a hostile peer on etcd's port: garbage answers raise StoreError (or a documented subclass)
and nothing else; the lease keepalive and the watch threads survive them.

The peer is a stdlib HTTP server answering scripted bytes; it plays no etcd semantics, only broken answers.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tuplenet.sandbox.procs import wait_for
from tuplenet.store import Compare, EtcdError, MalformedAnswer, Op, Store, StoreError
from tuplenet.store.lease import Lease
from tuplenet.store.transport import Transport

# An answer: (status, body) or, for /v3/watch, a list of lines followed by HOLD (keep the stream open) or not.
HOLD = object()
Script = Callable[[int], object]  # request number (0-based, per path) -> answer


class Hostile:
    """Answers POST <path> with what the script for that path returns; counts requests per path."""

    def __init__(self) -> None:
        self.scripts: dict[str, Script] = {}
        self.counts: dict[str, int] = {}
        self.stop = threading.Event()
        hostile = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # the connection ends each answer: no framing to get wrong

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                n = hostile.counts.get(self.path, 0)
                hostile.counts[self.path] = n + 1
                script = hostile.scripts.get(self.path)
                answer = script(n) if script else (404, b"404 page not found\n")
                if isinstance(answer, list):
                    self.send_response(200)
                    self.end_headers()
                    for item in answer:
                        if item is HOLD:
                            hostile.stop.wait(30)
                            return
                        self.wfile.write(item)
                        self.wfile.flush()
                    return
                status, body = answer
                self.send_response(status)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hostile() -> Iterator[Hostile]:
    peer = Hostile()
    yield peer
    peer.close()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def line(obj: object) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def created(rev: int) -> bytes:
    return line({"result": {"header": {"revision": str(rev)}, "created": True}})


def event(rev: int, key: str = "/tn/k", value: str = "v") -> bytes:
    kv = {"key": b64(key), "value": b64(value), "mod_revision": str(rev)}
    return line({"result": {"header": {"revision": str(rev)}, "events": [{"kv": kv}]}})


# ---- lease keepalive ----------------------------------------------------------------------------------------

def test_keepalive_thread_survives_non_json_200_and_recovers(hostile: Hostile) -> None:
    hostile.scripts["/v3/lease/keepalive"] = lambda n: (
        (200, b"<html>proxy says hi</html>") if n < 3 else (200, b'{"result": {"ID": "16", "TTL": "5"}}'))
    lease = Lease(Transport(hostile.endpoint, timeout=1.0), 0x10, 3)
    lease.start_keepalive(interval=0.05)
    try:
        wait_for(lambda: hostile.counts.get("/v3/lease/keepalive", 0) >= 6, timeout=10,
                 what="keepalives after three garbage answers")
        assert lease._thread is not None and lease._thread.is_alive()
        assert lease.failures == 3 and "not a JSON object" in lease.last_error
        assert lease.refreshes >= 2
    finally:
        lease.stop()


def test_keepalive_thread_survives_an_unexpected_exception(hostile: Hostile, monkeypatch) -> None:
    hostile.scripts["/v3/lease/keepalive"] = lambda n: (200, b'{"result": {"TTL": "5"}}')
    lease = Lease(Transport(hostile.endpoint, timeout=1.0), 0x10, 3)
    real = lease.refresh
    calls = []

    def flaky(timeout: float | None = None) -> int:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug")
        return real(timeout)

    monkeypatch.setattr(lease, "refresh", flaky)
    lease.start_keepalive(interval=0.05)
    try:
        wait_for(lambda: lease.refreshes >= 2, timeout=10, what="refreshes after a crash")
        assert lease.failures == 1 and "RuntimeError: a bug" in lease.last_error
    finally:
        lease.stop()


# ---- error and success bodies of unary calls ------------------------------------------------------------

ERROR_BODIES = [
    b'{"code": null}', b'{"error": 5}', b'{"code": "7"}', b'{"code": 1e999}', b'{"code": [1]}', b'{"code": -3}',
    b'{"message": {"nested": 1}, "code": 9}', b'{"code": true}', b"[1, 2]", b'"text"', b"null", b"",
    b"<html><body><h1>502 Bad Gateway</h1></body></html>", b'{"message": "trunc', b"\xff\xfe\x00garbage",
    b"[" * 100_000, b'{"error": "etcdserver: request timed out", "code": 14}', b"line one\nline two\r\n",
]


@pytest.mark.parametrize("status", [400, 401, 500])
@pytest.mark.parametrize("body", ERROR_BODIES, ids=range(len(ERROR_BODIES)))
def test_gateway_error_bodies_raise_only_store_error(hostile: Hostile, status: int, body: bytes) -> None:
    hostile.scripts["/v3/kv/range"] = lambda n: (status, body)
    with Store(hostile.endpoint, prefix="/tn/", timeout=0.3) as store:
        with pytest.raises(StoreError) as info:
            store.get("k")
    assert "\n" not in str(info.value)


OK_BODIES = [
    b"not json", b"<html>hello</html>", b'{"kvs": [{"key": 5}]}', b'{"kvs": "abc"}', b'{"header": []}',
    b'{"kvs": [{"key": "!!!not base64"}]}', b'{"kvs": [{"key": "L3RuL2s=", "mod_revision": "x"}]}',
    b'{"header": {"revision": "1e5"}}', b'{"kvs": [{}], "more": true}', b'{"responses": [5], "succeeded": true}',
    b'{"responses": [{"response_range": {"kvs": [null]}}], "succeeded": true}', b"[]", b"null", b'{"kv',
    b'{"ID": "zz"}', b'{"result": []}', b'{"result": {"TTL": {}}}', b'{"members": [{"ID": []}]}',
    b'{"deleted": "lots"}', b'{"header": {"revision": "' + b"9" * 5000 + b'"}}', b'{"kvs": [[]]}',
    b'{"token": 5}', b'{"dbSize": "big"}', b'{"kvs": [{"key": "L3RuL2s=", "value": 7}]}',
]

CALLS: dict[str, Callable[[Store], object]] = {
    "get": lambda s: s.get("k"),
    "get_prefix": lambda s: s.get_prefix(""),
    "revision": lambda s: s.revision(),
    "put": lambda s: s.put("k", "v"),
    "delete": lambda s: s.delete("k"),
    "delete_prefix": lambda s: s.delete_prefix("k"),
    "txn": lambda s: s.txn([Compare.missing("k")], [Op.put("k", "v")], [Op.get("k"), Op.get_prefix("")]),
    "lease_grant": lambda s: s.lease_grant(5),
    "lease_refresh": lambda s: s.lease(1, 5).refresh(),
    "time_to_live": lambda s: s.lease(1, 5).time_to_live(),
    "status": lambda s: s.status(),
    "members": lambda s: s.members(),
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_garbage_200_answers_raise_only_store_error(hostile: Hostile, call: str) -> None:
    for body in OK_BODIES:
        hostile.scripts = {p: (lambda n, b=body: (200, b)) for p in (
            "/v3/kv/range", "/v3/kv/put", "/v3/kv/deleterange", "/v3/kv/txn", "/v3/lease/grant",
            "/v3/lease/keepalive", "/v3/lease/timetolive", "/v3/maintenance/status", "/v3/cluster/member/list")}
        with Store(hostile.endpoint, prefix="/tn/", timeout=0.5) as store:
            try:
                CALLS[call](store)
            except StoreError:
                pass


def test_garbage_token_from_authenticate_is_malformed(hostile: Hostile) -> None:
    from tuplenet.store import EtcdSecurity

    for body in (b'{"token": 5}', b'{"token": "a\\r\\nX-Evil: 1"}', b"{}", b'{"token": "has space"}'):
        hostile.scripts["/v3/auth/authenticate"] = lambda n, b=body: (200, b)
        with Store(hostile.endpoint, prefix="/tn/", timeout=0.5,
                   security=EtcdSecurity(user="u", password="p")) as store:
            with pytest.raises(MalformedAnswer, match="no usable token"):
                store.get("k")


# ---- watch --------------------------------------------------------------------------------------------------

def _collect(store: Store, count: int, timeout: float = 10.0):
    watch = store.watch("", 0)
    got: list = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            for batch in watch:
                got.extend((e.key, e.revision) for e in batch.events)
                if len(got) >= count:
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            errors.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    watch.close()
    return watch, got, errors


BAD_WATCH_LINES = [
    line({"result": {"header": {"revision": "11"}, "events": [{}]}}),
    line({"result": {"header": {"revision": "11"}, "events": [{"kv": {"key": 5}}]}}),
    line({"result": {"header": {"revision": "11"}, "events": [{"kv": {"key": b64("/tn/k")}, "type": "EXPLODE"}]}}),
    line({"result": {"header": [1], "events": []}}),
    line({"result": {"header": {"revision": "x"}}}),
    line({"result": {"events": [{"kv": {"key": b64("/tn/k"), "mod_revision": "1e3"}}]}}),
    line({"result": "nope"}), line([1, 2]), line(None), b"{truncated\n", b"<html>\n", b"\xff\xfe\xfd\n",
    b"[" * 50_000 + b"\n",
]


@pytest.mark.parametrize("bad", BAD_WATCH_LINES, ids=range(len(BAD_WATCH_LINES)))
def test_undecodable_watch_line_is_counted_and_the_watch_resumes(hostile: Hostile, bad: bytes) -> None:
    starts: list[int] = []

    def watch_script(n: int) -> object:
        starts.append(n)
        if n == 0:
            return [created(10), bad, HOLD]
        return [created(10), event(11), event(12, "/tn/k2"), HOLD]

    hostile.scripts["/v3/watch"] = watch_script
    with Store(hostile.endpoint, prefix="/tn/", timeout=1.0) as store:
        watch, got, errors = _collect(store, 2)
    assert errors == []
    assert got == [("k", 11), ("k2", 12)]
    assert watch.bad_lines == 1 and len(starts) == 2


@pytest.mark.parametrize("reason,expected", [
    ("rpc error: code = PermissionDenied desc = etcdserver: permission denied", EtcdError),
    ("rpc error: code = InvalidArgument desc = etcdserver: user name is empty", StoreError),
])
def test_watch_refused_at_creation_ends_with_the_reason(hostile: Hostile, reason: str, expected: type) -> None:
    refused = line({"result": {"header": {"revision": "3"}, "watch_id": "-1", "created": True, "canceled": True,
                               "cancel_reason": reason}})
    hostile.scripts["/v3/watch"] = lambda n: [refused, HOLD]
    with Store(hostile.endpoint, prefix="/tn/", timeout=1.0) as store:
        t0 = time.monotonic()
        watch, got, errors = _collect(store, 1, timeout=10)
    assert time.monotonic() - t0 < 5, "the refused watch hung as if it had been created"
    assert len(errors) == 1 and isinstance(errors[0], expected) and reason.split(": ")[-1] in str(errors[0])
    assert got == [] and watch.revision == 0


def test_a_line_without_end_is_bounded() -> None:
    from tuplenet.store.watch import iter_lines

    chunks = iter([b"a" * 1000] * 10)
    with pytest.raises(MalformedAnswer, match="longer than 5000 bytes"):
        list(iter_lines(lambda _n: next(chunks, b""), max_line=5000))
    chunks = iter([b"a" * 1000 + b"\n"] * 10)
    assert len(list(iter_lines(lambda _n: next(chunks, b""), max_line=5000))) == 10


def test_an_endless_answer_is_bounded(hostile: Hostile, monkeypatch) -> None:
    from tuplenet.store import transport

    monkeypatch.setattr(transport, "MAX_ANSWER", 1000)
    hostile.scripts["/v3/kv/range"] = lambda n: (200, b'{"kvs": [' + b'{"key": "AA=="},' * 500 + b"{}]}")
    with Store(hostile.endpoint, prefix="/tn/", timeout=0.5) as store:
        with pytest.raises(MalformedAnswer, match="longer than 1000 bytes"):
            store.get("k")
