"""Opening an OpenFlow 1.4 session: connect, HELLO, SET_CONFIG, packet-in2 format, and a barrier to confirm.

Bounded in time as a whole (a switch trickling echo requests cannot hold us in the handshake); anything
malformed raises, and the reader retries with backoff.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable

from . import codec as c
from .errors import OpenFlowDisconnected, OpenFlowError, OpenFlowTimeout, parse_error


def negotiate(path: str, timeout: float, send_timeout: float, xids: Callable[[], int]) -> tuple[socket.socket, bytearray]:
    """The connected socket (its timeout set to `send_timeout`) and any bytes received past the handshake."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    deadline = time.monotonic() + timeout
    try:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        sock.sendall(c.hello(xids()))
        bxid = xids()
        buf = bytearray()
        got_hello = False
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise OpenFlowTimeout(f"handshake with {path} took over {timeout:.1f}s")
            sock.settimeout(left)
            data = sock.recv(65536)
            if not data:
                raise OpenFlowDisconnected("closed during handshake")
            buf += data
            msgs, used = c.split_messages(buf)
            del buf[:used]
            for version, mtype, xid, body in msgs:
                if mtype == c.OFPT_HELLO and not got_hello:
                    check_hello(version, body)
                    got_hello = True
                    sock.sendall(c.set_config(0xFFFF, xids()) + c.set_packet_in_format(xid=xids()) + c.barrier(bxid))
                elif mtype == c.OFPT_ERROR:
                    raise OpenFlowError(f"handshake with {path}: {parse_error(xid, body).name}")
                elif mtype == c.OFPT_ECHO_REQUEST:
                    sock.sendall(c.echo_reply(body, xid))
                elif mtype == c.OFPT_BARRIER_REPLY and xid == bxid and got_hello:
                    sock.settimeout(send_timeout)  # reads wait in select(); the timeout bounds sends
                    return sock, buf
    except BaseException:
        sock.close()
        raise


def check_hello(version: int, body: bytes) -> None:
    """Raise unless the switch's HELLO offers OpenFlow 1.4 (a version bitmap overrides the header version)."""
    ok = version >= c.OFP_VERSION
    off = 0
    while off + 4 <= len(body):
        etype, elen = struct.unpack_from("!HH", body, off)
        if etype == c.OFPHET_VERSIONBITMAP and elen >= 8:
            ok = bool(int.from_bytes(body[off + 4:off + 8], "big") & (1 << c.OFP_VERSION))
        off += max(8, elen + (-elen % 8))
    if not ok:
        raise OpenFlowError("switch does not offer OpenFlow 1.4 (check the bridge's protocols)")
