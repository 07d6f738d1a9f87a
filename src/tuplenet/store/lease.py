"""Leases: keys that vanish when their owner stops refreshing (chassis registration, liveness)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from .codec import decoding
from .errors import LeaseExpired, StoreError
from .transport import GRPC_NOT_FOUND, EtcdError, Transport, one_line

log = logging.getLogger("tuplenet.store")

STOP_WAIT = 1.0  # s: what a stopping process gives etcd per lease (stop, revoke); an unrevoked lease expires


def grant(transport: Transport, ttl: int) -> int:
    """A new lease id; a retried grant can at worst leak a lease that expires on its own, so it is retried."""
    if ttl < 1:
        raise StoreError(f"lease ttl must be at least 1 second, got {ttl}")
    answer = transport.call("/v3/lease/grant", {"TTL": str(int(ttl)), "ID": "0"})
    if answer.get("error"):
        raise StoreError(f"lease grant refused: {one_line(str(answer['error']))}")
    with decoding("/v3/lease/grant"):
        lease_id = int(answer["ID"])
        if lease_id <= 0:
            raise ValueError(f"lease ID {lease_id}")
        return lease_id


class Lease:
    """An etcd lease. start_keepalive() keeps it alive from a daemon thread and re-grants it if it expired
    (e.g. etcd was down longer than the ttl), calling on_regrant(new_id) so the owner can re-put its keys.

    The keepalive thread survives every failure (etcd down, garbage answers, a bug): it logs, counts it in
    `failures` / `last_error`, and tries again sooner than the normal period.
    """

    def __init__(self, transport: Transport, lease_id: int, ttl: int) -> None:
        self._transport = transport
        self.id = lease_id
        self.ttl = ttl
        self.on_regrant: Callable[[int], object] | None = None
        self.regrants = 0
        self.refreshes = 0
        self.failures = 0
        self.last_error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"Lease(id={self.id:x}, ttl={self.ttl})"

    def refresh(self, timeout: float | None = None) -> int:
        """Reset the ttl; returns the new remaining ttl. LeaseExpired if etcd no longer has the lease."""
        answer = self._transport.call("/v3/lease/keepalive", {"ID": str(self.id)}, timeout=timeout)
        result = answer.get("result")
        if result is None:
            raise StoreError(f"lease {self.id:x} keepalive failed: {one_line(str(answer.get('error', answer)))}")
        with decoding("/v3/lease/keepalive"):
            ttl = int(result.get("TTL", 0))
        if ttl <= 0:
            raise LeaseExpired(self.id)
        return ttl

    def time_to_live(self) -> int:
        """Seconds left, or -1 if the lease is gone."""
        answer = self._transport.call("/v3/lease/timetolive", {"ID": str(self.id)})
        with decoding("/v3/lease/timetolive"):
            return int(answer.get("TTL", -1))

    def revoke(self, timeout: float | None = None) -> None:
        """Stop the keepalive and delete the lease and its keys now; a lease already gone is not an error.
        `timeout`: give up after that many seconds (StoreError), as a stopping process should."""
        self.stop(wait=timeout)
        try:
            self._transport.call("/v3/lease/revoke", {"ID": str(self.id)}, timeout=timeout)
        except EtcdError as exc:
            if exc.code != GRPC_NOT_FOUND:
                raise

    def start_keepalive(self, interval: float | None = None,
                        on_regrant: Callable[[int], object] | None = None) -> Lease:
        """Refresh every `interval` s (default ttl/3) from a daemon thread until stop() or revoke()."""
        if on_regrant is not None:
            self.on_regrant = on_regrant
        if self._thread is not None and self._thread.is_alive():
            return self
        period = interval if interval is not None else max(self.ttl / 3.0, 0.1)
        self._stop.clear()
        self._thread = threading.Thread(target=self._keepalive, args=(period,), daemon=True,
                                        name=f"lease-keepalive-{self.id:x}")
        self._thread.start()
        return self

    def stop(self, wait: float | None = None) -> None:
        """Stop refreshing (the lease then expires after its ttl unless revoked). A refresh in flight is
        waited for up to `wait` s (default: the transport's timeout); one that ends later only refreshes,
        never re-grants (_keepalive), so a stopping process need not wait out an unreachable etcd."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=wait if wait is not None else self._transport.timeout + 1.0)
        self._thread = None

    def _keepalive(self, period: float) -> None:
        retry = min(period, 1.0)  # while etcd is unreachable, try again sooner than the normal period
        wait = period
        while not self._stop.wait(wait):
            try:
                self.refresh(timeout=max(period, 0.5))
                self.refreshes += 1
                wait = period
            except LeaseExpired:
                if self._stop.is_set():  # revoked while this refresh was in flight: nothing to keep alive
                    return
                wait = period if self._regrant() else retry
            except StoreError as exc:
                self._failed(str(exc))
                log.warning("lease %x keepalive failed: %s", self.id, exc)
                wait = retry
            except Exception as exc:  # noqa: BLE001 - a bug must not end the keepalive (the lease would expire)
                self._failed(f"{type(exc).__name__}: {exc}")
                log.exception("lease %x keepalive failed unexpectedly", self.id)
                wait = retry

    def _failed(self, why: str) -> None:
        self.failures += 1
        self.last_error = one_line(why)

    def _regrant(self) -> bool:
        try:
            new_id = grant(self._transport, self.ttl)
        except StoreError as exc:
            log.warning("lease %x expired and re-grant failed: %s", self.id, exc)
            return False
        log.warning("lease %x expired; granted %x instead", self.id, new_id)
        self.id = new_id
        self.regrants += 1
        if self.on_regrant is not None:
            try:
                self.on_regrant(new_id)
            except Exception:  # noqa: BLE001 - the owner's callback must not kill the keepalive thread
                log.exception("lease on_regrant callback failed")
        return True
