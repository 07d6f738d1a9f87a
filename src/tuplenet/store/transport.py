"""HTTP/1.1 (plain or TLS) to etcd's v3 JSON gateway: a keep-alive pool per endpoint, failover, deadlines, auth.

Retry rule: a request that was never handed to the kernel (connect refused, send failed) is retried on the
next endpoint until the deadline. Idle connections are checked before use (a readable idle socket means etcd
closed it, e.g. it restarted), so a stale connection never costs a send. A request that may have reached etcd
is retried only if the caller says that is harmless (`idempotent`); otherwise the caller gets Unavailable
saying the outcome is unknown, because a blind txn retry could apply twice (and then report its own write as
a conflict). A request refused for its auth token was not executed, so it is retried once with a new token.
TLS failures that repeat on every endpoint are configuration errors: TLSError at once, not Unavailable later.
HTTP is tuplenet.store.http1 (not http.client, whose email import costs every CLI start); `ssl` is imported
only when an https endpoint needs a context, so a plain-http tpctl never loads it. Requests go over
http1.LeanConnection (`_socket`, not the socket module, whose enum conversions and selectors cost ~2.5 ms of
every tpctl/tpcni start); the watch's long stream keeps http1.Connection.
"""

from __future__ import annotations

import _socket
import select
import sys
import threading
import time
from collections.abc import Callable

from . import jsonlite
from .auth import Auth
from .endpoints import parse_endpoints
from .errors import (
    GRPC_INVALID_ARGUMENT,
    GRPC_NOT_FOUND,
    GRPC_OUT_OF_RANGE,
    GRPC_UNAVAILABLE,
    AuthFailed,
    Compacted,
    MalformedAnswer,
    StoreError,
    TLSError,
    Unavailable,
)
from .http1 import NET_ERRORS as _NET_ERRORS
from .http1 import Connection, LeanConnection, RemoteDisconnected
from .security import EtcdSecurity

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from collections.abc import Sequence
    from typing import Any

__all__ = ["GRPC_NOT_FOUND", "EtcdError", "Transport", "gateway_error"]
_HEADERS = {"Content-Type": "application/json"}
BACKOFF_MIN = 0.05
BACKOFF_MAX = 1.0
MAX_ANSWER = 256 << 20  # a peer must not fill memory; etcd's pages here stay far below (see Store.get_prefix)
TLS_PASSES = 2  # rotations in a row where every endpoint failed TLS before that is reported as TLSError


class EtcdError(StoreError):
    """etcd answered with an error status; `code` is the gRPC code (5 not found, 11 out of range, ...)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class _Retry(Exception):
    """Internal: this endpoint failed in a way that is safe to retry elsewhere; `tls` marks TLS failures."""

    def __init__(self, message: str, tls: bool = False) -> None:
        super().__init__(message)
        self.tls = tls


def enable_keepalive(sock: socket.socket, idle: int = 5, interval: int = 2, count: int = 3) -> None:
    """TCP keepalive so a watch notices a vanished peer (host down, cable cut) in ~idle+interval*count s."""
    sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", idle), ("TCP_KEEPINTVL", interval), ("TCP_KEEPCNT", count)):
        opt = getattr(_socket, name, None)
        if opt is not None:
            sock.setsockopt(_socket.IPPROTO_TCP, opt, value)


def one_line(text: str, limit: int = 300) -> str:
    """Whatever a peer sent, as one bounded line fit for a log or an error message."""
    return " ".join(text.split())[:limit]


def gateway_error(path: str, status: int, data: bytes) -> StoreError:
    """Map an error answer of the gateway (or of anything else on that port) to a one-line exception."""
    try:
        body = jsonlite.loads(data)
    except (ValueError, RecursionError):
        body = None
    if not isinstance(body, dict):
        text = one_line(data[:4096].decode("utf-8", "replace"), 200)
        if "CommonName" in text:
            text += (" (with --client-cert-auth, etcd's JSON gateway needs a client certificate without a CN;"
                     " name the user with --user)")
        return StoreError(f"etcd {path}: HTTP {status}: {text}" if text else f"etcd {path}: HTTP {status}")
    message = body.get("message") or body.get("error")
    message = one_line(str(message)) if message else f"HTTP {status}"
    code = body.get("code")
    if type(code) is not int or not 0 <= code < 1 << 16:
        code = 0
    if code == GRPC_OUT_OF_RANGE and "compacted" in message:
        return Compacted(0, f"etcd {path}: {message}")
    return EtcdError(f"etcd {path}: {message}", code)


def decode_answer(path: str, data: bytes) -> dict[str, Any]:
    """A 200 answer's JSON object; MalformedAnswer for anything else (HTML, truncated JSON, a list...)."""
    if not data:
        return {}
    try:
        answer = jsonlite.loads(data)
    except (ValueError, RecursionError):
        answer = None
    if not isinstance(answer, dict):
        snippet = one_line(data[:200].decode("utf-8", "replace"), 80)
        raise MalformedAnswer(f"etcd {path}: the answer is not a JSON object: {snippet!r}")
    return answer


