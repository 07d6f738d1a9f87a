"""tuplenet.store.http1.LeanConnection, the `_socket`-only connection of the thin `tpctl trace --api` client:
the same answers as a Connection (keep-alive, chunked, read to the end), the same OSError kinds when the
peer is absent or silent, and a TLS context still handled by the socket module."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterator

import pytest
from canned_server import CannedServer

from tuplenet.store.http1 import LeanConnection

Peer = Callable[[list[bytes]], tuple[int, list[bytes]]]


@pytest.fixture
def peer() -> Iterator[Peer]:
    """peer(answers) -> (port, request heads): a loopback server that reads a request head and sends the next
    answer until none is left, then closes the connection."""
    servers: list[CannedServer] = []

    def start(answers: list[bytes]) -> tuple[int, list[bytes]]:
        left = iter(answers)
        srv = CannedServer(lambda _head: next(left), per_connection=len(answers))
        servers.append(srv)
        return srv.port, srv.requests

    yield start
    for srv in servers:
        srv.close()


def test_keep_alive_answers_of_every_framing_on_one_connection(peer: Peer) -> None:
    big = bytes(range(256)) * 1000  # many reads of the BufferedReader
    port, heads = peer([b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
                        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(big), big)])
    conn = LeanConnection("127.0.0.1", port, timeout=5)
    try:
        bodies = []
        for path in ("/a", "/b", "/c"):
            conn.request("GET", path, b"", {"Accept": "text/plain"})
            resp = conn.getresponse()
            assert resp.status == 200 and not resp.will_close
            bodies.append(resp.read())
        assert bodies == [b"hello", b"abcde", big]
        assert not isinstance(conn.sock, socket.socket)  # a bare _socket.socket
    finally:
        conn.close()
    assert [h.split(b"\r\n")[0] for h in heads] == [b"GET /a HTTP/1.1", b"GET /b HTTP/1.1", b"GET /c HTTP/1.1"]
    assert b"\r\nHost: 127.0.0.1:%d\r\n" % port in heads[0] + b"\r\n"


def test_an_answer_without_length_runs_to_the_close(peer: Peer) -> None:
    port, _ = peer([b"HTTP/1.0 404 Not Found\r\n\r\n" + b"x" * 100_000])
    conn = LeanConnection("localhost", port, timeout=5)  # a name to resolve, as a URL gives it
    try:
        conn.request("GET", "/", b"", {})
        resp = conn.getresponse()
        assert resp.status == 404 and resp.will_close and resp.read() == b"x" * 100_000
    finally:
        conn.close()


def test_refused_and_silent_peers_are_the_os_errors_a_connection_raises(peer: Peer) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    free = probe.getsockname()[1]
    probe.close()
    with pytest.raises(ConnectionRefusedError):
        LeanConnection("127.0.0.1", free, timeout=2).connect()
    silent = socket.create_server(("127.0.0.1", 0))  # accepts (the kernel does) and never answers
    conn = LeanConnection("127.0.0.1", silent.getsockname()[1], timeout=0.2)
    try:
        conn.request("GET", "/", b"", {})
        with pytest.raises(TimeoutError):
            conn.getresponse()
    finally:
        conn.close()
        silent.close()
    with pytest.raises(OSError):
        LeanConnection("no-such-host.invalid", 80, timeout=2).connect()


def test_a_tls_context_gets_a_socket_module_connection() -> None:
    srv = socket.create_server(("127.0.0.1", 0))

    def plain_text_peer() -> None:  # answers a ClientHello with plain HTTP
        conn, _ = srv.accept()
        with conn:
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=plain_text_peer, daemon=True)
    thread.start()
    conn = LeanConnection("127.0.0.1", srv.getsockname()[1], timeout=5, context=ssl.create_default_context())
    try:
        with pytest.raises(ssl.SSLError):
            conn.connect()  # the handshake ran through ssl's socket and failed on the plain answer
    finally:
        conn.close()
        thread.join(timeout=5)
        srv.close()
