"""OpenFlow 1.4 groups: group-mod and group description (pure functions over bytes).

Groups carry no cookie, so ours are told apart by id: the top 16 bits hold our tag (outputs.group_id).
A reconcile compares a dumped description with the one our own encoding of the wanted group would give
(`GroupDesc.of`), so an unchanged group is left alone on a restart.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from ...records import NamedTuple
from ..outputs import GROUP_TYPES, Bucket, Group
from . import codec as c
from .actions import encode_actions

OFPT_GROUP_MOD = 15
OFPGC_ADD = 0
OFPGC_MODIFY = 1
OFPGC_DELETE = 2
OFPG_ALL = 0xFFFFFFFC
OFPG_ANY = 0xFFFFFFFF
OFPP_ANY = 0xFFFFFFFF
OFPMP_GROUP_DESC = 7

_GROUP_MOD = struct.Struct("!BBHIHBxI")  # header, command, type, pad, group_id
_BUCKET = struct.Struct("!HHII4x")  # len, weight, watch_port, watch_group
_MP_REQ = struct.Struct("!BBHIHH4x")
_DESC = struct.Struct("!HBxI")  # length, type, group_id


class GroupDesc(NamedTuple):
    """One group as the switch describes it: type number and, per bucket, (weight, watch_port, actions)."""

    group_id: int
    type: int
    buckets: tuple[tuple[int, int, bytes], ...]

    @staticmethod
    def of(g: Group) -> GroupDesc:
        """The description OVS gives back for `g` as we encode it."""
        return GroupDesc(g.group_id, group_type(g), tuple(
            (_weight(g, b), b.watch_port if b.watch_port is not None else OFPP_ANY, encode_actions(b.actions))
            for b in g.buckets))


def group_type(g: Group) -> int:
    try:
        return GROUP_TYPES.index(g.type)
    except ValueError:
        raise ValueError(f"unknown group type {g.type!r}") from None


def _weight(g: Group, b: Bucket) -> int:
    """OVS gives select buckets weight 1 unless told otherwise, other types 0."""
    return b.weight or (1 if g.type == "select" else 0)


def _bucket(g: Group, b: Bucket) -> bytes:
    acts = encode_actions(b.actions)
    watch = b.watch_port if b.watch_port is not None else OFPP_ANY
    return _BUCKET.pack(16 + len(acts), _weight(g, b), watch, OFPG_ANY) + acts


def group_mod(command: int, g: Group, xid: int = 0) -> bytes:
    """OFPT_GROUP_MOD adding or modifying group `g`."""
    if not 0 <= g.group_id <= 0xFFFFFF00:
        raise ValueError(f"bad group id {g.group_id}")
    body = b"".join(_bucket(g, b) for b in g.buckets)
    return _GROUP_MOD.pack(c.OFP_VERSION, OFPT_GROUP_MOD, _GROUP_MOD.size + len(body), xid, command, group_type(g),
                           g.group_id) + body


def group_delete(gid: int, xid: int = 0) -> bytes:
    """OFPT_GROUP_MOD deleting group `gid` (OVS also deletes every flow that outputs to it)."""
    return _GROUP_MOD.pack(c.OFP_VERSION, OFPT_GROUP_MOD, _GROUP_MOD.size, xid, OFPGC_DELETE, 0, gid)


def group_desc_request(xid: int = 0) -> bytes:
    return _MP_REQ.pack(c.OFP_VERSION, c.OFPT_MULTIPART_REQUEST, 16, xid, OFPMP_GROUP_DESC, 0)


def iter_group_descs(body: bytes | memoryview) -> Iterator[GroupDesc]:
    """Entries of one OFPMP_GROUP_DESC reply part (`body` after the 8-byte header)."""
    off, end = 8, len(body)
    while off + _DESC.size <= end:
        length, gtype, gid = _DESC.unpack_from(body, off)
        if length < _DESC.size or off + length > end:
            raise ValueError(f"bad group desc length {length}")
        buckets = []
        b, bend = off + _DESC.size, off + length
        while b + _BUCKET.size <= bend:
            blen, weight, watch, _wg = _BUCKET.unpack_from(body, b)
            if blen < _BUCKET.size or b + blen > bend:
                raise ValueError(f"bad group bucket length {blen}")
            buckets.append((weight, watch, bytes(body[b + _BUCKET.size:b + blen])))
            b += blen
        yield GroupDesc(gid, gtype, tuple(buckets))
        off += length
