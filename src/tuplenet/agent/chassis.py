"""This host's presence in etcd: the persistent 0.3 chassis record plus a lease-backed liveness key.

The chassis record (`entity_view/chassis/<id>` = `ip=..,tick=..`) must outlive the agent — peers keep
their tunnels to a host whose agent is merely restarting — so liveness lives in a separate key that
expires with the lease (`liveness/chassis/<id>`), which `tpctl ch show` reads.
"""

from __future__ import annotations

import logging
import time

from ..model import Chassis
from ..store import Compare, Lease, Op, Store, StoreError

log = logging.getLogger(__name__)


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

    def needs_register(self, current: Chassis | None) -> bool:
        return current is None or current.ip != self.ip

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
                self.lease.stop()
                self.lease.revoke()
            except StoreError:
                pass
