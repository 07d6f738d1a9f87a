"""The pcap reader copes with what OVS writes: growing files, half-written records, replaced files."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from tuplenet.sandbox.pcap import PcapFollower, parse_pcap, read_pcap


def header(endian: str = "<", nano: bool = False) -> bytes:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    return struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 65535, 1)


def record(frame: bytes, endian: str = "<") -> bytes:
    return struct.pack(endian + "IIII", 1, 2, len(frame), len(frame)) + frame


FRAMES = [bytes([i]) * (60 + i) for i in range(3)]


@pytest.mark.parametrize("endian,nano", [("<", False), (">", False), ("<", True), (">", True)])
def test_parse_all_byte_orders(endian: str, nano: bool) -> None:
    data = header(endian, nano) + b"".join(record(f, endian) for f in FRAMES)
    assert parse_pcap(data) == (FRAMES, len(data))


def test_partial_last_record_is_left_for_later() -> None:
    full = header() + record(FRAMES[0]) + record(FRAMES[1])
    for cut in (len(full) - 1, len(full) - len(FRAMES[1]) - 10):  # in the data, in the record header
        frames, used = parse_pcap(full[:cut])
        assert frames == FRAMES[:1]
        assert used == len(header()) + len(record(FRAMES[0]))
    assert parse_pcap(header()[:10]) == ([], 0)
    with pytest.raises(ValueError):
        parse_pcap(b"\x00" * 24)


def test_follower_reads_incrementally(tmp_path: Path) -> None:
    path = tmp_path / "p.pcap"
    f = PcapFollower(str(path))
    assert f.frames() == [] and f.count() == 0  # no file yet
    path.write_bytes(header()[:5])
    assert f.count() == 0
    blob = header() + record(FRAMES[0]) + record(FRAMES[1])
    path.write_bytes(blob[:-3])
    assert f.frames() == FRAMES[:1]
    with open(path, "ab") as out:
        out.write(blob[-3:] + record(FRAMES[2]))
    assert f.frames() == FRAMES
    assert f.since(1) == FRAMES[1:]
    assert read_pcap(str(path)) == FRAMES


def test_follower_restarts_on_replaced_or_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "p.pcap"
    path.write_bytes(header() + b"".join(record(f) for f in FRAMES))
    f = PcapFollower(str(path))
    assert f.count() == 3
    os.unlink(path)
    assert f.count() == 0
    path.write_bytes(header() + record(FRAMES[2]))
    assert f.frames() == FRAMES[2:]
    with open(path, "r+b") as out:
        out.truncate(len(header()))
    assert f.count() == 0
