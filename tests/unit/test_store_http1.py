"""tuplenet.store.http1, the store's own HTTP/1.1 client: framing (Content-Length, chunked, to the end),
keep-alive, streaming read1, and every broken answer raising HTTPError (never a truncated body as complete)."""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz_settings import fuzz
from tuplenet.store.http1 import Connection, HTTPError, IncompleteRead, RemoteDisconnected, Response


def answer(raw: bytes) -> Response:
    return Response(io.BufferedReader(io.BytesIO(raw)))  # type: ignore[arg-type]


def chunked(*pieces: bytes, trailer: bytes = b"") -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces)
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body + b"0\r\n" + trailer + b"\r\n"


# ---- framing -----------------------------------------------------------------------------------------------

def test_content_length_answer_keeps_the_connection() -> None:
    resp = answer(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: application/json\r\n\r\nhelloEXTRA")
    assert resp.status == 200 and not resp.will_close
    assert resp.getheader("content-type") == "application/json" and resp.getheader("X-None") is None
    assert resp.read() == b"hello" and resp.read() == b""


def test_read_with_a_limit_stops_at_the_body_end_and_at_the_limit() -> None:
    resp = answer(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
    assert resp.read(100) == b"hello"
    resp = answer(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
    assert resp.read(3) == b"hel" and resp.read(3) == b"lo" and resp.read() == b""


@pytest.mark.parametrize("head,closes", [
    (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n", True),
    (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n", False),
    (b"HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 2\r\n", True),
    (b"HTTP/1.1 200 OK\r\nConnection: upgrade, close\r\nContent-Length: 2\r\n", True),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n", False),
])
def test_will_close_follows_version_and_connection_header(head: bytes, closes: bool) -> None:
    resp = answer(head + b"\r\nok")
    assert resp.will_close is closes and resp.read() == b"ok"


def test_answer_without_length_runs_to_the_connection_end() -> None:
    resp = answer(b"HTTP/1.0 500 Internal Server Error\r\n\r\n" + b"x" * 200_000)
    assert resp.will_close and resp.status == 500
    assert resp.read(150_001) == b"x" * 150_001
    assert resp.read() == b"x" * 49_999 and resp.read() == b""


def test_chunked_answer_with_extensions_and_trailers() -> None:
    raw = (b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n"
           b"3;name=value\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n")
    resp = answer(raw)
    assert not resp.will_close and resp.read() == b"abc0123456789" and resp.read() == b""


def test_chunked_read_with_a_limit_and_read1_piece_by_piece() -> None:
    raw = chunked(b"abc", b"defgh", b"i")
    resp = answer(raw)
    assert resp.read(4) == b"abcd" and resp.read(100) == b"efghi" and resp.read() == b""
    resp = answer(raw)
    pieces = list(iter(lambda: resp.read1(2), b""))
    assert pieces == [b"ab", b"c", b"de", b"fg", b"h", b"i"]


def test_interim_answers_are_skipped_and_204_has_no_body() -> None:
    resp = answer(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n")
    assert resp.status == 204 and resp.read() == b"" and resp.read1(10) == b""


def test_folded_and_nameless_header_lines_are_skipped() -> None:
    resp = answer(b"HTTP/1.1 200 OK\r\nX-A: 1\r\n  folded\r\nno colon here\r\n: empty\r\nContent-Length: 1\r\n\r\nz")
    assert resp.headers == {"x-a": "1", "content-length": "1"} and resp.read() == b"z"


# ---- broken answers ----------------------------------------------------------------------------------------

BROKEN = {
    "no status line": b"",
    "not http": b"SSH-2.0-OpenSSH_9.2\r\n",
    "status not a number": b"HTTP/1.1 2xx OK\r\n\r\n",
    "status four digits": b"HTTP/1.1 2000 OK\r\n\r\n",
    "http 2": b"HTTP/2 200\r\n\r\n",
    "headers cut short": b"HTTP/1.1 200 OK\r\nContent-Len",
    "no end of headers": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n",
    "bad content length": b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    "hex content length": b"HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n",
    "conflicting lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
    "status line too long": b"HTTP/1.1 200 " + b"x" * 70_000 + b"\r\n\r\n",
    "header too long": b"HTTP/1.1 200 OK\r\nX: " + b"x" * 70_000 + b"\r\n\r\n",
    "too many headers": b"HTTP/1.1 200 OK\r\n" + b"X: 1\r\n" * 101 + b"\r\n",
}


@pytest.mark.parametrize("raw", BROKEN.values(), ids=BROKEN.keys())
def test_broken_heads_raise_http_error(raw: bytes) -> None:
    with pytest.raises(HTTPError):
        answer(raw)


def test_nothing_at_all_is_remote_disconnected_a_connection_reset() -> None:
    with pytest.raises(RemoteDisconnected) as info:
        answer(b"")
    assert isinstance(info.value, ConnectionResetError)


BROKEN_BODIES = {
    "content length short": b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
    "chunk short": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nshort",
    "no last chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n",
    "chunk size 0x": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\nab\r\n0\r\n\r\n",
    "chunk size negative": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-2\r\nab\r\n0\r\n\r\n",
    "chunk size underscore": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1_0\r\n" + b"a" * 16,
    "chunk size empty": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\nab\r\n",
    "chunk size huge": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"f" * 17 + b"\r\n",
    "chunk longer than said": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("raw", BROKEN_BODIES.values(), ids=BROKEN_BODIES.keys())
def test_broken_bodies_raise_never_return_a_truncated_body(raw: bytes) -> None:
    with pytest.raises(HTTPError):
        answer(raw).read()
    resp = answer(raw)
    with pytest.raises(HTTPError):
        while resp.read1(3):
            pass


def test_a_cut_short_body_is_incomplete_read() -> None:
    with pytest.raises(IncompleteRead, match="5 of 10"):
        answer(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort").read()


# ---- requests and connections -------------------------------------------------------------------------------

def _request_bytes(headers: dict[str, str], body: bytes, host: str = "127.0.0.1") -> bytes:
    a, b = socket.socketpair()
    conn = Connection(host, 2379)
    conn.sock, conn._fp = a, a.makefile("rb")
    try:
        conn.request("POST", "/v3/kv/range", body, headers)
        a.shutdown(socket.SHUT_WR)
        return b.makefile("rb").read()
    finally:
        conn.close()
        b.close()


def test_request_is_one_http11_post_with_host_and_length() -> None:
    sent = _request_bytes({"Content-Type": "application/json", "Authorization": "tok"}, b'{"key":"YQ=="}')
    assert sent == (b"POST /v3/kv/range HTTP/1.1\r\nHost: 127.0.0.1:2379\r\nContent-Length: 14\r\n"
                    b"Content-Type: application/json\r\nAuthorization: tok\r\n\r\n" + b'{"key":"YQ=="}')
    assert _request_bytes({}, b"", host="::1").startswith(b"POST /v3/kv/range HTTP/1.1\r\nHost: [::1]:2379\r\n")


@pytest.mark.parametrize("headers", [{"Authorization": "a\r\nX-Evil: 1"}, {"X\nY": "1"}, {"A:B": "1"}])
def test_header_injection_is_refused(headers: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="invalid HTTP header"):
        _request_bytes(headers, b"")


@pytest.fixture
def server() -> Iterator[tuple[str, int, list[int]]]:
    """A keep-alive HTTP/1.1 server echoing the body; records the client port of every request."""
    ports: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            ports.append(self.client_address[1])
            if self.path == "/chunked":
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for piece in (body[:3], body[3:]):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.write(b"0\r\n\r\n")
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
    yield "127.0.0.1", srv.server_address[1], ports
    srv.shutdown()
    srv.server_close()


def test_keep_alive_requests_share_one_connection(server: tuple[str, int, list[int]]) -> None:
    host, port, ports = server
    conn = Connection(host, port, timeout=5)
    try:
        for path, body in (("/", b"first"), ("/chunked", b"second answer"), ("/", b"third")):
            conn.request("POST", path, body, {})
            resp = conn.getresponse()
            assert resp.status == 200 and resp.read() == body and not resp.will_close
    finally:
        conn.close()
    assert len(ports) == 3 and len(set(ports)) == 1


def test_read1_returns_a_chunk_without_waiting_for_the_next() -> None:
    a, b = socket.socketpair()
    b.settimeout(5)
    conn = Connection("127.0.0.1", 1, timeout=5)
    conn.sock, conn._fp = b, b.makefile("rb")
    try:
        a.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nline1\n\r\n")
        resp = conn.getresponse()
        assert resp.read1(1 << 16) == b"line1\n"  # would time out if it waited for the next chunk
        a.sendall(b"6\r\nline2\n\r\n0\r\n\r\n")
        assert resp.read1(1 << 16) == b"line2\n" and resp.read1(1 << 16) == b""
    finally:
        conn.close()
        a.close()


def test_connect_refused_is_an_os_error() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with pytest.raises(ConnectionRefusedError):
        Connection("127.0.0.1", port, timeout=2).connect()


# ---- fuzz ------------------------------------------------------------------------------------------------

@pytest.mark.fuzz
@fuzz
@given(st.binary(max_size=120), st.sampled_from([b"", b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 200 OK\r\n"
                                                 b"Transfer-Encoding: chunked\r\n\r\n"]))
def test_fuzz_any_answer_is_a_body_or_http_error(tail: bytes, head: bytes) -> None:
    try:
        resp = answer(head + tail)
        resp.read(10_000)
        resp.read1(100)
    except HTTPError:
        pass


@pytest.mark.fuzz
@fuzz
@given(st.binary(max_size=60), st.integers(0, 1 << 20))
def test_fuzz_chunked_bodies_come_back_whole(body: bytes, shape: int) -> None:
    # one drawn number shapes the encoding (generation is a fuzz target's cost): chunk sizes, extensions, read size
    pieces, rest, bits = [], body, shape
    while rest:
        n = 1 + bits % 23
        bits = bits // 23 or shape
        pieces.append(rest[:n])
        rest = rest[n:]
    ext = b";e=1" if shape & 1 else b""
    raw = b"".join(b"%x%s\r\n%s\r\n" % (len(p), ext, p) for p in pieces)
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + raw + b"0\r\n\r\n"
    assert answer(raw).read() == body
    assert answer(raw).read(len(body) + 1) == body
    resp, piece = answer(raw), 1 + shape % 31
    assert b"".join(iter(lambda: resp.read1(piece), b"")) == body
