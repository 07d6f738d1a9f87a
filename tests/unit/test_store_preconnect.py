"""Store.preconnect (tpcni opens its etcd connection while it imports the control layer): the first request
reuses that connection and still counts as its first use (TLS refusal hints depend on it), and an endpoint
that cannot be reached leaves nothing behind for the request to trip on."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from canned_server import CannedServer

from tuplenet.sandbox.procs import wait_for
from tuplenet.store import Store
from tuplenet.store.transport import Transport

ANSWER = b'HTTP/1.1 200 OK\r\nContent-Length: 27\r\n\r\n{"header":{"revision":"7"}}'


@pytest.fixture
def gateway() -> Iterator[CannedServer]:
    """A loopback 'etcd gateway' answering every request on every connection (it counts them: `accepted`)."""
    srv = CannedServer(lambda _head: ANSWER)
    yield srv
    srv.close()


def test_the_first_request_uses_the_connection_opened_ahead_as_a_fresh_one(gateway) -> None:
    port = gateway.port
    t = Transport(f"127.0.0.1:{port}", timeout=5)
    t.preconnect()  # blocks until connected
    assert len(t._idle[0]) == 1
    wait_for(lambda: gateway.accepted == 1, timeout=5, what="the server's accept")
    conn, reused = t._acquire(0, 5)
    assert reused is False  # its first request: treated like a connection opened for it
    t._release(0, conn)
    assert t._acquire(0, 5)[1] is True
    t.close()


def test_store_preconnect_returns_at_once_and_the_request_finds_the_connection(gateway) -> None:
    port = gateway.port
    store = Store(f"127.0.0.1:{port}", "/tn/", timeout=5)
    store.preconnect()
    wait_for(lambda: gateway.accepted == 1 and store._t._idle[0], timeout=5, what="the connection opened ahead")
    assert store.get("k") is None
    assert gateway.accepted == 1 and len(store._t._idle[0]) == 1  # no second connection
    store.close()


def test_preconnect_to_an_unreachable_endpoint_changes_nothing() -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]  # closed again: refused
    t = Transport(f"127.0.0.1:{port}", timeout=0.5)
    t.preconnect()
    assert t._idle == [[]] and not t._unused
    t.close()
