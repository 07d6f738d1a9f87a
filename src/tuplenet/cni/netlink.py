"""Removing a link by name over rtnetlink, from this process (no `ip` to spawn, no subprocess import).

DEL's longest step is the kernel's: a veth's removal waits for RCU grace periods (15-25 ms, off-CPU) inside
the RTM_DELLINK request. Sent from a thread, that wait overlaps the plugin's etcd work; `ip link del` cost a
fork, an exec and ip's own start (~5 ms) on top. Only the request and its acknowledgement are built here.
"""

from __future__ import annotations

import _socket  # not the socket module: its enum conversions cost a few ms of each plugin start
import os
import struct

RTM_DELLINK = 17
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLMSG_ERROR = 2
IFLA_IFNAME = 3
IFNAMSIZ = 16  # the kernel's limit, terminating NUL included
ENODEV = 19
EBADMSG = 74

_HDR = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
_ATTR = struct.Struct("=HH")  # rtattr: length, type


def dellink_request(name: str, seq: int) -> bytes:
    """RTM_DELLINK for `name` (looked up by name, not index) asking for an acknowledgement.
    ValueError if the kernel could never know such a name."""
    raw = name.encode("utf-8", "surrogateescape")
    if not raw or len(raw) >= IFNAMSIZ or b"\0" in raw:
        raise ValueError(f"invalid interface name {name!r}")
    value = raw + b"\0"
    attr = _ATTR.pack(_ATTR.size + len(value), IFLA_IFNAME) + value
    attr += b"\0" * (-len(attr) % 4)
    body = _IFINFO.pack(_socket.AF_UNSPEC, 0, 0, 0, 0) + attr
    return _HDR.pack(_HDR.size + len(body), RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK, seq, 0) + body


def ack_errno(data: bytes, seq: int) -> int | None:
    """The errno of the acknowledgement of request `seq` in one datagram (0: done), None if it holds none.
    ValueError for a datagram that is not a sequence of netlink messages."""
    off = 0
    while off + _HDR.size <= len(data):
        length, kind, _, got, _ = _HDR.unpack_from(data, off)
        if length < _HDR.size or off + length > len(data):
            raise ValueError(f"netlink message of length {length} at offset {off} of {len(data)}")
        if kind == NLMSG_ERROR and got == seq:
            if length < _HDR.size + 4:
                raise ValueError("short netlink error message")
            (error,) = struct.unpack_from("=i", data, off + _HDR.size)
            return -error
        off += (length + 3) & ~3
    if off < len(data):
        raise ValueError(f"{len(data) - off} trailing bytes after the netlink messages")
    return None


def delete_link(name: str, seq: int = 1) -> bool:
    """Remove link `name` of this network namespace (a veth takes its peer with it): True once removed,
    False if there was none; OSError for any other refusal (EPERM, EINVAL for a bad name, ...)."""
    try:
        request = dellink_request(name, seq)
    except ValueError as exc:
        raise OSError(22, str(exc)) from None  # EINVAL, as the kernel answers
    s = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW, _socket.NETLINK_ROUTE)
    try:
        s.bind((0, 0))
        s.send(request)  # the kernel does the removal inside this call
        for _ in range(64):  # nothing else is sent to this socket: the acknowledgement comes first
            data = s.recv(65536)
            try:
                error = ack_errno(data, seq) if data else -1
            except ValueError as exc:
                raise OSError(EBADMSG, f"unreadable netlink answer: {exc}") from None
            if error is None:
                continue
            if error == 0:
                return True
            if error == ENODEV:
                return False
            if error < 0:
                break
            raise OSError(error, os.strerror(error))
    finally:
        s.close()
    raise OSError(EBADMSG, "no acknowledgement from the kernel")
