"""Watch resume logic against a scripted stream: no loss, no duplicates, compaction, close()."""

from __future__ import annotations

import base64
import json
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tuplenet.store import Compacted, Store, WatchBatch
from tuplenet.store.watch import Watch, iter_lines


class FakeResp:
    """read1() over scripted chunks; ends with EOF (like etcd going away) or blocks until released."""

    def __init__(self, chunks: list[bytes], block: threading.Event | None = None) -> None:
        self.chunks = list(chunks)
        self.block = block

    def read1(self, n: int) -> bytes:
        if self.chunks:
            return self.chunks.pop(0)
        if self.block is not None:
            self.block.wait(5)
        return b""


class FakeConn:
    sock = None

    def close(self) -> None:
        pass


def put_line(*revs: int, prefix: str = "/tn/") -> bytes:
    events = [{"kv": {"key": base64.b64encode(f"{prefix}k{r}".encode()).decode(),
                      "value": base64.b64encode(b"v").decode(), "mod_revision": str(r)}} for r in revs]
    return json.dumps({"result": {"header": {"revision": str(max(revs))}, "events": events}}).encode() + b"\n"


def created(rev: int) -> bytes:
    return json.dumps({"result": {"header": {"revision": str(rev)}, "created": True}}).encode() + b"\n"


def scripted_watch(start: int, streams: list[FakeResp]) -> tuple[Watch, list[int]]:
    store = Store("127.0.0.1:1", prefix="/tn/")
    watch = store.watch("", start)
    starts: list[int] = []

    def connect() -> tuple[FakeConn, FakeResp]:
        starts.append((watch._last or 0) + 1 if watch._last is not None else 0)
        if not streams:
            watch.close()
            raise ConnectionRefusedError("script over")
        return FakeConn(), streams.pop(0)

    watch._connect = connect  # type: ignore[method-assign]
    return watch, starts


def revisions(batches: list[WatchBatch]) -> list[int]:
    return [e.kv.mod_revision for b in batches for e in b.events]


def test_resume_drops_replayed_events() -> None:
    first = FakeResp([created(3), put_line(3, 4), put_line(5)[:20]])  # dies mid-line
    second = FakeResp([created(9), put_line(4, 5, 6), put_line(6), put_line(7, 8)])
    watch, starts = scripted_watch(3, [first, second])
    batches = list(watch)
    assert revisions(batches) == [3, 4, 5, 6, 7, 8]
    assert starts == [3, 5, 9]  # the last attempt (script over) would resume after 8
    assert [b.revision for b in batches] == [4, 6, 8]
    assert watch.reconnects >= 1


def test_progress_notification_advances_resume_point() -> None:
    progress = json.dumps({"result": {"header": {"revision": "20"}}}).encode() + b"\n"
    streams = [FakeResp([created(20), put_line(2), progress]), FakeResp([created(20)])]
    watch, starts = scripted_watch(1, streams)
    batches = list(watch)
    assert batches == [batches[0], WatchBatch([], 20)]
    assert starts[:2] == [1, 21]


def test_watch_from_now_uses_created_revision() -> None:
    watch, starts = scripted_watch(0, [FakeResp([created(41)]), FakeResp([created(41), put_line(42)])])
    assert revisions(list(watch)) == [42]
    assert starts[:2] == [0, 42]


def test_compacted_is_raised() -> None:
    canceled = json.dumps({"result": {"header": {}, "canceled": True, "compact_revision": "17"}}).encode()
    watch, _ = scripted_watch(2, [FakeResp([created(30), canceled + b"\n"])])
    with pytest.raises(Compacted) as info:
        list(watch)
    assert info.value.compact_revision == 17


def test_close_from_another_thread_ends_iteration() -> None:
    release = threading.Event()
    watch, _ = scripted_watch(1, [FakeResp([created(1), put_line(1)], block=release)])
    it = iter(watch)
    assert revisions([next(it)]) == [1]
    timer = threading.Timer(0.05, lambda: (watch.close(), release.set()))
    timer.start()
    assert list(it) == []
    timer.join()


@given(st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")), min_size=1, max_size=20),
       st.lists(st.integers(min_value=1, max_value=17), min_size=1, max_size=50))
def test_iter_lines_any_chunking(lines: list[bytes], cuts: list[int]) -> None:
    data = b"".join(line + b"\n" for line in lines)
    chunks, pos, i = [], 0, 0
    while pos < len(data):
        n = cuts[i % len(cuts)]
        chunks.append(data[pos:pos + n])
        pos, i = pos + n, i + 1
    stream = iter(chunks)
    assert list(iter_lines(lambda _n: next(stream, b""))) == [line for line in lines if line]
