"""The store's integration tests again, over etcd's gRPC API (the agent's transport).

Every test of test_store.py runs here with TUPLENET_ETCD_TRANSPORT=grpc, so both transports keep one contract
(resume from revision, compaction -> re-list, failover, leases, txns, paging); plus gRPC-only checks.
"""

from __future__ import annotations

import socket
import time

import pytest
from test_store import *  # noqa: F403 - the same tests, collected again under the gRPC transport
from test_store import Collector

from tuplenet.sandbox.etcd import EtcdServer
from tuplenet.store import Store


@pytest.fixture(autouse=True)
def _grpc_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUPLENET_ETCD_TRANSPORT", "grpc")


def test_grpc_transport_is_selected(etcd: EtcdServer, prefix: str) -> None:
    with Store(etcd.endpoint, prefix=prefix) as s:
        assert s.transport == "grpc" and type(s.watch("")).__name__ == "GrpcWatch"
        rev = s.put("k", "v")
        col = Collector(s.watch("", rev))
        try:
            col.wait_revision(rev, timeout=5)
        finally:
            col.stop()


def test_failover_past_a_hung_endpoint(etcd: EtcdServer, prefix: str) -> None:
    """A listener that never speaks HTTP/2 costs at most one attempt slot; gRPC usually gives up on it sooner
    than the gateway transport (no SETTINGS frame), so only the upper bounds of test_store's version hold."""
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(16)
    try:
        with Store([f"127.0.0.1:{hung.getsockname()[1]}", etcd.endpoint], prefix=prefix, timeout=2.0) as s:
            t0 = time.monotonic()
            rev = s.put("k", "v")
            assert time.monotonic() - t0 < 1.9
            assert s.endpoints[s._t.preferred] == etcd.endpoint
            t0 = time.monotonic()
            assert s.get("k").value == "v"
            assert time.monotonic() - t0 < 0.5
            col = Collector(s.watch("k", rev))
            try:
                col.wait_revision(rev, timeout=5)
            finally:
                col.stop()
    finally:
        hung.close()


def test_txn_start_sends_at_once_and_reports_on_a_grpc_thread(etcd: EtcdServer, prefix: str) -> None:
    import threading

    from tuplenet.store import Compare, Op

    with Store(etcd.endpoint, prefix=prefix) as s:
        outcomes: list = []
        done = threading.Event()

        def report(result, error) -> None:
            outcomes.append((result, error, threading.current_thread() is threading.main_thread()))
            done.set()

        assert s.txn_start([Compare.missing("lock")], [Op.put("lock", "a")], report)
        assert done.wait(5)
        (result, error, on_main), = outcomes
        assert error is None and result.succeeded and not on_main and s.get("lock").value == "a"
        done.clear()
        assert s.txn_start([Compare.missing("lock")], [Op.put("lock", "b")], report)  # the compare fails
        assert done.wait(5)
        assert outcomes[1][0] is not None and not outcomes[1][0].succeeded and s.get("lock").value == "a"


def test_txn_start_needs_a_token_in_hand_when_etcd_wants_one() -> None:
    """Fetching a token is a round trip: with a user and no token yet nothing is sent (txn() logs in)."""
    from tuplenet.store import Compare, EtcdSecurity, Op

    with Store("127.0.0.1:9", prefix="/p/", security=EtcdSecurity(user="agent", password="x"),
               transport="grpc") as s:
        assert s.txn_start([Compare.missing("k")], [Op.put("k", "v")], lambda r, e: None) is False


def test_txn_start_reports_an_unreachable_etcd_as_an_error(prefix: str) -> None:
    import threading

    from tuplenet.store import Compare, Op, StoreError

    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    addr = f"127.0.0.1:{port.getsockname()[1]}"
    port.close()  # nobody listens there
    with Store(addr, prefix=prefix, timeout=1.0) as s:
        got: list = []
        done = threading.Event()
        assert s.txn_start([Compare.missing("k")], [Op.put("k", "v")], lambda r, e: (got.append((r, e)), done.set()))
        assert done.wait(5)
        assert got[0][0] is None and isinstance(got[0][1], StoreError)
