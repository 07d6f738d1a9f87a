"""ClaimWriter hands a claim to its idle thread before the main loop goes on (the claim's etcd request
must not wait for the loop's next flow computation), and never waits behind a claim in flight (a burst of
port-ups must not stall the loop)."""

from __future__ import annotations

import threading
import time

import pytest

from tuplenet.agent import binding
from tuplenet.model import LSP
from tuplenet.store import TxnResult


class BlockingStore:
    """A store whose txn blocks until released; records the claims it was asked for."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.claims: list[str] = []

    def txn(self, compares, success, failure=()) -> TxnResult:
        self.claims.append(success[0].key)
        self.entered.set()
        self.release.wait(10)
        return TxnResult(True, 2, [2])


def port(name: str) -> LSP:
    return LSP("LS-A", name, "10.0.0.2", "f2:00:00:00:00:02")


@pytest.fixture
def store(monkeypatch) -> BlockingStore:
    monkeypatch.setattr(binding, "HANDOFF_WAIT", 5.0)  # a wait that happened would show as seconds
    return BlockingStore()


def idle(w: binding.ClaimWriter) -> None:
    deadline = time.monotonic() + 5
    while not w._idle:
        assert time.monotonic() < deadline, "claim thread never went idle"
        time.sleep(0.001)


def test_a_claim_to_an_idle_writer_is_taken_before_submit_returns(store: BlockingStore) -> None:
    w = binding.ClaimWriter(store, "hv1")
    idle(w)
    t0 = time.monotonic()
    w.submit(port("vm1"), 1)
    assert time.monotonic() - t0 < 1.0 and w._q.empty()  # taken, not queued
    assert store.entered.wait(5) and store.claims == ["entity_view/LS/LS-A/lsp/vm1"]
    store.release.set()
    w.stop()


def test_a_claim_behind_one_in_flight_is_queued_without_waiting(store: BlockingStore) -> None:
    w = binding.ClaimWriter(store, "hv1")
    idle(w)
    w.submit(port("vm1"), 1)
    assert store.entered.wait(5)  # the first claim's request is in flight (blocked)
    t0 = time.monotonic()
    w.submit(port("vm2"), 1)
    assert time.monotonic() - t0 < 1.0 and not w._q.empty()  # queued behind it, no wait
    store.release.set()
    deadline = time.monotonic() + 5
    while w.written < 2:
        assert time.monotonic() < deadline, "second claim never written"
        time.sleep(0.001)
    assert store.claims == ["entity_view/LS/LS-A/lsp/vm1", "entity_view/LS/LS-A/lsp/vm2"]
    w.stop()


def test_a_claim_of_a_port_requested_here_is_not_waited_for(store: BlockingStore, monkeypatch) -> None:
    """Peers reach a port requested here without its claim: the loop must not pay the hand-off for it."""
    taken: list[float] = []
    orig = threading.Event.wait

    def wait(self, timeout=None):  # a hand-off wait shows up as an Event.wait on the main thread
        if threading.current_thread() is threading.main_thread():
            taken.append(timeout)
        return orig(self, timeout)

    w = binding.ClaimWriter(store, "hv1")
    idle(w)
    monkeypatch.setattr(threading.Event, "wait", wait)
    w.submit(LSP("LS-A", "vm1", "10.0.0.2", "f2:00:00:00:00:02", None, None, "hv1"), 1)
    monkeypatch.undo()
    assert taken == []
    assert store.entered.wait(5) and store.claims == ["entity_view/LS/LS-A/lsp/vm1"]  # written all the same
    store.release.set()
    w.stop()


class StartingStore(BlockingStore):
    """A store that also sends claims without waiting (as the gRPC store does); `outcome` is what the
    transport reports for them."""

    def __init__(self, outcome: Exception | None = None, sendable: bool = True) -> None:
        super().__init__()
        self.outcome, self.sendable = outcome, sendable
        self.started: list[str] = []

    def txn_start(self, compares, success, done) -> bool:
        if not self.sendable:
            return False
        self.started.append(success[0].key)
        if self.outcome is None:
            done(TxnResult(True, 2, [2]), None)
        else:
            done(None, self.outcome)
        return True


def written(w: binding.ClaimWriter, n: int) -> None:
    deadline = time.monotonic() + 5
    while w.written < n:
        assert time.monotonic() < deadline, f"{w.written} of {n} claims written"
        time.sleep(0.001)


def test_a_claim_is_sent_without_the_thread_when_the_store_can() -> None:
    s = StartingStore()
    w = binding.ClaimWriter(s, "hv1")
    w.submit(port("vm1"), 1)
    assert s.started == ["entity_view/LS/LS-A/lsp/vm1"] and s.claims == [] and w.written == 1
    w.stop()


def test_a_failed_attempt_is_retried_by_the_thread() -> None:
    from tuplenet.store import StoreError

    s = StartingStore(outcome=StoreError("etcd /v3/kv/txn: connection reset"))
    s.release.set()
    w = binding.ClaimWriter(s, "hv1")
    w.submit(port("vm1"), 1)
    written(w, 1)  # through the thread's txn(), which has the store's failover
    assert s.started == s.claims == ["entity_view/LS/LS-A/lsp/vm1"]
    w.stop()


def test_a_store_that_cannot_send_it_so_leaves_it_to_the_thread() -> None:
    s = StartingStore(sendable=False)
    s.release.set()
    w = binding.ClaimWriter(s, "hv1")
    w.submit(port("vm1"), 1)
    written(w, 1)
    assert s.started == [] and s.claims == ["entity_view/LS/LS-A/lsp/vm1"]
    w.stop()
