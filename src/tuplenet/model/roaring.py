"""0.3's bookkeeping bitmaps: base64 of a RoaringBitmap in the portable serialization format.

0.3's Go tools keep `globals/device_ids` and `ip_book/{LS,LR}/<name>` in this format, so we read and write
it to stay interchangeable with them on one etcd tree. Only 32-bit sets are needed; decoding handles array,
bitmap and run containers, encoding writes array/bitmap containers (cookie 12346) like Go's ToBase64 does.
"""

from __future__ import annotations

import base64
import binascii
import struct

from .addr import ModelError

_NO_RUN = 12346
_RUN = 12347
_ARRAY_MAX = 4096
EMPTY = "OjAAAAAAAAA="  # what Go writes for an empty bitmap


def decode_bitmap(b64: str) -> set[int]:
    """Members of a base64 portable RoaringBitmap; '' decodes to the empty set."""
    if not b64:
        return set()
    try:
        data = base64.b64decode(b64, validate=True)
        return _decode(data)
    except (binascii.Error, struct.error, IndexError, ValueError) as exc:
        raise ModelError(f"not a base64 roaring bitmap: {exc}") from None


def _decode(data: bytes) -> set[int]:
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
    header = [struct.unpack_from("<HH", data, pos + 4 * i) for i in range(size)]
    pos += 4 * size
    if not run_flags or size >= 4:
        pos += 4 * size  # offset header: containers follow back to back, so we can skip it
    out: set[int] = set()
    for i, (hi, card_minus_1) in enumerate(header):
        base = hi << 16
        card = card_minus_1 + 1
        is_run = bool(run_flags) and bool(run_flags[i // 8] & (1 << (i % 8)))
        if is_run:
            nruns = struct.unpack_from("<H", data, pos)[0]
            pos += 2
            for r in range(nruns):
                start, length = struct.unpack_from("<HH", data, pos + 4 * r)
                out.update(range(base + start, base + start + length + 1))
            pos += 4 * nruns
        elif card <= _ARRAY_MAX:
            out.update(base + v for v in struct.unpack_from(f"<{card}H", data, pos))
            pos += 2 * card
        else:
            words = struct.unpack_from("<1024Q", data, pos)
            pos += 8192
            for w, word in enumerate(words):
                while word:
                    low = word & -word
                    out.add(base + w * 64 + low.bit_length() - 1)
                    word ^= low
    return out


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
    return base64.b64encode(b"".join(head + bodies)).decode()
