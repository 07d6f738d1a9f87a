"""A scripted (and, when asked, hostile) OpenFlow switch on a unix socket, for the connection tests."""

from __future__ import annotations

import queue
import socket
import struct
import threading
import time
from collections.abc import Callable

from canned_server import LoopbackServer, listening

from tuplenet.agent.openflow import codec as c

Reply = Callable[[int, int, bytes], bytes | None]


class FakeSwitch(LoopbackServer):
    """Accepts connections on a unix socket, says HELLO, answers barriers; `script` answers the rest.

    `hellos` replaces the HELLO of successive connections (a malformed one, then the default);
    setting `hang` makes every connection stop reading (a hung ovs-vswitchd) until it is cleared.
    """

    def __init__(self, path: str, versions: int = 0x7E, script: Reply | None = None,
                 hellos: list[bytes] | None = None) -> None:
        self.path, self.versions, self.script = path, versions, script
        self.hellos = list(hellos or [])
        self.hang = threading.Event()
        self.received: queue.Queue[tuple[int, int, bytes]] = queue.Queue()
        self.clients: list[socket.socket] = []
        super().__init__(listening(path, backlog=4))

    def _accepted(self, conn: socket.socket) -> None:
        self.clients.append(conn)

    def _hello(self) -> bytes:
        if self.hellos:
            return self.hellos.pop(0)
        return struct.pack("!BBHIHHI", 6, c.OFPT_HELLO, 16, 0, 1, 8, self.versions)

    def _serve(self, sock: socket.socket) -> None:
        buf = bytearray()
        try:
            sock.sendall(self._hello())
            while True:
                while self.hang.is_set():  # a hung switch: nothing is read, the client's sends back up
                    time.sleep(0.02)
                data = sock.recv(65536)
                if not data:
                    return
                buf += data
                try:
                    msgs, used = c.split_messages(buf)
                except ValueError:
                    return
                del buf[:used]
                for _v, mtype, xid, body in msgs:
                    self.received.put((mtype, xid, body))
                    reply = self.script(mtype, xid, body) if self.script else None
                    if reply is None and mtype == c.OFPT_BARRIER_REQUEST:
                        reply = c.msg(c.OFPT_BARRIER_REPLY, b"", xid)
                    if reply:
                        sock.sendall(reply)
        except OSError:
            return

    def send(self, data: bytes) -> None:
        self.clients[-1].sendall(data)

    def drop(self) -> None:
        for s in self.clients:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self.clients.clear()

    def expect(self, mtype: int, timeout: float = 5.0) -> tuple[int, bytes]:
        while True:
            t, xid, body = self.received.get(timeout=timeout)
            if t == mtype:
                return xid, body

    def close(self) -> None:
        self.hang.clear()
        self.drop()
        self.sock.close()
