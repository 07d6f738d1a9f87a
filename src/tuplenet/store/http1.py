"""A small HTTP/1.1 client for etcd's JSON gateway: POST on a keep-alive connection, answers framed by
Content-Length, chunked transfer coding or the connection's end, and read1() for the watch's stream.

Why not http.client: importing it loads the email package to parse headers, a quarter of every tpctl and
tpcni start. The gateway needs three headers (Content-Length, Transfer-Encoding, Connection), so this module
needs only socket; https goes through the caller's ssl context (ssl is imported only by whoever builds it).
LeanConnection does without even the socket module (its enum classes cost ~8 ms of a start): the thin
`tpctl trace --api` client speaks plain HTTP over `_socket` itself.
A peer that breaks the framing (bad status line, header, chunk size, an answer cut short) raises HTTPError;
network failures stay OSError. A truncated answer is never returned as if complete.
"""

from __future__ import annotations

import _socket
import io

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    import ssl
    from io import BufferedReader

__all__ = ["NET_ERRORS", "Connection", "HTTPError", "IncompleteRead", "LeanConnection", "RemoteDisconnected",
           "Response"]
MAX_LINE = 65536  # a status, header or chunk-size line (as http.client)
MAX_HEADERS = 100
_HEX = b"0123456789abcdefABCDEF"


class HTTPError(Exception):
    """The peer does not speak HTTP/1.1 as framed here (one line, bounded, for an error message)."""


class RemoteDisconnected(ConnectionResetError, HTTPError):
    """The connection ended before a status line arrived (typically an idle connection the server dropped)."""


class IncompleteRead(HTTPError):
    """The answer ended before its body was complete."""


NET_ERRORS = (OSError, HTTPError)


def _resolvable(host: str) -> str | bytes:
    """The host for getaddrinfo: as ASCII bytes when its idna encoding would be the same bytes (every label
    1-63 ASCII characters), which spares the idna codec's import (~1.5 ms of each tpctl/tpcni start)."""
    labels = host.split(".")
    if labels[-1] == "" and len(labels) > 1:
        labels.pop()  # a trailing dot
    if host.isascii() and all(0 < len(label) < 64 for label in labels):
        return host.encode("ascii")
    return host


