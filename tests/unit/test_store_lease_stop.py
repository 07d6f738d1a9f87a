"""A stopping process must not wait out an unreachable etcd on its leases, and a keepalive refresh that ends
after the stop must not bring the lease back (a re-grant would re-put a stopped agent's keys)."""

from __future__ import annotations

import threading
import time
from typing import Any

from tuplenet.store.lease import Lease


class HungKeepalive:
    """A transport whose keepalive hangs until released and then finds the lease gone (revoked meanwhile)."""

    timeout = 5.0

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()
        self.calls: list[tuple[str, float | None]] = []

    def call(self, path: str, body: dict[str, Any], idempotent: bool = True,
             timeout: float | None = None) -> dict[str, Any]:
        self.calls.append((path, timeout))
        if path == "/v3/lease/keepalive":
            self.entered.set()
            self.release.wait(10)
            return {"result": {"ID": body["ID"], "TTL": "0"}}
        if path == "/v3/lease/grant":
            return {"ID": "99", "TTL": "3"}
        return {}


def refreshing(t: HungKeepalive) -> tuple[Lease, threading.Thread]:
    """A lease whose keepalive thread is inside a refresh that hangs on `t`."""
    lease = Lease(t, 0x10, 3)  # type: ignore[arg-type]
    lease.start_keepalive(interval=0.01)
    thread = lease._thread
    assert thread is not None and t.entered.wait(5)
    return lease, thread


def test_revoke_does_not_wait_out_a_hung_refresh_and_nothing_is_regranted() -> None:
    t = HungKeepalive()
    lease, thread = refreshing(t)
    t0 = time.monotonic()
    lease.revoke(timeout=0.2)
    assert time.monotonic() - t0 < 1.0  # not the transport's 5 s + 1
    assert ("/v3/lease/revoke", 0.2) in t.calls
    t.release.set()  # the refresh now finds the lease gone
    thread.join(5)
    assert not thread.is_alive()
    assert lease.regrants == 0 and not any(p == "/v3/lease/grant" for p, _ in t.calls)


def test_stop_without_wait_still_waits_for_the_refresh_in_flight() -> None:
    t = HungKeepalive()
    lease, thread = refreshing(t)
    threading.Timer(0.3, t.release.set).start()
    lease.stop()
    assert not thread.is_alive() and lease.regrants == 0
