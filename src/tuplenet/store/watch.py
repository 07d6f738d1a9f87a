"""A watch that survives disconnects and etcd restarts without losing or repeating an event.

The stream is /v3/watch: one JSON object per line over a chunked HTTP/1.1 response. The watch remembers the
last revision it delivered; after any connection problem it reconnects (50 ms .. 1 s backoff, rotating over
the endpoints) with start_revision = last + 1 and drops any replayed event at or below `last`. A line that
cannot be decoded is counted, logged and treated like a broken connection (resume, so nothing is lost); an
expired auth token is renewed before the watch resumes.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable, Iterator

from .auth import token_refused
from .codec import WatchMessage, decode_watch_line, range_fields, to_bytes
from .errors import GRPC_PERMISSION_DENIED, AuthFailed, Compacted, MalformedAnswer, StoreError
from .http1 import Connection, HTTPError, Response
from .transport import (
    BACKOFF_MAX,
    BACKOFF_MIN,
    EtcdError,
    Transport,
    connect_tls_failure,
    enable_keepalive,
    gateway_error,
    one_line,
)
from .types import Event, WatchBatch

log = logging.getLogger("tuplenet.store")
_READ_SIZE = 1 << 16
MAX_LINE = 256 << 20  # far above any etcd watch answer (requests are capped at 1.5 MiB by default)
_NET_ERRORS = (OSError, HTTPError, ValueError)


class _StreamEnded(Exception):
    """Internal: the server closed the stream or cancelled the watch; reconnect. `renew`: etcd refused the
    token, so the next connect renews it (and trying the other endpoints with it first is pointless)."""

    def __init__(self, message: str, renew: bool = False) -> None:
        super().__init__(message)
        self.renew = renew


def iter_lines(read1: Callable[[int], bytes], max_line: int = MAX_LINE) -> Iterator[bytes]:
    """Split a byte stream (read1() -> chunk, b"" at EOF) into lines without quadratic copying.

    MalformedAnswer for a line longer than `max_line`: a peer that never sends a newline must not fill memory.
    """
    pending: list[bytes] = []
    size = 0
    while True:
        chunk = read1(_READ_SIZE)
        if not chunk:
            return
        if b"\n" not in chunk:
            pending.append(chunk)
            size += len(chunk)
            if size > max_line:
                raise MalformedAnswer(f"etcd /v3/watch: a line longer than {max_line} bytes")
            continue
        if pending:
            pending.append(chunk)
            chunk = b"".join(pending)
            pending = []
        *lines, rest = chunk.split(b"\n")
        size = len(rest)
        if rest:
            pending.append(rest)
        for line in lines:
            if line:
                yield line


def _revision(event: Event) -> int:
    return event.kv.mod_revision


class Watch:
    """Iterator of WatchBatch for every change under a key prefix from `start_revision` on.

    Iterate it in one thread; close() may be called from any thread and ends the iteration cleanly.
    start_revision <= 0 watches from "now". Raises Compacted when the revision to resume from is gone.
    """

    def __init__(self, transport: Transport, prefix: bytes, key_prefix: str, start_revision: int,
                 progress_notify: bool = True) -> None:
        self._transport = transport
        self._plen = len(prefix)
        self._range = range_fields(prefix + to_bytes(key_prefix), True)
        self._progress_notify = progress_notify
        self._last: int | None = start_revision - 1 if start_revision > 0 else None
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._sock: socket.socket | None = None  # the stream's socket, for reconnect()/close() from any thread
        self._gen: Iterator[WatchBatch] | None = None
        self._token: str | None = None  # the token the current stream was opened with
        self._stale: str | None = None  # a token etcd refused: renew it before the next connect
        self.reconnects = 0
        self.bad_lines = 0

    @property
    def revision(self) -> int:
        """Every change up to this revision was delivered (0 before the first answer of a "now" watch)."""
        return self._last or 0

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def __iter__(self) -> Watch:
        return self

    def __next__(self) -> WatchBatch:
        if self._gen is None:
            self._gen = self._run()
        return next(self._gen)

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the watch; a blocked iteration returns (StopIteration) promptly. Safe from any thread."""
        self._closed.set()
        self.reconnect()

    def reconnect(self) -> None:
        """Cut the current stream as a network failure would; the watch resumes where it was. Any thread."""
        with self._lock:
            sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _run(self) -> Iterator[WatchBatch]:
        delay = BACKOFF_MIN
        while not self._closed.is_set():
            conn = None
            try:
                conn, resp = self._connect()
                for msg in self._messages(resp):
                    if msg.canceled:  # also when created: etcd refused to start it (token, permission)
                        self._canceled(msg)
                    if msg.created:
                        delay = BACKOFF_MIN
                        if self._last is None:
                            self._last = msg.header_revision
                        continue
                    batch = self._batch(msg)
                    if batch is not None:
                        if self._closed.is_set():
                            return
                        yield batch
            except MalformedAnswer as exc:
                self.bad_lines += 1
                log.warning("etcd watch: undecodable line skipped (%s, %d so far); resuming at revision %s",
                            exc, self.bad_lines, (self._last or 0) + 1)
            except _StreamEnded as exc:
                if not self._closed.is_set():
                    log.info("etcd watch interrupted (%s); resuming at revision %s", exc, (self._last or 0) + 1)
            except _NET_ERRORS as exc:
                if not self._closed.is_set():
                    log.info("etcd watch interrupted (%s); resuming at revision %s",
                             one_line(str(exc)) or type(exc).__name__, (self._last or 0) + 1)
            finally:
                if conn is not None:
                    self._drop(conn)
            if self._closed.wait(delay):
                break
            self.reconnects += 1
            delay = min(delay * 2, BACKOFF_MAX)

    def _canceled(self, msg: WatchMessage) -> None:
        """etcd ended the watch: resume, renew the token, or end the iteration with the reason."""
        if msg.compact_revision:
            self.close()
            raise Compacted(msg.compact_revision)
        reason = one_line(msg.reason) or "watch cancelled by etcd"
        auth = self._transport.auth
        if token_refused(reason):
            if auth.user:
                self._stale = self._token
                raise _StreamEnded(reason, renew=True)
            self.close()
            raise auth.explain(StoreError(f"etcd /v3/watch: {reason}"))
        if "permission denied" in reason.lower():
            self.close()
            raise auth.explain(EtcdError(f"etcd /v3/watch: {reason}", GRPC_PERMISSION_DENIED))
        raise _StreamEnded(reason)

    def _batch(self, msg: WatchMessage) -> WatchBatch | None:
        last = self._last or 0
        events = msg.events
        if events:
            floor = last + 1
            for e in events:
                rev = e.kv.mod_revision
                if rev < floor:
                    # replayed after a reconnect: drop what was delivered (and order what etcd never sends out
                    # of order, so nothing is delivered twice and `revision` never goes back)
                    events = sorted((e for e in events if e.kv.mod_revision > last), key=_revision)
                    if not events:
                        return None
                    break
                floor = rev
            self._last = events[-1].kv.mod_revision
            return WatchBatch(events, self._last)
        # progress notification: etcd sends it only once the watcher has caught up to header.revision
        if msg.header_revision > last:
            self._last = msg.header_revision
        return WatchBatch([], self._last or 0)

    def _messages(self, resp: Response) -> Iterator[WatchMessage]:
        plen = self._plen
        for line in iter_lines(resp.read1):
            yield decode_watch_line(line, plen)
        raise _StreamEnded("stream closed by etcd")

    def _connect(self) -> tuple[Connection, Response]:
        """Open the stream on the first endpoint that accepts it, starting with the one that answered last."""
        start = self._last + 1 if self._last is not None else 0
        create = {**self._range, "start_revision": str(start)}
        if self._progress_notify:
            create["progress_notify"] = True
        payload = json.dumps({"create_request": create}).encode()
        headers = self._headers()
        errors = []
        for index in self._transport.rotation():
            if self._closed.is_set():
                raise _StreamEnded("closed")
            transport = self._transport
            conn = transport.new_connection(index, transport.attempt_timeout(transport.timeout))
            with self._lock:
                self._conn = conn
            try:
                conn.connect()
                sock = conn.sock
                with self._lock:
                    self._sock = sock
                enable_keepalive(sock)
                if self._closed.is_set():
                    raise _StreamEnded("closed")
                conn.request("POST", "/v3/watch", payload, headers)
                resp = conn.getresponse()
                if resp.status != 200:
                    err = gateway_error("/v3/watch", resp.status, resp.read(1 << 16))
                    if self._transport.auth.rejected(err):
                        self._stale = self._token
                        raise _StreamEnded(str(err), renew=True)
                    raise self._transport.auth.explain(err) if resp.status < 500 else _StreamEnded(str(err))
                sock.settimeout(None)  # block until data or close(); keepalive detects dead peers
                self._transport.preferred = index
                return conn, resp
            except _StreamEnded as exc:
                self._drop(conn)
                if exc.renew:
                    raise
                errors.append(f"{self._transport.names[index]}: {exc}")
            except _NET_ERRORS as exc:
                self._drop(conn)
                tls = connect_tls_failure(exc)
                if tls:
                    log.warning("etcd watch on %s: %s", self._transport.names[index], tls)
                errors.append(f"{self._transport.names[index]}: {tls or one_line(str(exc)) or type(exc).__name__}")
            except StoreError:
                self._drop(conn)
                raise
        raise _StreamEnded("; ".join(errors))

    def _headers(self) -> dict[str, str]:
        """Request headers with a valid token; a renewal that fails for a passing reason only delays the
        resume (_StreamEnded), wrong credentials end the watch (AuthFailed)."""
        auth = self._transport.auth
        try:
            self._token = auth.token(stale=self._stale)
        except AuthFailed:
            self.close()
            raise
        except StoreError as exc:
            raise _StreamEnded(f"cannot renew the etcd auth token: {exc}") from None
        self._stale = None
        return self._transport.headers(self._token)

    def _drop(self, conn: Connection) -> None:
        with self._lock:
            sock = None
            if self._conn is conn:
                self._conn, sock, self._sock = None, self._sock, None
        conn.close()
        if sock is not None:  # closed already by conn.close(); harmless, kept for a connect that failed half way
            sock.close()
