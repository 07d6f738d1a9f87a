"""This host's presence in etcd: the persistent 0.3 chassis record plus a lease-backed liveness key.

The chassis record (`entity_view/chassis/<id>` = `ip=..,tick=..`) must outlive the agent — peers keep
their tunnels to a host whose agent is merely restarting — so liveness lives in a separate key that
expires with the lease (`liveness/chassis/<id>`), which `tpctl ch show` reads.
"""

from __future__ import annotations

import logging
import threading
import time

from ..model import Chassis
from ..store import Compare, Lease, Op, Store, StoreError
from ..store.lease import STOP_WAIT

log = logging.getLogger(__name__)


ECHO_WAIT = 5.0  # s: how long a registration we wrote may take to come back through the watch


def chassis_key(name: str) -> str:
    return f"entity_view/chassis/{name}"


def liveness_key(name: str) -> str:
    return f"liveness/chassis/{name}"


class ChassisPresence:
    def __init__(self, store: Store, name: str, ip: str, ttl: int = 10) -> None:
        self.store = store
        self.name = name
        self.ip = ip
        self.ttl = ttl
        self.lease: Lease | None = None
        self.registrations = 0
        self._lock = threading.Lock()
        self._pending: tuple[Chassis | None, int | None] | None = None
        self._busy = False
        self._echo_until = 0.0  # our write succeeded: until then, wait for the watch to show it back

    def needs_register(self, current: Chassis | None) -> bool:
        return current is None or current.ip != self.ip

    def request(self, current: Chassis | None, mod_revision: int | None) -> None:
        """Main loop: register in the background if the view says so. Never waits for etcd (a frozen etcd
        held the main loop for the client's timeout, 5 s, and with it every local port's flows); one write
        at a time, the latest view wins; nothing again while our own successful write is on its way back
        (for ECHO_WAIT at most: the compare-and-swap makes a needless second write harmless)."""
        if not self.needs_register(current):
            self._echo_until = 0.0
            return
        if time.monotonic() < self._echo_until:
            return
        with self._lock:
            self._pending = (current, mod_revision)
            if self._busy:
                return
            self._busy = True
        threading.Thread(target=self._drain, name="chassis-register", daemon=True).start()

    def _drain(self) -> None:
        while True:
            with self._lock:
                item, self._pending = self._pending, None
                if item is None:
                    self._busy = False
                    return
            try:
                if self.register(*item) and self.needs_register(item[0]):
                    self._echo_until = time.monotonic() + ECHO_WAIT
            except Exception:  # noqa: BLE001 - a bug here must not end the thread with work queued
                log.exception("chassis registration failed")

    def register(self, current: Chassis | None, mod_revision: int | None) -> bool:
        """Write our record if it is missing or shows another IP (keeping the tick when unchanged, so a
        restart does not ripple through every peer). CAS on what we saw; False means retry later."""
        if not self.needs_register(current):
            return True
        value = f"ip={self.ip},tick={int(time.time())}"
        key = chassis_key(self.name)
        cmp = [Compare.missing(key)] if mod_revision is None else [Compare.mod_revision(key, "=", mod_revision)]
        try:
            res = self.store.txn(cmp, [Op.put(key, value)])
        except StoreError as exc:
            log.warning("chassis registration failed: %s", exc)
            return False
        if res.succeeded:
            self.registrations += 1
            log.info("registered chassis %s with tunnel IP %s", self.name, self.ip)
        return res.succeeded

    def start_liveness(self) -> None:
        try:
            self.lease = self.store.lease_grant(self.ttl)
            self._put_liveness(self.lease.id)
            self.lease.start_keepalive(on_regrant=self._put_liveness)
        except StoreError as exc:
            log.warning("liveness key not written yet: %s", exc)

    def _put_liveness(self, lease_id: int) -> None:
        try:
            self.store.put(liveness_key(self.name), f"ip={self.ip}", lease=lease_id)
        except StoreError as exc:
            log.warning("liveness key update failed: %s", exc)

    def stop(self) -> None:
        """Stop refreshing; the key expires by itself (a clean stop revokes it at once)."""
        if self.lease is not None:
            try:
                self.lease.revoke(timeout=STOP_WAIT)  # with etcd away, the lease expires by itself
            except StoreError:
                pass