def authenticate(request: Callable[..., dict], user: str, password: str, timeout: float | None) -> str:
    """A fresh token for `user` ("" if etcd has authentication disabled), through either transport's
    `request` (the gRPC one maps the same path to Auth.Authenticate)."""
    try:
        answer = request("/v3/auth/authenticate", {"name": user, "password": password}, timeout=timeout)
    except EtcdError as exc:
        text = str(exc)
        if "authentication is not enabled" in text:
            return ""
        if exc.code == GRPC_INVALID_ARGUMENT or "authentication failed" in text:
            raise AuthFailed(f"etcd authentication as user {user!r} failed: "
                             f"{text.split(': ', 1)[-1]}") from None
        raise
    token = answer.get("token")
    if not isinstance(token, str) or not token.isascii() or not token.isprintable() or " " in token:
        raise MalformedAnswer("etcd /v3/auth/authenticate: the answer has no usable token")
    return token


class Transport:
    """Endpoints, their idle keep-alive connections, the request loop with failover, and the auth token."""

    def __init__(self, endpoints: str | Sequence[str], timeout: float = 5.0,
                 security: EtcdSecurity | None = None) -> None:
        self.security = security or EtcdSecurity()
        self.endpoints = parse_endpoints(endpoints, self.security.tls)
        self.names = [f"{h}:{p}" if ":" not in h else f"[{h}]:{p}" for h, p, _ in self.endpoints]
        self.timeout = timeout
        self.preferred = 0  # the endpoint that answered last; tried first
        self._ssl = self.security.ssl_context() if any(e.tls for e in self.endpoints) else None
        self.auth = Auth(self.security, self._authenticate)
        self._idle: list[list[Connection]] = [[] for _ in self.endpoints]
        self._unused: set[Connection] = set()  # opened ahead by preconnect(): still "fresh" to its first request
        self._lock = threading.Lock()
        self._closed = False

    def rotation(self) -> list[int]:
        n, start = len(self.endpoints), self.preferred
        return [(start + k) % n for k in range(n)]

    def new_connection(self, index: int, timeout: float, lean: bool = False) -> Connection:
        """A connection to endpoint `index`; `lean` for request/answer use (a LeanConnection: the same HTTP,
        without the socket module on plain TCP). The watch's stream asks for a socket-module one."""
        host, port, tls = self.endpoints[index]
        return (LeanConnection if lean else Connection)(host, port, timeout, self._ssl if tls else None)

    def headers(self, token: str | None) -> dict[str, str]:
        return {**_HEADERS, "Authorization": token} if token else _HEADERS

    def attempt_timeout(self, budget: float) -> float:
        """Time one endpoint gets per attempt: with several endpoints a blackholed or hung one must not eat
        the whole deadline before the next is tried (a healthy etcd answers a bounded request in ms)."""
        if len(self.endpoints) == 1:
            return budget
        return max(1.0, budget / len(self.endpoints))

    def _acquire(self, index: int, timeout: float) -> tuple[Connection, bool]:
        while True:
            with self._lock:
                if self._closed:
                    raise StoreError("store is closed")
                idle = self._idle[index]
                conn = idle.pop() if idle else None
                fresh = conn in self._unused
                self._unused.discard(conn)  # type: ignore[arg-type]
            if conn is None:
                break
            if conn.sock is None or _peer_closed(conn.sock):
                conn.close()  # etcd restarted or dropped it while idle: never send on it
                continue
            conn.timeout = timeout
            conn.sock.settimeout(timeout)
            return conn, not fresh
        conn = self.new_connection(index, timeout, lean=True)
        try:
            conn.connect()
        except _NET_ERRORS as exc:
            conn.close()
            tls = connect_tls_failure(exc)
            raise _Retry(tls or _describe(exc), tls is not None) from exc
        conn.sock.settimeout(timeout)
        return conn, False

    def _release(self, index: int, conn: Connection, unused: bool = False) -> None:
        with self._lock:
            if not self._closed:
                self._idle[index].append(conn)
                if unused:
                    self._unused.add(conn)
                return
        conn.close()

    def preconnect(self) -> None:
        """Open a connection to the preferred endpoint and leave it idle for the first request (blocks for the
        handshake; any failure is left to that request, which meets it on its own)."""
        index = self.preferred
        try:
            conn, _ = self._acquire(index, self.attempt_timeout(self.timeout))
        except Exception:  # noqa: BLE001 - best effort: the request meets (and reports) the same failure
            return
        self._release(index, conn, unused=True)

    def _roundtrip(self, index: int, path: str, payload: bytes, timeout: float, idempotent: bool,
                   headers: dict[str, str]) -> tuple[int, bytes]:
        conn, reused = self._acquire(index, timeout)
        # A fresh TLS connection that fails right after the handshake: the usual sign of a refused client
        # certificate (TLS 1.3 reports it only after the handshake, at the next send or read).
        try:
            conn.request("POST", path, payload, headers)
        except _NET_ERRORS as exc:
            conn.close()
            tls = self._cert_refused(index, reused, exc)
            raise _Retry(tls or _describe(exc), tls is not None) from exc  # not sent: etcd did not act on it
        try:
            resp = conn.getresponse()
            data = resp.read(MAX_ANSWER + 1)
        except _NET_ERRORS as exc:
            conn.close()
            tls = self._cert_refused(index, reused, exc)
            why = tls or _describe(exc)
            if not reused and isinstance(exc, RemoteDisconnected) and not self.endpoints[index].tls:
                why += " (is it an https endpoint? give it as https://)"
            if idempotent:
                raise _Retry(why, tls is not None) from exc
            raise Unavailable(f"etcd {path} on {self.names[index]}: {why}; "
                              "the outcome of this write is unknown", self.names) from exc
        if len(data) > MAX_ANSWER:
            conn.close()
            raise MalformedAnswer(f"etcd {path} on {self.names[index]}: an answer longer than {MAX_ANSWER} bytes")
        if resp.will_close:
            conn.close()
        else:
            self._release(index, conn)
        return resp.status, data

    def _cert_refused(self, index: int, reused: bool, exc: BaseException) -> str | None:
        if reused or not self.endpoints[index].tls:
            return None
        ssl = sys.modules.get("ssl")  # an https endpoint has loaded it
        refused = ConnectionError if ssl is None else (ssl.SSLError, ConnectionError)
        return _CERT_REFUSED if isinstance(exc, refused) else None

    def call(self, path: str, body: dict[str, Any], idempotent: bool = True,
             timeout: float | None = None) -> dict[str, Any]:
        """POST `body` to `path` on the first endpoint that answers; the answer's JSON object or an exception.

        With a user configured the request carries a token, fetched on first use and again when etcd says it
        expired (the refused request did not run, so it is sent again even if not idempotent).
        """
        return self.auth.send(lambda token, t: self.request(path, body, idempotent, t, token), EtcdError, timeout)

    def request(self, path: str, body: dict[str, Any], idempotent: bool = True, timeout: float | None = None,
                token: str | None = None) -> dict[str, Any]:
        """One request with failover until the deadline, carrying `token` as is (no auth handling)."""
        budget = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + budget
        payload = jsonlite.dumps(body, separators=(",", ":")).encode()
        headers = self.headers(token)
        failures: dict[str, str] = {}
        delay = BACKOFF_MIN
        per_attempt = self.attempt_timeout(budget)
        tls_passes = 0
        while True:
            tls_only = True
            for index in self.rotation():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    tls_only = False
                    break
                try:
                    status, data = self._roundtrip(index, path, payload, min(remaining, per_attempt),
                                                   idempotent, headers)
                except _Retry as exc:
                    failures[self.names[index]] = str(exc)
                    tls_only &= exc.tls
                    if index == self.preferred:  # later calls start with the next endpoint
                        self.preferred = (index + 1) % len(self.endpoints)
                    continue
                if status == 200:
                    self.preferred = index
                    return decode_answer(path, data)
                err = gateway_error(path, status, data)
                if isinstance(err, EtcdError) and err.code == GRPC_UNAVAILABLE:
                    if not idempotent:  # e.g. "request timed out": it may still be applied
                        raise Unavailable(f"{err}; the outcome of this write is unknown", self.names) from err
                    failures[self.names[index]] = str(err)
                    tls_only = False
                    continue
                raise err
            tls_passes = tls_passes + 1 if tls_only else 0
            if tls_passes >= TLS_PASSES:
                raise TLSError(f"etcd TLS failed: {self._failure_detail(failures)}")
            if time.monotonic() + delay >= deadline:
                raise Unavailable(self._unavailable_message(budget, failures), self.names)
            time.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)

    def _authenticate(self, user: str, password: str, timeout: float | None) -> str:
        return authenticate(self.request, user, password, timeout)

    def _failure_detail(self, failures: dict[str, str]) -> str:
        return "; ".join(f"{name}: {why}" for name, why in failures.items())

    def _unavailable_message(self, budget: float, failures: dict[str, str]) -> str:
        detail = self._failure_detail(failures)
        return (f"etcd unavailable: no answer from {', '.join(self.names)} within {budget:g}s"
                + (f" ({detail})" if detail else ""))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, [[] for _ in self.endpoints]
            self._unused.clear()
        for conns in idle:
            for conn in conns:
                conn.close()


_CERT_REFUSED = ("etcd closed the TLS connection without answering: client certificate missing or not "
                 "signed by a CA etcd trusts? (check --cert/--key)")


def connect_tls_failure(exc: BaseException) -> str | None:
    """What a failed TLS handshake says about the configuration, or None if it was no TLS failure."""
    ssl = sys.modules.get("ssl")
    if ssl is None:  # never loaded: no TLS was attempted
        return None
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"etcd's certificate is not trusted: {exc.verify_message or exc.reason} (check --cacert)"
    if isinstance(exc, ssl.SSLError):
        return (f"TLS handshake failed ({exc.reason or _describe(exc)}): is this endpoint serving https? "
                "(check the endpoint's scheme, --cert/--key)")
    return None


def _peer_closed(sock: socket.socket) -> bool:
    """An idle keep-alive socket that is readable has seen EOF or a reset (HTTP sends nothing unasked)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError
        return "timed out"
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]
