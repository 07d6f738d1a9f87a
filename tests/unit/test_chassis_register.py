"""ChassisPresence.request: the main loop asks for its chassis record and never waits for etcd (a frozen etcd
held it for the client's 5 s timeout, and with it a new port's flows: test_port_up_path's rare failure)."""

import threading
import time

from tuplenet.agent.chassis import ChassisPresence
from tuplenet.model import Chassis
from tuplenet.sandbox.procs import wait_for
from tuplenet.store import TxnResult


class BlockingStore:
    def __init__(self) -> None:
        self.go = threading.Event()
        self.txns: list[tuple] = []

    def txn(self, compares, success, failure=()):
        self.txns.append((compares, success))
        self.go.wait(10)
        return TxnResult(True, len(self.txns), [])


def test_request_returns_at_once_while_etcd_hangs_and_writes_once() -> None:
    store = BlockingStore()
    p = ChassisPresence(store, "hv1", "10.0.0.1")  # type: ignore[arg-type]
    t0 = time.perf_counter()
    for _ in range(20):  # one per main-loop batch while the record is missing
        p.request(None, None)
    assert time.perf_counter() - t0 < 0.5
    wait_for(lambda: len(store.txns) == 1, timeout=5, what="the registration started")
    store.go.set()
    wait_for(lambda: p.registrations >= 1, timeout=5, what="the registration done")
    wait_for(lambda: not p._busy, timeout=5, what="the writer idle")
    assert len(store.txns) <= 2  # the first, plus at most one for the requests queued while it hung
    n = len(store.txns)
    p.request(None, None)  # our write has not come back through the watch yet: not again
    time.sleep(0.1)
    assert len(store.txns) == n
    p.request(Chassis("hv1", "10.0.0.1", 1), 7)  # it came back
    p.request(None, None)  # and was deleted since: register again
    wait_for(lambda: len(store.txns) == n + 1, timeout=5, what="a new registration")


def test_nothing_written_when_the_record_is_ours() -> None:
    store = BlockingStore()
    store.go.set()
    p = ChassisPresence(store, "hv1", "10.0.0.1")  # type: ignore[arg-type]
    p.request(Chassis("hv1", "10.0.0.1", 1), 3)
    time.sleep(0.1)
    assert store.txns == []
    p.request(Chassis("hv1", "10.0.0.9", 1), 4)  # another IP recorded: ours is written over it (CAS on 4)
    wait_for(lambda: len(store.txns) == 1, timeout=5, what="the registration")
