"""A loopback server with canned answers, for unit tests of our clients (HTTP/1.1, OVSDB JSON-RPC) without
the real daemon: one definition of accept, framing and shutdown instead of one per test file."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from typing import Any

Framing = Callable[[bytes], "tuple[Any, bytes] | None"]


def http_request(buf: bytes) -> tuple[bytes, bytes] | None:
    """One HTTP request off the front of `buf`: (its head, the rest after its Content-Length body), or None
    while it is incomplete."""
    if b"\r\n\r\n" not in buf:
        return None
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    return None if len(rest) < length else (head, rest[length:])


def json_message(buf: bytes) -> tuple[Any, bytes] | None:
    """One JSON value (a JSON-RPC message, as OVSDB frames them: back to back) off the front of `buf`."""
    text = buf.decode().lstrip()
    if not text:
        return None
    try:
        msg, end = json.JSONDecoder().raw_decode(text)
    except ValueError:
        return None
    return msg, text[end:].encode()


class LoopbackServer:
    """The accept loop of our test peers: every connection to the listening `sock` counted (`accepted`),
    handed to `_accepted` on the accept thread, then served by `_serve` on a thread of its own."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.accepted = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self._accepted(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _accepted(self, conn: socket.socket) -> None:
        """Before the connection's thread starts (the peer may keep it)."""

    def _serve(self, conn: socket.socket) -> None:
        raise NotImplementedError


def listening(unix_path: str | None = None, backlog: int = 16) -> socket.socket:
    """A listening socket: TCP on 127.0.0.1 (a free port), or a unix socket at `unix_path`."""
    if unix_path is None:
        return socket.create_server(("127.0.0.1", 0))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(unix_path)
    sock.listen(backlog)
    return sock


class CannedServer(LoopbackServer):
    """Accepts connections (TCP on 127.0.0.1, or a unix socket at `unix_path`), each on a thread; splits what
    arrives with `framing` and sends `respond(request)` for every request. After `per_connection` answers a
    connection is closed (None: when the client closes). `requests` and `accepted` record what came."""

    def __init__(self, respond: Callable[[Any], bytes], framing: Framing = http_request,
                 per_connection: int | None = None, unix_path: str | None = None) -> None:
        self.respond, self.framing, self.per_connection = respond, framing, per_connection
        self.requests: list[Any] = []
        super().__init__(listening(unix_path))

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            buf, answered = b"", 0
            while self.per_connection is None or answered < self.per_connection:
                while (got := self.framing(buf)) is None:
                    try:
                        piece = conn.recv(65536)
                    except OSError:
                        return
                    if not piece:
                        return
                    buf += piece
                request, buf = got
                self.requests.append(request)
                conn.sendall(self.respond(request))
                answered += 1

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept (close alone does not)
        except OSError:
            pass
        self.sock.close()
        self._thread.join(timeout=5)
