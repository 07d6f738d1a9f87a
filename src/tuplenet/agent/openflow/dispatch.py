"""The dispatcher between the OpenFlow reader and the agent's callbacks.

Packet-ins sit in a bounded queue (the newest are dropped and counted when it is full) so a flood
costs bounded memory; connect events are kept apart from that queue, so a flood can never make the
agent miss a reconnect (and the reconcile that follows it).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

from . import codec as c


class Dispatcher:
    """One thread runs on_connect / on_packet_in, off the reader (callbacks may make requests)."""

    def __init__(self, on_packet_in: Callable[[c.PacketIn], None] | None, on_connect: Callable[[], None] | None,
                 log: logging.Logger, limit: int = 4096) -> None:
        self.on_packet_in = on_packet_in
        self.on_connect = on_connect
        self.log = log
        self.limit = limit
        self.dropped = 0
        self._pins: deque[c.PacketIn] = deque()
        self._connects = 0
        self._stop = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="of-dispatch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        t, self._thread = self._thread, None
        if t is not None and t is not threading.current_thread():
            t.join(timeout=5)

    def packet_in(self, pin: c.PacketIn) -> bool:
        """Queue a packet-in; False (and counted) when the queue is full."""
        with self._cond:
            if len(self._pins) >= self.limit:
                self.dropped += 1
                return False
            self._pins.append(pin)
            self._cond.notify()
        return True

    def connected(self) -> None:
        with self._cond:
            self._connects += 1
            self._cond.notify()

    def _next(self) -> tuple[str, c.PacketIn | None]:
        with self._cond:
            while not (self._stop or self._connects or self._pins):
                self._cond.wait()
            if self._stop:
                return "stop", None
            if self._connects:  # before any queued packet-in: the agent must re-sync first
                self._connects -= 1
                return "connect", None
            return "packet_in", self._pins.popleft()

    def _loop(self) -> None:
        while True:
            kind, pin = self._next()
            if kind == "stop":
                return
            try:
                if kind == "connect" and self.on_connect is not None:
                    self.on_connect()
                elif kind == "packet_in" and self.on_packet_in is not None:
                    self.on_packet_in(pin)  # type: ignore[arg-type]
            except Exception:
                self.log.exception("OpenFlow %s callback failed", kind)
