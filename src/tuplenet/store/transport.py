"""HTTP/1.1 to etcd's v3 JSON gateway: one keep-alive connection pool per endpoint, failover, deadlines.

Retry rule: a request that was never handed to the kernel (connect refused, send failed) is retried on the
next endpoint until the deadline. Idle connections are checked before use (a readable idle socket means etcd
closed it, e.g. it restarted), so a stale connection never costs a send. A request that may have reached etcd
is retried only if the caller says that is harmless (`idempotent`); otherwise the caller gets Unavailable
saying the outcome is unknown, because a blind txn retry could apply twice (and then report its own write as
a conflict).
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

from .errors import Compacted, StoreError, Unavailable

_HEADERS = {"Content-Type": "application/json"}
_NET_ERRORS = (OSError, http.client.HTTPException)
GRPC_NOT_FOUND = 5
GRPC_OUT_OF_RANGE = 11
GRPC_UNAVAILABLE = 14
BACKOFF_MIN = 0.05
BACKOFF_MAX = 1.0


class EtcdError(StoreError):
    """etcd answered with an error status; `code` is the gRPC code (5 not found, 11 out of range, ...)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class _Retry(Exception):
    """Internal: this endpoint failed in a way that is safe to retry elsewhere."""


def parse_endpoints(endpoints: str | Sequence[str]) -> list[tuple[str, int]]:
    """ "h:p,h:p" or ["h:p", "http://h:p", "[::1]:p"] -> [(host, port)]; port defaults to 2379."""
    items = endpoints.split(",") if isinstance(endpoints, str) else list(endpoints)
    out: list[tuple[str, int]] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        if item.startswith("https://"):
            raise StoreError(f"endpoint {item}: TLS is not supported by this client; use http://")
        item = item.removeprefix("http://").rstrip("/")
        host, sep, port = item.rpartition(":")
        if not sep or host.endswith(":") or (host.count(":") and not host.startswith("[")):
            host, port = item, "2379"  # no port, or a bare IPv6 address
        host = host.strip("[]")
        try:
            out.append((host, int(port)))
        except ValueError:
            raise StoreError(f"bad etcd endpoint {item!r}: expected host:port") from None
    if not out:
        raise StoreError("no etcd endpoints given")
    return out


