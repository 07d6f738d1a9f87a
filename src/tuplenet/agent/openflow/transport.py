"""The OpenFlow 1.4 session under the agent's connection: connect, negotiate, reconnect, match replies.

One reader thread owns the socket's receive side: it (re)connects, negotiates, answers echoes, matches
replies and errors to requests by xid, and hands packet-ins and (re)connect events to a dispatcher
thread, so callbacks may themselves make requests (apply, dump) without deadlocking the reader.
Sends from any thread go through one lock.

Nothing the switch sends may stop the reader: a message we cannot decode is counted (and logged once per
kind) and skipped; a broken stream (a bad length, another version, a message that never completes) and a
switch that stops reading or answering drop the connection, which fails every waiter at once and
reconnects with backoff. `connected` is cleared the moment the session is known to be bad.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Self

from . import codec as c
from .dispatch import Dispatcher
from .errors import ErrorMsg, OpenFlowDisconnected, OpenFlowError, OpenFlowTimeout, parse_error
from .handshake import negotiate


@dataclass
class _Pending:
    """One outstanding request; multipart replies go to `sink` part by part."""

    sink: Callable[[bytes], None] | None = None
    done: threading.Event = field(default_factory=threading.Event)
    reply: tuple[int, bytes] | None = None
    error: ErrorMsg | None = None
    failure: Exception | None = None


class Transport:
    """Session machinery; see the module docstring. All public methods are thread-safe.

    send_timeout bounds every send (and the wait for the send lock); stall_timeout bounds how long an
    incomplete message may sit in the receive buffer; handshake_timeout bounds one negotiation.
    """

    send_timeout = 10.0
    stall_timeout = 5.0
    handshake_timeout = 5.0

    def __init__(self, path: str, on_packet_in: Callable[[c.PacketIn], None] | None = None,
                 on_connect: Callable[[], None] | None = None, logger: logging.Logger | None = None,
                 echo_interval: float = 10.0, packet_in_queue: int = 4096) -> None:
        self.path = path
        self.log = logger or logging.getLogger("tuplenet.openflow")
        self.echo_interval = echo_interval
        self.stats = {"connects": 0, "packet_ins": 0, "packet_ins_dropped": 0, "async_errors": 0,
                      "bad_messages": 0, "resets": 0, "send_timeouts": 0}
        self.decode_errors: dict[str, int] = {}  # "<message type>: <exception type>" -> count
        self.async_errors: dict[str, int] = {}  # unsolicited OFPT_ERROR by name -> count
        self._sock: socket.socket | None = None
        self._send_lock = threading.Lock()
        self._xid_lock = threading.Lock()
        self._next_xid = 1
        self._pending: dict[int, _Pending] = {}
        self._pending_lock = threading.Lock()
        self._connected = threading.Event()
        self._closed = threading.Event()
        self._dispatch = Dispatcher(on_packet_in, on_connect, self.log, packet_in_queue)
        self._reader: threading.Thread | None = None
        self._last_error: Exception | None = None
        self._reset_sock: socket.socket | None = None
        # Port-status ADDs and DELETEs, (reason, port number, name), on the reader thread, so it must not
        # block; called with name None when a session begins and ends (forget what it said). Set before start().
        # Messages that arrive during the handshake are not seen: those ports get their number from OVSDB.
        self.on_port_status: Callable[[int, int, str | None], None] | None = None

    # --------------------------------------------------------------------------------- lifecycle
    def start(self, timeout: float = 10.0) -> Self:
        """Connect (retrying until `timeout`), negotiate OpenFlow 1.4 and enable packet-in2."""
        self._closed.clear()
        self._dispatch.start()
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
        t, self._reader = self._reader, None
        if t is not None and t is not threading.current_thread():
            t.join(timeout=5)
        self._dispatch.stop()

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
        """Send within send_timeout or drop the session: a switch that stops reading must not hang us
        (a partly sent message also leaves the stream unusable, so there is no retry on this session)."""
        if not self._send_lock.acquire(timeout=2 * self.send_timeout):
            raise OpenFlowTimeout(f"send to {self.path}: another send is stuck")
        try:
            sock = self._sock
            if sock is None or not self._connected.is_set():
                raise OpenFlowDisconnected(f"not connected to {self.path}")
            try:
                sock.sendall(data)
                return
            except TimeoutError:
                self.stats["send_timeouts"] += 1
                failure: OpenFlowError = OpenFlowTimeout(
                    f"send to {self.path} timed out after {self.send_timeout:.1f}s (switch not reading)")
            except OSError as exc:
                failure = OpenFlowDisconnected(f"send to {self.path} failed: {exc}")
        finally:
            self._send_lock.release()
        self.reset(str(failure))
        raise failure

    def _try_send(self, data: bytes) -> None:
        """From the reader thread: never wait for the send lock (a sender may be blocked on a full
        socket that only drains if we keep reading), so an echo is skipped when busy."""
        if not self._send_lock.acquire(blocking=False):
            return
        failed = None
        try:
            if self._sock is not None:
                self._sock.sendall(data)
        except OSError as exc:
            failed = exc
        finally:
            self._send_lock.release()
        if failed is not None:
            self.reset(f"send from the reader failed: {failed}")

    def _register(self, xid: int, sink: Callable[[bytes], None] | None = None) -> _Pending:
        p = _Pending(sink)
        with self._pending_lock:
            self._pending[xid] = p
        return p

    def _unregister(self, xid: int) -> None:
        with self._pending_lock:
            self._pending.pop(xid, None)

    def _wait(self, xid: int, p: _Pending, timeout: float, what: str) -> tuple[int, bytes]:
        try:
            if not p.done.wait(timeout):
                # The session's state is unknown (a hung switch, or a reply lost in a broken stream):
                # start over; on_connect makes the caller re-sync.
                msg = f"{what}: no reply from {self.path} within {timeout:.1f}s"
                self.reset(msg)
                raise OpenFlowTimeout(msg)
        finally:
            self._unregister(xid)
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
            self._unregister(xid)
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
            self._unregister(xid)
        if p.error is not None:
            raise OpenFlowError(f"{what}: {p.error.name}", [p.error])

    # ------------------------------------------------------------------------------ reader thread
    def _drop_socket(self) -> None:
        self._connected.clear()
        sock, self._sock = self._sock, None  # no lock: a sender may hold it, blocked on this socket
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
        """Runs until close(); every failure ends in a reconnect, never in the thread's death."""
        backoff = 0.02
        while not self._closed.is_set():
            try:
                backoff = self._session(backoff)
            except Exception as exc:  # noqa: BLE001 - the reader must survive anything
                self.log.exception("OpenFlow reader: unexpected error: %s", exc)
                self._drop_socket()
                self._fail_pending(OpenFlowDisconnected(f"connection to {self.path} lost: {exc}"))
                backoff = min(max(backoff, 0.02) * 2, 1.0)
            if not self._closed.is_set() and backoff:
                self._closed.wait(backoff)

    def _session(self, backoff: float) -> float:
        """One connect + read; returns the delay before the next attempt."""
        try:
            sock, rest = negotiate(self.path, self.handshake_timeout, self.send_timeout, self._xids)
        except Exception as exc:  # noqa: BLE001 - OSError, OpenFlowError, a malformed handshake
            if str(exc) != str(self._last_error):  # say it once, not at every retry
                self.log.warning("OpenFlow connect to %s: %s", self.path, exc)
            self._last_error = exc
            return min(max(backoff, 0.01) * 2, 1.0)
        self._sock = sock
        self._connected.set()
        self.stats["connects"] += 1
        self.log.info("OpenFlow connected to %s", self.path)
        self._dispatch.connected()
        if self.on_port_status is not None:
            self.on_port_status(0, 0, None)
        began = time.monotonic()
        reason = "EOF"
        try:
            self._read(sock, rest)
        except Exception as exc:  # noqa: BLE001 - a broken stream or socket: reconnect
            self._last_error = exc
            reason = str(exc)
        if not self._closed.is_set():
            self.log.warning("OpenFlow connection to %s lost (%s); reconnecting", self.path, reason)
        if self.on_port_status is not None:  # a restarted ovs-vswitchd may number ports anew
            self.on_port_status(0, 0, None)
        self._drop_socket()
        self._fail_pending(OpenFlowDisconnected(f"connection to {self.path} lost: {reason}"))
        # A switch that breaks every session at once (a hostile peer) is retried ever more slowly.
        return 0.0 if time.monotonic() - began > 2.0 else min(max(backoff, 0.025) * 2, 1.0)

    def _read(self, sock: socket.socket, buf: bytearray) -> None:
        """Receive until EOF. Idle periods are probed with echo requests; a message that does not
        complete within stall_timeout, a bad length or another version mean a broken stream (raise)."""
        unanswered = 0
        last_rx = last_probe = time.monotonic()
        partial_since: float | None = None
        while not self._closed.is_set():
            if buf:
                progress = self._consume(buf)
                if not buf:
                    partial_since = None
                elif progress or partial_since is None:
                    partial_since = time.monotonic()
            now = time.monotonic()
            waits = []
            if partial_since is not None:
                if now - partial_since >= self.stall_timeout:
                    raise ValueError(f"incomplete message ({len(buf)} bytes) stalled for "
                                     f"{self.stall_timeout:.1f}s")
                waits.append(partial_since + self.stall_timeout - now)
            if self.echo_interval:
                waits.append(max(last_rx, last_probe) + self.echo_interval - now)
            if not select.select([sock], [], [], max(0.0, min(waits)) if waits else None)[0]:
                now = time.monotonic()
                if self.echo_interval and now >= max(last_rx, last_probe) + self.echo_interval:
                    unanswered += 1
                    if unanswered > 3:
                        raise OSError("switch stopped answering echo requests")
                    last_probe = now
                    self._try_send(c.echo_request(b"", self._xids()))
                continue
            data = sock.recv(1 << 20)
            if not data:
                return
            unanswered = 0
            last_rx = time.monotonic()
            buf += data

    def _consume(self, buf: bytearray) -> bool:
        """Handle (and remove) the complete messages at the start of `buf`; True if there were any.
        Raises ValueError, and only that, when the stream is broken (bad length, another version)."""
        msgs, used = c.split_messages(buf)
        del buf[:used]
        for version, mtype, xid, body in msgs:
            if version != c.OFP_VERSION:
                raise ValueError(f"message of version {version:#x} on an OpenFlow 1.4 session")
            self._handle_safely(mtype, xid, body)
        return bool(msgs)

    def reset(self, reason: str) -> None:
        """Drop the connection now: waiters fail at once, the reader reconnects and on_connect runs
        again (the caller re-syncs)."""
        sock = self._sock
        if sock is None or sock is self._reset_sock:
            return  # nothing to reset, or already done (the reader is reconnecting)
        self._reset_sock = sock
        self.log.warning("resetting OpenFlow connection to %s: %s", self.path, reason)
        self.stats["resets"] += 1
        self._connected.clear()
        try:
            sock.shutdown(socket.SHUT_RDWR)  # the reader sees EOF and reconnects
        except OSError:
            pass
        self._fail_pending(OpenFlowDisconnected(f"connection to {self.path} reset: {reason}"))

    def _handle_safely(self, mtype: int, xid: int, body: bytes) -> None:
        """One undecodable message is counted and skipped (logged once per kind), never fatal; a
        request it answered fails instead of waiting for its timeout."""
        try:
            self._handle(mtype, xid, body)
        except Exception as exc:  # noqa: BLE001 - nothing the switch sends may stop the reader
            self.stats["bad_messages"] += 1
            etype = type(exc)
            kind = f"type {mtype}: " + (etype.__name__ if etype.__module__ == "builtins"
                                        else f"{etype.__module__}.{etype.__name__}")
            n = self.decode_errors.get(kind, 0)
            self.decode_errors[kind] = n + 1
            if not n:
                self.log.warning("undecodable OpenFlow message (%s) from %s: %s; counting further ones "
                                 "silently", kind, self.path, exc)
            with self._pending_lock:
                p = self._pending.get(xid)
            if p is not None and mtype != c.OFPT_EXPERIMENTER:
                p.failure = OpenFlowError(f"undecodable reply (type {mtype}) from {self.path}: {exc}")
                p.done.set()

    def _handle(self, mtype: int, xid: int, body: bytes) -> None:
        if mtype == c.OFPT_ECHO_REQUEST:
            self._try_send(c.echo_reply(body, xid))
            return
        if mtype == c.OFPT_EXPERIMENTER:
            _vendor, subtype = c.nx_subtype(body)
            if subtype == c.NXT_PACKET_IN2:
                self.stats["packet_ins"] += 1
                if not self._dispatch.packet_in(c.parse_packet_in2(body[8:])):
                    self.stats["packet_ins_dropped"] += 1
                return
        if mtype == c.OFPT_PORT_STATUS:
            cb = self.on_port_status
            if cb is not None:
                status = c.parse_port_status(body)
                if status is not None and status[0] != c.OFPPR_MODIFY:  # (link state changes)
                    cb(*status)
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
                name = err.name if err.name in self.async_errors or len(self.async_errors) < 64 else "other"
                n = self.async_errors.get(name, 0)
                self.async_errors[name] = n + 1
                if not n:  # once per kind (at most 65 kinds): a broken switch may send thousands
                    self.log.warning("OpenFlow error from %s (xid=%#x): %s; counting further ones silently",
                                     self.path, xid, err.name)
            return
        if p is None:
            return  # bundle open replies, echo replies, ...
        if mtype == c.OFPT_MULTIPART_REPLY and p.sink is not None:
            _mp, flags = c.multipart_reply_info(body)
            p.sink(body)
            if flags & c.OFPMPF_REPLY_MORE:
                return
        p.reply = (mtype, body)
        p.done.set()

    def _route_error(self, err: ErrorMsg) -> bool:
        """Hook for errors no request waits for; True if taken care of."""
        return False