class Connection:
    """One connection to host:port (TLS with `context`); requests go one at a time, each answer read fully
    (or the connection closed) before the next request. Not thread-safe: the transport pools them."""

    def __init__(self, host: str, port: int, timeout: float | None = None,
                 context: ssl.SSLContext | None = None) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.context = context
        self.sock: socket.socket | None = None
        self._fp: BufferedReader | None = None

    def connect(self) -> None:
        import socket

        sock = socket.create_connection((_resolvable(self.host), self.port), self.timeout)
        try:
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            if self.context is not None:
                sock = self.context.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self._fp = sock.makefile("rb")

    def request(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> None:
        """Send one request (head and body in one write); connects first if needed."""
        if self.sock is None:
            self.connect()
        host = f"[{self.host}]" if ":" in self.host else self.host
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{self.port}", f"Content-Length: {len(body)}"]
        for name, value in headers.items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
                raise ValueError(f"invalid HTTP header {name!r}")
            lines.append(f"{name}: {value}")
        lines.append("\r\n")
        assert self.sock is not None
        self.sock.sendall("\r\n".join(lines).encode("latin-1") + body)

    def getresponse(self) -> Response:
        """The answer's status and headers; read its body from the Response."""
        if self._fp is None:
            raise HTTPError("not connected")
        return Response(self._fp)

    def close(self) -> None:
        fp, sock = self._fp, self.sock
        self._fp = self.sock = None
        if fp is not None:
            fp.close()
        if sock is not None:
            sock.close()


class LeanConnection(Connection):
    """A Connection whose plain-TCP sockets are `_socket` objects read through a BufferedReader of their own:
    no `socket` module (IntEnum conversion of every constant, selectors) for a one-request client. `sock` is
    then a `_socket.socket` (settimeout, recv_into, close; no makefile). With a TLS context it is a Connection:
    ssl imports socket anyway."""

    def connect(self) -> None:
        if self.context is not None:
            super().connect()
            return
        sock = _create_connection(_resolvable(self.host), self.port, self.timeout)
        self.sock = sock  # type: ignore[assignment]
        self._fp = io.BufferedReader(_SocketReader(sock))


def _create_connection(host: str | bytes, port: int, timeout: float | None) -> _socket.socket:
    """socket.create_connection's loop over getaddrinfo's answers, with _socket only (no source address)."""
    last: OSError | None = None
    for family, kind, proto, _name, address in _socket.getaddrinfo(host, port, 0, _socket.SOCK_STREAM):
        sock = _socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
    raise last or OSError(f"getaddrinfo returned no address for {host!r}")


class _SocketReader(io.RawIOBase):
    """The receiving side of a `_socket.socket` as a raw stream (what socket.makefile("rb") wraps). Closing
    it leaves the socket open: the Connection closes that."""

    def __init__(self, sock: _socket.socket) -> None:
        super().__init__()
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        return self._sock.recv_into(buffer)


class Response:
    """Status line and headers parsed on creation; the body is read with read() or read1()."""

    def __init__(self, fp: BufferedReader) -> None:
        self._fp = fp
        while True:
            version, self.status = _status_line(fp)
            self.headers = _headers(fp)
            if not 100 <= self.status < 200:
                break  # 1xx answers are interim: the real one follows
        self._done = False
        self._chunked = False
        self._chunk_left: int | None = None  # chunked: None = a size line is next, 0 = a chunk's CRLF is next
        self._left: int | None = None  # Content-Length framing: body bytes still to read
        conn = {t.strip().lower() for t in self.headers.get("connection", "").split(",")}
        self.will_close = "close" in conn or (version == "HTTP/1.0" and "keep-alive" not in conn)
        codings = self.headers.get("transfer-encoding", "").lower()
        if self.status in (204, 304):
            self._left = 0
        elif codings:
            if codings.rsplit(",", 1)[-1].strip() == "chunked":
                self._chunked = True
            else:  # any other final coding: the body runs to the connection's end (RFC 9112 6.3)
                self.will_close = True
        elif "content-length" in self.headers:
            self._left = _content_length(self.headers["content-length"])
        else:
            self.will_close = True
        if self._left == 0:
            self._done = True

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def read(self, amt: int | None = None) -> bytes:
        """The body (at most `amt` bytes of it): b"" once it was read to its end."""
        if self._done:
            return b""
        if self._chunked:
            return self._read_chunked(amt)
        left = self._left
        if left is None:  # until the connection ends
            return self._read_to_close(amt)
        n = left if amt is None else min(amt, left)
        data = self._fp.read(n)
        self._left = left - len(data)
        if len(data) < n:
            self._done = True
            raise IncompleteRead(f"answer cut short: {self._left} of {left} body bytes missing")
        if self._left == 0:
            self._done = True
        return data

    def read1(self, n: int) -> bytes:
        """Up to `n` body bytes with at most one read from the network (a stream's next piece); b"" at the end."""
        if self._done:
            return b""
        if self._chunked:
            left = self._next_chunk()
            if not left:
                return b""
            data = self._fp.read1(min(n, left))
            if not data:
                self._done = True
                raise IncompleteRead("answer cut short inside a chunk")
            self._chunk_left = left - len(data)
            return data
        left = self._left
        data = self._fp.read1(n if left is None else min(n, left))
        if left is None:
            if not data:
                self._done = True
            return data
        if not data:
            self._done = True
            raise IncompleteRead(f"answer cut short: {left} body bytes missing")
        self._left = left - len(data)
        if self._left == 0:
            self._done = True
        return data

    def _read_to_close(self, amt: int | None) -> bytes:
        parts: list[bytes] = []
        size = 0
        while amt is None or size < amt:
            piece = self._fp.read1(1 << 16 if amt is None else min(1 << 16, amt - size))
            if not piece:
                self._done = True
                break
            parts.append(piece)
            size += len(piece)
        return b"".join(parts)

    def _read_chunked(self, amt: int | None) -> bytes:
        parts: list[bytes] = []
        size = 0
        while amt is None or size < amt:
            left = self._next_chunk()
            if not left:
                break
            n = left if amt is None else min(left, amt - size)
            data = self._fp.read(n)
            if len(data) < n:
                self._done = True
                raise IncompleteRead("answer cut short inside a chunk")
            self._chunk_left = left - n
            parts.append(data)
            size += n
        return b"".join(parts)

    def _next_chunk(self) -> int:
        """Bytes left in the current chunk, reading the next chunk's header when needed; 0 at the body's end."""
        left = self._chunk_left
        if left:
            return left
        fp = self._fp
        if left == 0:  # the CRLF that ends a chunk's data
            if _line(fp, "chunk end").strip():
                self._done = True
                raise HTTPError("bad chunked answer: data after a chunk's announced size")
        text = _line(fp, "chunk size").split(b";", 1)[0].strip()
        if not text or len(text) > 16 or text.translate(None, _HEX):
            self._done = True
            raise HTTPError(f"bad chunk size line: {text[:40]!r}")
        size = int(text, 16)
        if size == 0:
            _headers(fp)  # trailers, ignored
            self._done = True
            self._chunk_left = None
            return 0
        self._chunk_left = size
        return size


def _line(fp: BufferedReader, what: str) -> bytes:
    line = fp.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise HTTPError(f"{what} line longer than {MAX_LINE} bytes")
    if not line.endswith(b"\n"):
        raise IncompleteRead(f"answer cut short in a {what} line")
    return line


def _status_line(fp: BufferedReader) -> tuple[str, int]:
    line = fp.readline(MAX_LINE + 1)
    if not line:
        raise RemoteDisconnected("the server closed the connection without answering")
    if len(line) > MAX_LINE:
        raise HTTPError(f"status line longer than {MAX_LINE} bytes")
    parts = line.decode("latin-1").split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or len(parts[1]) != 3 or not parts[1].isdigit():
        raise HTTPError(f"not an HTTP/1.x answer: {' '.join(line[:80].decode('latin-1').split())!r}")
    return parts[0], int(parts[1])


def _headers(fp: BufferedReader) -> dict[str, str]:
    """Header lines up to the empty one, names lower-cased; lines without a name are skipped."""
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        line = _line(fp, "header")
        if line in (b"\r\n", b"\n"):
            return headers
        if line[:1] in (b" ", b"\t"):
            continue  # an obsolete folded continuation line
        name, sep, value = line.decode("latin-1").partition(":")
        name = name.strip().lower()
        if not sep or not name:
            continue
        value = value.strip()
        if name in headers and name in ("content-length", "transfer-encoding"):
            if name == "content-length" and headers[name] != value:
                raise HTTPError("conflicting Content-Length headers")
            value = f"{headers[name]}, {value}" if name == "transfer-encoding" else value
        headers[name] = value
    raise HTTPError(f"more than {MAX_HEADERS} header lines")


def _content_length(text: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise HTTPError(f"bad Content-Length {text[:40]!r}")
    return int(text)
