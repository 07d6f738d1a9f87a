"""Hostile RoaringBitmap values (anyone with etcd write access can plant one): bounded decode, clean error,
and the controller rebuilds the book from the tree instead of spending minutes or gigabytes on it."""

from __future__ import annotations

import base64
import struct
import time

import pytest

from tuplenet.control import Controller
from tuplenet.control.memstore import MemStore
from tuplenet.model import DEVICE_IDS_KEY, ModelError, ip_book_key
from tuplenet.model.roaring import decode_bitmap, encode_bitmap


def _runs_bitmap(containers: int, declared_card: int, run_length: int) -> str:
    """Run containers (cookie 12347, offset header when >= 4), each with one run 0..run_length."""
    head = struct.pack("<HH", 12347, containers - 1) + bytes([0xFF]) * ((containers + 7) // 8)
    head += b"".join(struct.pack("<HH", k, declared_card - 1) for k in range(containers))
    body = struct.pack("<HHH", 1, 0, run_length - 1)
    if containers >= 4:
        head += b"".join(struct.pack("<I", 0) for _ in range(containers))
    return base64.b64encode(head + body * containers).decode()


def _decode_fast(value: str) -> str:
    t0 = time.perf_counter()
    with pytest.raises(ModelError) as exc:
        decode_bitmap(value)
    assert time.perf_counter() - t0 < 0.5
    return str(exc.value)


def test_run_container_larger_than_declared_is_refused():
    # 64 containers declaring 1 member each but holding a run of 65536: 4 M members from 1.5 KB.
    msg = _decode_fast(_runs_bitmap(64, 1, 65536))
    assert "does not hold its declared 1 members" in msg and "\n" not in msg


def test_total_members_capped():
    # Honest run containers, 64 x 65536 = 4 M members: over the cap before anything is expanded.
    assert "more than the 131072 allowed" in _decode_fast(_runs_bitmap(64, 65536, 65536))


def test_bitmap_container_popcount_must_match():
    data = struct.pack("<II", 12346, 1) + struct.pack("<HH", 0, 4096) + struct.pack("<I", 16)
    data += b"\xff" * 8192  # 65536 bits set, 4097 declared
    assert "does not hold its declared 4097" in _decode_fast(base64.b64encode(data).decode())


@pytest.mark.parametrize("data", [
    struct.pack("<II", 12346, 0xFFFFFFFF),  # 4 G containers claimed in 8 bytes
    struct.pack("<II", 12346, 2) + struct.pack("<HHHH", 5, 0, 5, 0) + struct.pack("<II", 0, 0) + b"\0" * 4,
    struct.pack("<HH", 12347, 0) + b"\x01" + struct.pack("<HH", 0, 9) + struct.pack("<HHH", 1, 65530, 9),
])
def test_malformed_headers_are_refused(data):
    _decode_fast(base64.b64encode(data).decode())


def test_legitimate_values_still_decode():
    assert decode_bitmap(encode_bitmap(range(65536))) == set(range(65536))
    assert decode_bitmap(_runs_bitmap(2, 65536, 65536)) == set(range(2 << 16))


def test_ls_add_rebuilds_a_hostile_device_book():
    ctl = Controller(MemStore())
    ctl.add_switch("ls1")
    ctl.add_switch_port("ls1", "p1", "10.0.0.2")
    bomb = _runs_bitmap(256, 1, 65536)
    ctl.store.put(DEVICE_IDS_KEY, bomb)
    ctl.store.put(ip_book_key("LS", "ls1"), bomb)
    t0 = time.perf_counter()
    assert ctl.add_switch("ls2").id == 2  # the book is rebuilt from the tree: id 1 is ls1's
    ctl.add_switch_port("ls1", "p2", "10.0.0.3")
    assert time.perf_counter() - t0 < 2.0
    assert decode_bitmap(ctl.store.get(DEVICE_IDS_KEY).value) == {1, 2}
    assert decode_bitmap(ctl.store.get(ip_book_key("LS", "ls1")).value) == {2, 3}
