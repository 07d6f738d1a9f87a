"""Interrupted imports (etcd gone, Ctrl-C, kill) against the in-memory store: the marker stays, a re-run of
the same file completes it, another file is refused, --abandon drops the marker; one batch needs no marker."""

from __future__ import annotations

import pytest

from tuplenet.control import Conflict, Controller, NotFound
from tuplenet.control.importwrite import ImportInterrupted
from tuplenet.control.memstore import MemStore
from tuplenet.model import DEVICE_IDS_KEY, IMPORT_MARKER_KEY, ip_book_key
from tuplenet.model.importmark import ImportMarker
from tuplenet.model.roaring import decode_bitmap
from tuplenet.store import StoreError


def _records(switches: int = 6, ports: int = 100, with_ids: bool = True) -> list[tuple[int, str, str]]:
    out = []
    for s in range(switches):
        out.append(f"entity_view/LS/ls{s}\t" + (f"id={s + 10}" if with_ids else ""))
        out += [f"entity_view/LS/ls{s}/lsp/p{p}\tip=10.{s}.{p // 250}.{p % 250 + 2},mac=f2:01:00:00:00:01"
                for p in range(ports)]
    out.append("entity_view/LR/lr0\t")
    return [(n, *line.split("\t")) for n, line in enumerate(out, 1)]


def _interrupt_at(store: MemStore, txn_number: int, exc: BaseException) -> None:
    """Make the store fail its `txn_number`-th transaction from now (the write never happens)."""
    count = {"n": 0}

    def hook(s: MemStore) -> None:
        count["n"] += 1
        if count["n"] == txn_number:
            raise exc
        s.before_txn = hook

    store.before_txn = hook


def _state(ctl: Controller) -> dict[str, str]:
    return {k: kv.value for k, kv in ctl.store.data.items()}


@pytest.mark.parametrize("exc", [StoreError("etcd unavailable"), KeyboardInterrupt()])
def test_interrupted_import_is_held_then_completed_by_a_rerun(exc):
    records = _records()
    ref = Controller(MemStore())
    ref.add_switch("mine")
    ref.import_records(records)
    ctl = Controller(MemStore())
    ctl.add_switch("mine")
    _interrupt_at(ctl.store, 4, exc)  # marker, ids, 2 batches, then the failure
    with pytest.raises(ImportInterrupted, match=r"import stopped after 2 of \d+ transactions.*--resume"):
        ctl.import_records(records)
    marker = ImportMarker.parse(ctl.store.get(IMPORT_MARKER_KEY).value)
    assert marker.records == len(records) and marker.batches > 3 and marker.started > 0
    written = [k for _, k, _ in records if k in ctl.store.data]
    assert 0 < len(written) < len(records)
    assert ctl.export_records()[0][-1][0] != IMPORT_MARKER_KEY  # the marker is no record

    result = ctl.import_records(records)  # a plain re-run of the same file resumes
    assert result.resumed and result.present == len(written)
    assert result.created == len(records) - len(written)
    assert IMPORT_MARKER_KEY not in ctl.store.data
    assert ctl.export_records()[0] == ref.export_records()[0]
    assert ctl.find_id_conflicts() == [] and ctl.get_switch("mine").id == 1
    ids = {d.id for d in ctl.list_switches() + ctl.list_routers()}
    assert decode_bitmap(ctl.store.get(DEVICE_IDS_KEY).value) == ids
    assert decode_bitmap(ctl.store.get(ip_book_key("LS", "ls3")).value) == {
        (p // 250) << 8 | (p % 250 + 2) for p in range(100)}


def test_resume_assigns_ids_once_for_devices_without_one():
    records = _records(with_ids=False)
    ctl = Controller(MemStore())
    _interrupt_at(ctl.store, 5, StoreError("gone"))
    with pytest.raises(ImportInterrupted):
        ctl.import_records(records)
    ctl.import_records(records, resume=True)
    ids = sorted(d.id for d in ctl.list_switches() + ctl.list_routers())
    assert ids == list(range(1, 8))  # no id leaked to the reservation of the interrupted run
    assert decode_bitmap(ctl.store.get(DEVICE_IDS_KEY).value) == set(ids)


def test_another_import_is_refused_while_one_is_unfinished_and_abandon_drops_the_marker():
    ctl = Controller(MemStore())
    _interrupt_at(ctl.store, 3, StoreError("gone"))
    with pytest.raises(ImportInterrupted):
        ctl.import_records(_records())
    before = _state(ctl)
    with pytest.raises(Conflict, match=r"another import is in progress \(607 records, digest [0-9a-f]{16}"):
        ctl.import_records(_records(switches=2))
    assert _state(ctl) == before
    assert ctl.abandon_import().records == 607
    assert IMPORT_MARKER_KEY not in ctl.store.data
    with pytest.raises(NotFound, match="no import is in progress"):
        ctl.abandon_import()


def test_resume_without_marker_skips_equal_records_only():
    records = _records(switches=1, ports=3, with_ids=False)
    ctl = Controller(MemStore())
    ctl.import_records(records)
    again = ctl.import_records(records, resume=True)
    assert (again.present, again.created, again.batches) == (len(records), 0, 0)
    changed = [(n, k, v.replace("mac=f2:01:00:00:00:01", "mac=f2:01:00:00:00:02")) for n, k, v in records]
    with pytest.raises(Exception, match="already exists"):
        ctl.import_records(changed, resume=True)


def test_single_batch_import_writes_no_marker():
    ctl = Controller(MemStore())
    seen = []
    real_txn = ctl.store.txn

    def spy(compares, success, failure=()):
        seen.extend(op.key for op in success)
        return real_txn(compares, success, failure)

    ctl.store.txn = spy
    ctl.import_records(_records(switches=1, ports=10))
    assert IMPORT_MARKER_KEY not in seen and "entity_view/LS/ls0/lsp/p9" in seen


def test_concurrent_change_in_a_fresh_import_rolls_back_and_drops_the_marker():
    ctl = Controller(MemStore())
    count = {"n": 0}

    def meddle(s: MemStore) -> None:
        count["n"] += 1
        if count["n"] == 4:
            s.put("entity_view/LS/ls5", "id=99")  # a later batch guards this key as missing
        else:
            s.before_txn = meddle

    ctl.store.before_txn = meddle
    with pytest.raises(Exception, match="rolled back, nothing written"):
        ctl.import_records(_records())
    assert set(ctl.store.data) <= {"globals/version", "entity_view/LS/ls5", DEVICE_IDS_KEY}
