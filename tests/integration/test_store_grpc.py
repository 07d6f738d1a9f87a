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
