"""The agent's import hold (pure logic): changes under entity_view/ are held while the import marker exists,
applied together when it goes; a stale marker is reported and holds nothing; a listing during an import
starts from the tree before it."""

from __future__ import annotations

import logging
import time

from tuplenet.agent.importhold import ImportHold
from tuplenet.model import IMPORT_MARKER_KEY, ModelError, decode, parse_key
from tuplenet.model.importmark import ImportMarker
from tuplenet.store import KV, Compacted, Event

NOW = 1_000_000.0


def _decode(kv: KV, deleted: bool):
    parsed = parse_key(kv.key)
    if parsed is None:
        return None
    fkey = (parsed[0], *parsed[1])
    if deleted:
        return fkey, None, None
    try:
        return fkey, decode(parsed[0], parsed[1], kv.value), kv
    except ModelError:
        return None


def _hold(max_age: float = 60.0, emitted: list | None = None) -> ImportHold:
    sink = emitted if emitted is not None else []
    return ImportHold(_decode, sink.append, max_age=max_age, now=lambda: NOW)


def _marker(rev: int, started: float = NOW - 5, create: int | None = None) -> Event:
    value = ImportMarker("abc", 10, 3, int(started), "host", 1).to_value()
    return Event("PUT", KV(IMPORT_MARKER_KEY, value, rev, create or rev))


def _put(key: str, value: str, rev: int) -> Event:
    return Event("PUT", KV(key, value, rev, rev))


def _del(key: str, rev: int) -> Event:
    return Event("DELETE", KV(key, "", rev, 0))


def test_changes_are_held_while_the_marker_exists(caplog):
    h = _hold()
    caplog.set_level(logging.WARNING)
    assert [c[0] for c in h.feed([_put("entity_view/LS/a", "id=1", 2)])] == [("LS", "a")]
    assert h.feed([_marker(3), _put("entity_view/LS/b", "id=2", 4)]) == []
    assert h.feed([_put("entity_view/LS/c", "id=3", 5), _put("entity_view/LS/b", "id=9", 6),
                   _del("entity_view/LS/a", 7)]) == []
    assert h.status()["held_changes"] == 3 and h.status()["holding"].startswith("10 records, digest abc")
    assert sum("holding topology changes" in r.message for r in caplog.records) == 1
    out = h.feed([_put("entity_view/LS/d", "id=4", 8), _del(IMPORT_MARKER_KEY, 8), _put("entity_view/LS/e", "id=5", 9)])
    assert [(c[0], c[1].id if c[1] else None) for c in out] == [
        (("LS", "c"), 3), (("LS", "b"), 9), (("LS", "a"), None), (("LS", "d"), 4), (("LS", "e"), 5)]
    assert h.status()["holding"] is None and h.status()["holds"] == 1


def test_stale_marker_is_reported_and_holds_nothing(caplog):
    h = _hold(max_age=60)
    caplog.set_level(logging.ERROR)
    out = h.feed([_marker(3, started=NOW - 3600), _put("entity_view/LS/b", "id=2", 4)])
    assert [c[0] for c in out] == [("LS", "b")]
    assert "STALE IMPORT MARKER" in caplog.text and "tpctl import --resume" in caplog.text
    assert h.status()["stale_marker"] is not None
    # A resume rewrites the marker with a fresh start time: held again.
    assert h.feed([_marker(5), _put("entity_view/LS/c", "id=3", 6)]) == []
    assert [c[0] for c in h.feed([_del(IMPORT_MARKER_KEY, 7)])] == [("LS", "c")]


def test_timer_releases_a_marker_that_goes_stale_while_held(caplog):
    emitted: list = []
    h = _hold(max_age=0.3, emitted=emitted)
    caplog.set_level(logging.ERROR)
    h.feed([_marker(3, started=NOW), _put("entity_view/LS/b", "id=2", 4)])
    deadline = time.monotonic() + 5
    while not emitted and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [c[0] for batch in emitted for c in batch] == [("LS", "b")]
    assert "STALE IMPORT MARKER" in caplog.text and h.status()["holding"] is None
    assert [c[0] for c in h.feed([_put("entity_view/LS/c", "id=3", 5)])] == [("LS", "c")]
    h.close()


class _Store:
    """get_prefix_page at a revision: the tree before the import, or Compacted."""

    def __init__(self, before: list[KV] | None) -> None:
        self.before = before
        self.asked: list[int] = []

    def get_prefix_page(self, prefix, after, limit, revision):
        self.asked.append(revision)
        if self.before is None:
            raise Compacted(revision + 5)
        return self.before, 99, False


def test_listing_during_an_import_starts_from_the_tree_before_it():
    old = [KV("entity_view/LS/a", "id=1", 2, 2), KV("entity_view/LS/x", "id=7", 3, 3)]
    now = [KV("entity_view/LS/a", "id=1", 2, 2), _marker(10, create=10).kv,
           KV("entity_view/LS/b", "id=2", 11, 11), KV("entity_view/LS/x", "id=8", 12, 3)]
    h = _hold()
    store = _Store(old)
    assert h.listing(store, now, 12) == (old, 9) and store.asked == [9]
    # The watch replays from revision 10: the marker (already known), then the import's writes, held.
    assert h.feed([_marker(10), _put("entity_view/LS/b", "id=2", 11), _put("entity_view/LS/x", "id=8", 12)]) == []
    assert [c[0] for c in h.feed([_del(IMPORT_MARKER_KEY, 13)])] == [("LS", "b"), ("LS", "x")]


def test_listing_with_a_compacted_past_holds_what_was_written_since_the_marker():
    now = [KV("entity_view/LS/a", "id=1", 2, 2), _marker(10, create=10).kv, KV("entity_view/LS/b", "id=2", 11, 11)]
    h = _hold()
    kvs, rev = h.listing(_Store(None), now, 12)
    assert rev == 12 and [kv.key for kv in kvs] == ["entity_view/LS/a"]
    assert [c[0] for c in h.feed([_del(IMPORT_MARKER_KEY, 13)])] == [("LS", "b")]


def test_listing_with_a_stale_marker_applies_the_tree():
    now = [KV("entity_view/LS/a", "id=1", 2, 2), _marker(10, started=0).kv]
    store = _Store([])
    assert _hold().listing(store, now, 12) == (now, 12) and store.asked == []


def test_listing_without_marker_forgets_an_earlier_hold():
    h = _hold()
    h.feed([_marker(3), _put("entity_view/LS/b", "id=2", 4)])
    now = [KV("entity_view/LS/b", "id=2", 4, 4)]
    assert h.listing(_Store([]), now, 20) == (now, 20)
    assert h.status()["holding"] is None and h.status()["held_changes"] == 0
    assert [c[0] for c in h.feed([_put("entity_view/LS/c", "id=3", 21)])] == [("LS", "c")]
