"""Read the pcap files that OVS dummy ports write, incrementally and tolerant of a half-written record.

ovs-vswitchd appends to a port's `tx_pcap` while we read it, so the last record may be incomplete; we
only ever consume whole records and pick the rest up on the next read.
"""

from __future__ import annotations

import os
import struct

_MAGICS = {
    b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">",  # microsecond timestamps
    b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\x3c\x4d": ">",  # nanosecond timestamps
}
GLOBAL_HEADER_LEN = 24
RECORD_HEADER_LEN = 16


def parse_pcap(data: bytes) -> tuple[list[bytes], int]:
    """Frames of every complete record in `data` and the number of bytes they (plus the header) span."""
    if len(data) < GLOBAL_HEADER_LEN:
        return [], 0
    endian = _MAGICS.get(data[:4])
    if endian is None:
        raise ValueError(f"not a pcap file (magic {data[:4].hex()})")
    frames, used = _parse_records(data, GLOBAL_HEADER_LEN, endian)
    return frames, used


def _parse_records(data: bytes, pos: int, endian: str) -> tuple[list[bytes], int]:
    frames: list[bytes] = []
    hdr = struct.Struct(endian + "IIII")
    while pos + RECORD_HEADER_LEN <= len(data):
        _, _, incl_len, _ = hdr.unpack_from(data, pos)
        end = pos + RECORD_HEADER_LEN + incl_len
        if end > len(data):
            break
        frames.append(bytes(data[pos + RECORD_HEADER_LEN:end]))
        pos = end
    return frames, pos


def read_pcap(path: str) -> list[bytes]:
    """All complete frames in the pcap file at `path` ([] if it does not exist yet)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    return parse_pcap(data)[0]


class PcapFollower:
    """Follows one growing pcap file, reading only the bytes added since the last call.

    If the file is replaced or truncated (a port deleted and re-added) it starts over, so the frame
    list always describes the file as it is now.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._frames: list[bytes] = []
        self._offset = 0
        self._endian = ""
        self._ident: tuple[int, int] | None = None

    def reset(self) -> None:
        self._frames, self._offset, self._endian, self._ident = [], 0, "", None

    def frames(self) -> list[bytes]:
        """Every complete frame in the file so far (a fresh list the caller may keep)."""
        self._update()
        return list(self._frames)

    def count(self) -> int:
        self._update()
        return len(self._frames)

    def since(self, mark: int) -> list[bytes]:
        """Frames after the first `mark` ones."""
        self._update()
        return self._frames[mark:]

    def _update(self) -> None:
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                ident = (st.st_dev, st.st_ino)
                if ident != self._ident or st.st_size < self._offset:
                    self.reset()
                    self._ident = ident
                if not self._endian:
                    head = f.read(GLOBAL_HEADER_LEN)
                    if len(head) < GLOBAL_HEADER_LEN:
                        return
                    endian = _MAGICS.get(head[:4])
                    if endian is None:
                        raise ValueError(f"{self.path}: not a pcap file")
                    self._endian, self._offset = endian, GLOBAL_HEADER_LEN
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            self.reset()
            return
        new, used = _parse_records(data, 0, self._endian)
        self._frames.extend(new)
        self._offset += used
