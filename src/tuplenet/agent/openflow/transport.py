"""The OpenFlow 1.4 session under the agent's connection: connect, negotiate, reconnect, match replies.

One reader thread owns the socket's receive side: it (re)connects, negotiates, answers echoes, matches
replies and errors to requests by xid, and hands packet-ins and (re)connect events to a dispatcher
thread, so callbacks may themselves make requests (apply, dump) without deadlocking the reader.
Sends from any thread go through one lock.
"""

from __future__ import annotations

import logging
import queue
import select
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Self

from . import codec as c
from .errors import ErrorMsg, OpenFlowDisconnected, OpenFlowError, OpenFlowTimeout, parse_error


@dataclass
class _Pending:
    """One outstanding request; multipart replies go to `sink` part by part."""

    sink: Callable[[bytes], None] | None = None
    done: threading.Event = field(default_factory=threading.Event)
    reply: tuple[int, bytes] | None = None
    error: ErrorMsg | None = None
    failure: Exception | None = None


class Transport:
    """Session machinery; see the module docstring. All public methods are thread-safe."""

    def __init__(self, path: str, on_packet_in: Callable[[c.PacketIn], None] | None = None,
                 on_connect: Callable[[], None] | None = None, logger: logging.Logger | None = None,
                 echo_interval: float = 10.0, packet_in_queue: int = 4096) -> None:
        self.path = path
        self.on_packet_in = on_packet_in
        self.on_connect = on_connect
        self.log = logger or logging.getLogger("tuplenet.openflow")
        self.echo_interval = echo_interval
        self.stats = {"connects": 0, "packet_ins": 0, "packet_ins_dropped": 0, "async_errors": 0,
                      "bad_messages": 0}
        self._sock: socket.socket | None = None
        self._send_lock = threading.Lock()
        self._xid_lock = threading.Lock()
        self._next_xid = 1
        self._pending: dict[int, _Pending] = {}
        self._pending_lock = threading.Lock()
        self._connected = threading.Event()
        self._closed = threading.Event()
        self._events: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=packet_in_queue)
        self._reader: threading.Thread | None = None
        self._dispatcher: threading.Thread | None = None
        self._last_error: Exception | None = None

    # --------------------------------------------------------------------------------- lifecycle
    def start(self, timeout: float = 10.0) -> Self:
        """Connect (retrying until `timeout`), negotiate OpenFlow 1.4 and enable packet-in2."""
        self._closed.clear()
        self._dispatcher = threading.Thread(target=self._dispatch_loop, name="of-dispatch", daemon=True)
        self._dispatcher.start()
        self._reader = threading.Thread(target=self._reader_loop, name="of-reader", daemon=True)
        self._reader.start()
        if not self._connected.wait(timeout):
            err = self._last_error
            self.close()
            raise OpenFlowTimeout(f"could not connect to {self.path} within {timeout:.1f}s"
                                  + (f": {err}" if err else ""))
        return self

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def close(self) -> None:
        self._closed.set()
        self._drop_socket()
        for t in (self._reader, self._dispatcher):
            if t is not None and t is not threading.current_thread():
                if t is self._dispatcher:
                    self._post(("stop", None), block=True)
                t.join(timeout=5)
        self._reader = self._dispatcher = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------------------------- requests
    def _xids(self, n: int = 1) -> int:
        with self._xid_lock:
            first = self._next_xid
            self._next_xid = (first + n) % (1 << 32)
        return first

    def _send(self, data: bytes) -> None:
        with self._send_lock:
            sock = self._sock
            if sock is None or not self._connected.is_set():
                raise OpenFlowDisconnected(f"not connected to {self.path}")
            try:
                sock.sendall(data)
            except OSError as exc:
                raise OpenFlowDisconnected(f"send to {self.path} failed: {exc}") from exc

    def _try_send(self, data: bytes) -> None:
        """From the reader thread: never wait for the send lock (a sender may be blocked on a full
        socket that only drains if we keep reading), so an echo is skipped when busy."""
        if not self._send_lock.acquire(blocking=False):
            return
        try:
            if self._sock is not None:
                self._sock.sendall(data)
        except OSError:
            pass
        finally:
            self._send_lock.release()

    def _register(self, xid: int, sink: Callable[[bytes], None] | None = None) -> _Pending:
        p = _Pending(sink)
        with self._pending_lock:
            self._pending[xid] = p
        return p

    def _wait(self, xid: int, p: _Pending, timeout: float, what: str) -> tuple[int, bytes]:
        try:
            if not p.done.wait(timeout):
                raise OpenFlowTimeout(f"{what}: no reply from {self.path} within {timeout:.1f}s")
        finally:
            with self._pending_lock:
                self._pending.pop(xid, None)
        if p.failure is not None:
            raise p.failure
        if p.error is not None:
            raise OpenFlowError(f"{what}: {p.error.name}", [p.error])
        assert p.reply is not None
        return p.reply

    def request(self, build: Callable[[int], bytes], timeout: float = 5.0, what: str = "request",
                sink: Callable[[bytes], None] | None = None) -> tuple[int, bytes]:
        """Send build(xid) and wait for its reply (or its error)."""
        xid = self._xids()
        p = self._register(xid, sink)
        try:
            self._send(build(xid))
        except Exception:
            with self._pending_lock:
                self._pending.pop(xid, None)
            raise
        return self._wait(xid, p, timeout, what)

    def barrier(self, timeout: float = 5.0) -> None:
        """Returns once the switch has processed (and answered) everything sent before."""
        self.request(lambda x: c.barrier(x), timeout, "barrier")

    def _checked(self, message: Callable[[int], bytes], timeout: float, what: str) -> None:
        """Send a message that has no success reply, then a barrier; raise the message's error if any."""
        xid = self._xids()
        p = self._register(xid)
        try:
            self._send(message(xid))
            self.barrier(timeout)
        finally:
            with self._pending_lock:
                self._pending.pop(xid, None)
        if p.error is not None:
            raise OpenFlowError(f"{what}: {p.error.name}", [p.error])

    # ------------------------------------------------------------------------------ reader thread
    def _drop_socket(self) -> None:
        self._connected.clear()
        with self._send_lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _fail_pending(self, exc: Exception) -> None:
        with self._pending_lock:
            pending = list(self._pending.values())
        for p in pending:
            p.failure = exc
            p.done.set()

    def _reader_loop(self) -> None:
        backoff = 0.02
        while not self._closed.is_set():
            try:
                sock, rest = self._connect()
            except (OSError, OpenFlowError) as exc:
                if str(exc) != str(self._last_error):  # say it once, not at every retry
                    self.log.warning("OpenFlow connect to %s: %s", self.path, exc)
                self._last_error = exc
                self._closed.wait(backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            backoff = 0.02
            with self._send_lock:
                self._sock = sock
            self._connected.set()
            self.stats["connects"] += 1
            self.log.info("OpenFlow connected to %s", self.path)
            self._post(("connect", None), block=True)
            try:
                self._read(sock, rest)
            except (OSError, ValueError) as exc:
                self._last_error = exc
            if not self._closed.is_set():
                self.log.warning("OpenFlow connection to %s lost (%s); reconnecting", self.path,
                                 self._last_error or "EOF")
            self._drop_socket()
            self._fail_pending(OpenFlowDisconnected(f"connection to {self.path} lost"))

    def _connect(self) -> tuple[socket.socket, bytearray]:
        """Connect and negotiate: HELLO, SET_CONFIG, packet-in2 format, then a barrier to confirm."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(5.0)
            sock.connect(self.path)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
            sock.sendall(c.hello(self._xids()))
            bxid = self._xids()
            buf = bytearray()
            got_hello = False
            while True:
                data = sock.recv(65536)
                if not data:
                    raise OpenFlowDisconnected("closed during handshake")
                buf += data
                msgs, used = c.split_messages(buf)
                del buf[:used]
                for version, mtype, xid, body in msgs:
                    if mtype == c.OFPT_HELLO and not got_hello:
                        self._check_hello(version, body)
                        got_hello = True
                        sock.sendall(c.set_config(0xFFFF, self._xids()) + c.set_packet_in_format(
                            xid=self._xids()) + c.barrier(bxid))
                    elif mtype == c.OFPT_ERROR:
                        raise OpenFlowError(f"handshake with {self.path}: {parse_error(xid, body).name}")
                    elif mtype == c.OFPT_ECHO_REQUEST:
                        sock.sendall(c.echo_reply(body, xid))
                    elif mtype == c.OFPT_BARRIER_REPLY and xid == bxid:
                        sock.settimeout(None)
                        return sock, buf
        except BaseException:
            sock.close()
            raise

    @staticmethod
    def _check_hello(version: int, body: bytes) -> None:
        ok = version >= c.OFP_VERSION
        off = 0
        while off + 4 <= len(body):  # hello elements: a version bitmap overrides the header version
            etype, elen = struct.unpack_from("!HH", body, off)
            if etype == c.OFPHET_VERSIONBITMAP and elen >= 8:
                ok = bool(int.from_bytes(body[off + 4:off + 8], "big") & (1 << c.OFP_VERSION))
            off += max(8, elen + (-elen % 8))
        if not ok:
            raise OpenFlowError("switch does not offer OpenFlow 1.4 (check the bridge's protocols)")

    def _read(self, sock: socket.socket, buf: bytearray) -> None:
        """Receive until EOF. Idle periods are probed with echo requests (the socket itself stays
        blocking without a timeout, so a long sendall() of a big bundle never times out)."""
        unanswered = 0
        while not self._closed.is_set():
            if buf:
                msgs, used = c.split_messages(buf)
                del buf[:used]
                for _version, mtype, xid, body in msgs:
                    try:
                        self._handle(mtype, xid, body)
                    except (ValueError, IndexError, struct.error) as exc:  # one bad message, not the session
                        self.stats["bad_messages"] += 1
                        self.log.warning("bad OpenFlow message type %d from %s: %s", mtype, self.path, exc)
            if self.echo_interval and not select.select([sock], [], [], self.echo_interval)[0]:
                unanswered += 1
                if unanswered > 3:
                    raise OSError("switch stopped answering echo requests")
                self._try_send(c.echo_request(b"", self._xids()))
                continue
            data = sock.recv(1 << 20)
            if not data:
                return
            unanswered = 0
            buf += data

    def reset(self, reason: str) -> None:
        """Drop the connection; the reader reconnects and on_connect runs again (the caller re-syncs)."""
        self.log.warning("resetting OpenFlow connection to %s: %s", self.path, reason)
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _handle(self, mtype: int, xid: int, body: bytes) -> None:
        if mtype == c.OFPT_ECHO_REQUEST:
            self._try_send(c.echo_reply(body, xid))
            return
        if mtype == c.OFPT_EXPERIMENTER:
            _vendor, subtype = c.nx_subtype(body)
            if subtype == c.NXT_PACKET_IN2:
                self.stats["packet_ins"] += 1
                self._post(("packet_in", c.parse_packet_in2(body[8:])))
                return
        with self._pending_lock:
            p = self._pending.get(xid)
        if mtype == c.OFPT_ERROR:
            err = parse_error(xid, body)
            if p is not None:
                p.error = err
                p.done.set()
            elif not self._route_error(err):
                self.stats["async_errors"] += 1
                self.log.warning("OpenFlow error from %s (xid=%#x): %s", self.path, xid, err.name)
            return
        if p is None:
            return  # OFPT_PORT_STATUS, bundle open replies, echo replies, ...
        if mtype == c.OFPT_MULTIPART_REPLY and p.sink is not None:
            _mp, flags = c.multipart_reply_info(body)
            p.sink(body)
            if flags & c.OFPMPF_REPLY_MORE:
                return
        p.reply = (mtype, body)
        p.done.set()

    # ------------------------------------------------------------------------------- dispatching
    def _post(self, event: tuple[str, object], block: bool = False) -> None:
        try:
            self._events.put(event, block=block, timeout=5 if block else None)
        except queue.Full:
            self.stats["packet_ins_dropped"] += 1

    def _dispatch_loop(self) -> None:
        while True:
            kind, obj = self._events.get()
            if kind == "stop":
                return
            try:
                if kind == "connect" and self.on_connect is not None:
                    self.on_connect()
                elif kind == "packet_in" and self.on_packet_in is not None:
                    self.on_packet_in(obj)  # type: ignore[arg-type]
            except Exception:
                self.log.exception("OpenFlow %s callback failed", kind)

    def _route_error(self, err: ErrorMsg) -> bool:
        """Hook for errors no request waits for; True if taken care of."""
        return False
