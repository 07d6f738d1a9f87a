"""0.3's bookkeeping bitmaps: base64 of a RoaringBitmap in the portable serialization format.

0.3's Go tools keep `globals/device_ids` and `ip_book/{LS,LR}/<name>` in this format, so we read and write
it to stay interchangeable with them on one etcd tree. Only 32-bit sets are needed; decoding handles array,
bitmap and run containers, encoding writes array/bitmap containers (cookie 12346) like Go's ToBase64 does.
"""

from __future__ import annotations

import binascii
import struct

from .addr import ModelError

_NO_RUN = 12346
_RUN = 12347
_ARRAY_MAX = 4096
_KEYS = 1 << 16  # a 32-bit set has at most this many containers (one per high 16 bits)
EMPTY = "OjAAAAAAAAA="  # what Go writes for an empty bitmap
# Our bitmaps hold 16-bit ids (device ids, port ids): 65536 members at most. The cap leaves room for
# other tools' sets yet bounds what a hostile value in etcd can make us allocate.
MAX_MEMBERS = 1 << 17
MAX_TEXT = 4 << 20  # etcd refuses values of 1.5 MB by default; anything bigger is not a bitmap of ours


def _b64decode(text: str) -> bytes:
    """base64.b64decode(text, validate=True) without the base64 module, whose `re` import (with enum) is
    ~4 ms of every tpcni/tpctl start. For ASCII text that call is binascii's strict mode on the same bytes;
    other text goes to base64 itself, which raises what it always did."""
    if text.isascii():
        return binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    import base64

    return base64.b64decode(text, validate=True)


def decode_bitmap(b64: str, max_members: int = MAX_MEMBERS) -> set[int]:
    """Members of a base64 portable RoaringBitmap; '' decodes to the empty set.

    The value may come from anyone who can write to etcd, so the decode is bounded: every count in the
    headers is checked against the input length and `max_members` before anything is expanded, and
    containers must be internally consistent (a run container cannot expand past its declared size).
    Work and memory are linear in the input plus `max_members`; anything else is a ModelError.
    """
    if not b64:
        return set()
    if len(b64) > MAX_TEXT:
        raise ModelError(f"not a base64 roaring bitmap: {len(b64)} characters is too long")
    try:
        data = _b64decode(b64)
        return _decode(data, max_members)
    except (binascii.Error, struct.error, IndexError, ValueError) as exc:
        raise ModelError(f"not a base64 roaring bitmap: {exc}") from None


def _decode(data: bytes, max_members: int) -> set[int]:
    cookie = struct.unpack_from("<I", data, 0)[0]
    pos = 4
    run_flags = b""
    if cookie & 0xFFFF == _RUN:
        size = (cookie >> 16) + 1
        nbytes = (size + 7) // 8
        run_flags = data[pos:pos + nbytes]
        pos += nbytes
    elif cookie == _NO_RUN:
        size = struct.unpack_from("<I", data, pos)[0]
        pos += 4
    else:
        raise ValueError(f"unknown cookie {cookie}")
    if size > _KEYS or pos + 4 * size > len(data):
        raise ValueError(f"{size} containers do not fit")
    header = [struct.unpack_from("<HH", data, pos + 4 * i) for i in range(size)]
    pos += 4 * size
    if any(a[0] >= b[0] for a, b in zip(header, header[1:], strict=False)):
        raise ValueError("container keys are not strictly increasing")
    declared = sum(card_minus_1 + 1 for _, card_minus_1 in header)
    if declared > max_members:
        raise ValueError(f"{declared} members is more than the {max_members} allowed")
    if not run_flags or size >= 4:
        pos += 4 * size  # offset header: containers follow back to back, so we can skip it
    out: set[int] = set()
    for i, (hi, card_minus_1) in enumerate(header):
        base = hi << 16
        card = card_minus_1 + 1
        if run_flags and run_flags[i // 8] & (1 << (i % 8)):
            pos = _runs(data, pos, base, card, out)
        elif card <= _ARRAY_MAX:
            out.update(base + v for v in struct.unpack_from(f"<{card}H", data, pos))
            pos += 2 * card
        else:
            words = struct.unpack_from("<1024Q", data, pos)
            pos += 8192
            if sum(w.bit_count() for w in words) != card:
                raise ValueError(f"bitmap container {hi} does not hold its declared {card} members")
            for w, word in enumerate(words):
                while word:
                    low = word & -word
                    out.add(base + w * 64 + low.bit_length() - 1)
                    word ^= low
    return out


def _runs(data: bytes, pos: int, base: int, card: int, out: set[int]) -> int:
    """Expand one run container after checking its runs add up to its declared cardinality."""
    nruns = struct.unpack_from("<H", data, pos)[0]
    pos += 2
    runs = struct.unpack_from(f"<{2 * nruns}H", data, pos)
    pos += 4 * nruns
    starts, lengths = runs[0::2], runs[1::2]
    if sum(lengths) + nruns != card or any(s + n > 0xFFFF for s, n in zip(starts, lengths, strict=True)):
        raise ValueError(f"run container {base >> 16} does not hold its declared {card} members")
    for start, length in zip(starts, lengths, strict=True):
        out.update(range(base + start, base + start + length + 1))
    return pos


def encode_bitmap(members: set[int] | list[int] | tuple[int, ...]) -> str:
    """Base64 portable RoaringBitmap of 32-bit unsigned members (byte-compatible with Go's ToBase64)."""
    groups: dict[int, list[int]] = {}
    for v in sorted(set(members)):
        if not 0 <= v <= 0xFFFFFFFF:
            raise ModelError(f"bitmap member out of range: {v}")
        groups.setdefault(v >> 16, []).append(v & 0xFFFF)
    keys = sorted(groups)
    head = [struct.pack("<II", _NO_RUN, len(keys))]
    head += [struct.pack("<HH", k, len(groups[k]) - 1) for k in keys]
    bodies: list[bytes] = []
    for k in keys:
        lows = groups[k]
        if len(lows) <= _ARRAY_MAX:
            bodies.append(struct.pack(f"<{len(lows)}H", *lows))
        else:
            words = [0] * 1024
            for v in lows:
                words[v >> 6] |= 1 << (v & 63)
            bodies.append(struct.pack("<1024Q", *words))
    offset = 8 + 8 * len(keys)
    for body in bodies:
        head.append(struct.pack("<I", offset))
        offset += len(body)
    return binascii.b2a_base64(b"".join(head + bodies), newline=False).decode()  # base64.b64encode's