def enable_keepalive(sock: socket.socket, idle: int = 5, interval: int = 2, count: int = 3) -> None:
    """TCP keepalive so a watch notices a vanished peer (host down, cable cut) in ~idle+interval*count s."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", idle), ("TCP_KEEPINTVL", interval), ("TCP_KEEPCNT", count)):
        opt = getattr(socket, name, None)
        if opt is not None:
            sock.setsockopt(socket.IPPROTO_TCP, opt, value)


def gateway_error(path: str, status: int, data: bytes) -> StoreError:
    """Map an error answer of the gateway to an exception with a one-line message."""
    try:
        body = json.loads(data)
        message, code = str(body.get("message") or body.get("error")), int(body.get("code", 0))
    except (ValueError, AttributeError):
        text = data.decode("utf-8", "replace").strip().splitlines()
        return StoreError(f"etcd {path}: HTTP {status}: {text[0][:200] if text else ''}")
    if code == GRPC_OUT_OF_RANGE and "compacted" in message:
        return Compacted(0, f"etcd {path}: {message}")
    return EtcdError(f"etcd {path}: {message}", code)


class Transport:
    """Endpoints, their idle keep-alive connections, and the request loop with failover."""

    def __init__(self, endpoints: str | Sequence[str], timeout: float = 5.0) -> None:
        self.endpoints = parse_endpoints(endpoints)
        self.names = [f"{h}:{p}" if ":" not in h else f"[{h}]:{p}" for h, p in self.endpoints]
        self.timeout = timeout
        self.preferred = 0  # the endpoint that answered last; tried first
        self._idle: list[list[http.client.HTTPConnection]] = [[] for _ in self.endpoints]
        self._lock = threading.Lock()
        self._closed = False

    def rotation(self) -> list[int]:
        n, start = len(self.endpoints), self.preferred
        return [(start + k) % n for k in range(n)]

    def new_connection(self, index: int, timeout: float) -> http.client.HTTPConnection:
        host, port = self.endpoints[index]
        return http.client.HTTPConnection(host, port, timeout=timeout)

    def attempt_timeout(self, budget: float) -> float:
        """Time one endpoint gets per attempt: with several endpoints a blackholed or hung one must not eat
        the whole deadline before the next is tried (a healthy etcd answers a bounded request in ms)."""
        if len(self.endpoints) == 1:
            return budget
        return max(1.0, budget / len(self.endpoints))

    def _acquire(self, index: int, timeout: float) -> tuple[http.client.HTTPConnection, bool]:
        while True:
            with self._lock:
                if self._closed:
                    raise StoreError("store is closed")
                idle = self._idle[index]
                conn = idle.pop() if idle else None
            if conn is None:
                break
            if conn.sock is None or _peer_closed(conn.sock):
                conn.close()  # etcd restarted or dropped it while idle: never send on it
                continue
            conn.timeout = timeout
            conn.sock.settimeout(timeout)
            return conn, True
        conn = self.new_connection(index, timeout)
        try:
            conn.connect()
        except _NET_ERRORS as exc:
            conn.close()
            raise _Retry(_describe(exc)) from exc
        conn.sock.settimeout(timeout)
        return conn, False

    def _release(self, index: int, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self._closed:
                self._idle[index].append(conn)
                return
        conn.close()

    def _roundtrip(self, index: int, path: str, payload: bytes, timeout: float,
                   idempotent: bool) -> tuple[int, bytes]:
        conn, _ = self._acquire(index, timeout)
        try:
            conn.request("POST", path, payload, _HEADERS)
        except _NET_ERRORS as exc:
            conn.close()
            raise _Retry(_describe(exc)) from exc  # not (completely) sent: etcd cannot have acted on it
        try:
            resp = conn.getresponse()
            data = resp.read()
        except _NET_ERRORS as exc:
            conn.close()
            if idempotent:
                raise _Retry(_describe(exc)) from exc
            raise Unavailable(f"etcd {path} on {self.names[index]}: {_describe(exc)}; "
                              "the outcome of this write is unknown", self.names) from exc
        if resp.will_close:
            conn.close()
        else:
            self._release(index, conn)
        return resp.status, data

    def call(self, path: str, body: dict[str, Any], idempotent: bool = True,
             timeout: float | None = None) -> dict[str, Any]:
        """POST `body` to `path` on the first endpoint that answers; parsed JSON answer or an exception."""
        budget = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + budget
        payload = json.dumps(body, separators=(",", ":")).encode()
        failures: dict[str, str] = {}
        delay = BACKOFF_MIN
        per_attempt = self.attempt_timeout(budget)
        while True:
            for index in self.rotation():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    status, data = self._roundtrip(index, path, payload, min(remaining, per_attempt),
                                                   idempotent)
                except _Retry as exc:
                    failures[self.names[index]] = str(exc)
                    if index == self.preferred:  # later calls start with the next endpoint
                        self.preferred = (index + 1) % len(self.endpoints)
                    continue
                if status == 200:
                    self.preferred = index
                    return json.loads(data) if data else {}
                err = gateway_error(path, status, data)
                if isinstance(err, EtcdError) and err.code == GRPC_UNAVAILABLE:
                    if not idempotent:  # e.g. "request timed out": it may still be applied
                        raise Unavailable(f"{err}; the outcome of this write is unknown", self.names) from err
                    failures[self.names[index]] = str(err)
                    continue
                raise err
            if time.monotonic() + delay >= deadline:
                raise Unavailable(self._unavailable_message(budget, failures), self.names)
            time.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)

    def _unavailable_message(self, budget: float, failures: dict[str, str]) -> str:
        detail = "; ".join(f"{name}: {why}" for name, why in failures.items())
        return (f"etcd unavailable: no answer from {', '.join(self.names)} within {budget:g}s"
                + (f" ({detail})" if detail else ""))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, [[] for _ in self.endpoints]
        for conns in idle:
            for conn in conns:
                conn.close()


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
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]
