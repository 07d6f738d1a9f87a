"""TCP relay that listens inside one network namespace and connects out of the relay's own namespace.

Why: sandbox hosts live in their own namespaces and cannot reach a daemon on the root namespace's loopback
(etcd). A socket belongs to the namespace that was current when it was created, so one process can hold a
listening socket in the underlay namespace and open its upstream connections in the root namespace, without
giving the root namespace any address or link. Bytes are copied unchanged (HTTP/2 and gRPC streams pass).

Run: python -m tuplenet.sandbox.netns_relay --netns NAME|PATH --listen IP:PORT --connect HOST:PORT [--ready F]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import socket
import sys

CLONE_NEWNET = 0x40000000


def setns(fd: int) -> None:
    """Move the calling thread into the network namespace open at `fd` (os.setns exists only from 3.12)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def netns_path(name: str) -> str:
    return name if "/" in name else f"/run/netns/{name}"


def listen_in_netns(netns: str, host: str, port: int) -> socket.socket:
    """A listening TCP socket created inside `netns`; the thread returns to its own namespace afterwards."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(netns_path(netns), os.O_RDONLY)
    try:
        setns(target)
        try:
            return socket.create_server((host, port), backlog=128)
        finally:
            setns(own)
    finally:
        os.close(target)
        os.close(own)


def split_hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy one direction; pass a clean EOF on as a half-close, abort the peer on errors."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (OSError, RuntimeError):
        writer.transport.abort()


async def _serve(sock: socket.socket, upstream: tuple[str, int]) -> None:
    async def handle(cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.wait_for(asyncio.open_connection(*upstream), timeout=5)
        except (OSError, TimeoutError):
            cw.transport.abort()  # a refused upstream shows up as a reset, as a direct connection would
            return
        try:
            await asyncio.gather(_pump(cr, uw), _pump(ur, cw))
        finally:
            for w in (cw, uw):
                w.close()
                with contextlib.suppress(OSError, RuntimeError):
                    await w.wait_closed()

    server = await asyncio.start_server(handle, sock=sock)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="netns_relay", description=__doc__.splitlines()[0])
    ap.add_argument("--netns", required=True, help="namespace name (under /run/netns) or path to listen in")
    ap.add_argument("--listen", required=True, type=split_hostport, help="IP:PORT inside --netns")
    ap.add_argument("--connect", required=True, type=split_hostport, help="HOST:PORT in this namespace")
    ap.add_argument("--ready", help="file written once the listening socket exists")
    ap.add_argument("--tag", help="free text identifying the owner (seen in the process command line)")
    args = ap.parse_args(argv)
    sock = listen_in_netns(args.netns, *args.listen)
    if args.ready:
        tmp = args.ready + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{os.getpid()}\n")
        os.replace(tmp, args.ready)
    try:
        asyncio.run(_serve(sock, args.connect))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
