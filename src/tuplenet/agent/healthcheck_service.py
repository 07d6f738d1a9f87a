"""The health-check service of the agent: a thread running the Checker (healthcheck.py) and a writer
thread putting verdicts into etcd, so neither probe timing nor etcd round trips ever wait on the main loop.

Probe replies come as packet-ins with OP_LB_HEALTH; `offer()` takes them on the OpenFlow reader thread,
before pinctrl's main-loop queue: a long flow computation must not turn healthy backends' answers into
timeouts. Floods are bounded by the meter on the catch flow (pipeline/lbhealth.py) and by this queue.

Verdicts: `communicate/lb_health/<LS|LR>/<dp>/<lb>/<ip>:<port>` = `state=down,chassis=<self>` under a
lease of the service's own (ttl = the agent's liveness ttl): a dead agent's verdicts vanish with it. A clean
stop lets the lease run out rather than revoking it, so a restarted agent finds its verdicts, adopts them
(starts those backends as down) and re-puts them under its new lease: no flap back into service.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from ..model import ModelError
from ..model.lb import HEALTH_PREFIX, HealthVerdict, decode_health_value, parse_health_key
from ..store import Store, StoreError
from ..store.lease import STOP_WAIT
from . import tables as T
from .flow import Output
from .healthcheck import Checker, Target, TargetKey, health_key
from .healthcheck_targets import TargetTracker

log = logging.getLogger(__name__)

FRAME_QUEUE_MAX = 4096


class VerdictWriter:
    """Writes verdict changes from a thread of its own; the latest wish per key wins, failed writes are
    retried every second, and a re-granted lease gets every down verdict again."""

    def __init__(self, store: Store, self_id: str, ttl: int) -> None:
        self.store, self.self_id, self.ttl = store, self_id, ttl
        self.value = HealthVerdict("down", self_id).to_value()
        self.lease: Any = None
        self.down: set[str] = set()  # keys we hold in etcd (as far as we know)
        self.puts = self.deletes = self.errors = 0
        self._pending: dict[str, bool] = {}  # key -> down?
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="lb-health-writer", daemon=True)

    def start(self) -> VerdictWriter:
        self._thread.start()
        return self

    def adopt(self) -> set[str]:
        """Our verdicts still in etcd from a previous run (keys relative to the prefix)."""
        kvs, _rev = self.store.get_prefix(HEALTH_PREFIX)
        mine = set()
        for kv in kvs:
            try:
                parse_health_key(kv.key)
                if decode_health_value(kv.value).chassis == self.self_id:
                    mine.add(kv.key)
            except ModelError:
                continue
        return mine

    def submit(self, key: str, down: bool) -> None:
        with self._lock:
            self._pending[key] = down
        self._wake.set()

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def stop(self) -> None:
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=STOP_WAIT)  # a write stuck on an unreachable etcd ends with the process
        if self.lease is not None:
            self.lease.stop(wait=STOP_WAIT)  # not revoked: a restarted agent adopts the verdicts (docstring)

    def _regrant(self, _lease_id: int) -> None:
        with self._lock:
            for key in self.down:
                self._pending.setdefault(key, True)
        self._wake.set()

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            with self._lock:
                batch, self._pending = self._pending, {}
            failed = {}
            for key, down in batch.items():
                try:
                    self._write(key, down)
                except Exception as exc:  # noqa: BLE001 - retried; one bad write must not end the writer
                    self.errors += 1
                    log.warning("health verdict %s not written (retrying): %s", key, exc)
                    failed[key] = down
            if failed:
                with self._lock:
                    for key, down in failed.items():
                        self._pending.setdefault(key, down)

    def _write(self, key: str, down: bool) -> None:
        if down:
            if self.lease is None:
                self.lease = self.store.lease_grant(self.ttl)
                self.lease.start_keepalive(on_regrant=self._regrant)
            self.store.put(key, self.value, lease=self.lease.id)
            with self._lock:  # _regrant reads it from the keepalive thread
                self.down.add(key)
            self.puts += 1
        else:
            self.store.delete(key)
            with self._lock:
                self.down.discard(key)
            self.deletes += 1


class HealthService:
    """Runs the checker in a thread: targets from the main loop, replies from the OpenFlow thread."""

    def __init__(self, conn: Any, writer: VerdictWriter | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.conn = conn
        self.writer = writer
        self.clock = clock
        self.checker = Checker(self._send, self._verdict)
        self.tracker = TargetTracker()
        self._last_targets: dict[TargetKey, Target] | None = None
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._frames = 0  # queued frames (bounded)
        self._lock = threading.Lock()
        self.dropped = 0
        self.send_errors = 0
        self._status: dict = self.checker.status()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="lb-health", daemon=True)

    def start(self) -> HealthService:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop = True
        self._q.put(None)
        self._thread.join(timeout=5)
        if self.writer is not None:
            self.writer.stop()

    @classmethod
    def for_agent(cls, conn: Any, store: Store, self_id: str, ttl: int) -> HealthService:
        """The running service of an agent (started after its store and OpenFlow connection)."""
        return cls(conn, VerdictWriter(store, self_id, ttl).start()).start()

    # ------------------------------------------------------------------ inputs (any thread)
    def update(self, view: Any, changed: set[tuple] | None) -> None:
        """Main loop, after a batch: new targets if the batch touched load balancers or their ports."""
        targets = self.tracker.update(view, changed)
        if targets is not None and targets != self._last_targets:
            self._last_targets = targets
            self.set_targets(targets)

    def set_targets(self, targets: dict[TargetKey, Target]) -> None:
        self._q.put(("targets", targets))

    def offer(self, pin: Any) -> bool:
        """A packet-in from the OpenFlow thread: True if it was a probe reply (taken here)."""
        userdata = bytes(getattr(pin, "userdata", b"") or b"")
        if len(userdata) < 4 or int.from_bytes(userdata[:4], "big") != T.OP_LB_HEALTH:
            return False
        with self._lock:
            if self._frames >= FRAME_QUEUE_MAX:
                self.dropped += 1
                return True
            self._frames += 1
        # in_port: OVS puts it in every packet-in's metadata; -1 (never a probed port) if it were missing
        self._q.put(("frame", bytes(pin.data), self.clock(), (getattr(pin, "metadata", None) or {}).get("in_port", -1)))
        return True

    def status(self) -> dict:
        st = dict(self._status)
        st["dropped_frames"] = self.dropped
        st["send_errors"] = self.send_errors
        if self.writer is not None:
            w = self.writer
            st["writer"] = {"puts": w.puts, "deletes": w.deletes, "errors": w.errors, "pending": w.pending(),
                            "held": len(w.down)}
        return st

    # ------------------------------------------------------------------ the thread
    def _send(self, target: Target, frame: bytes) -> None:
        try:
            self.conn.packet_out(frame, (Output(target.ofport),))
        except Exception:
            self.send_errors += 1
            raise

    def _verdict(self, target: Target, up: bool) -> None:
        log.info("load balancer %s/%s/%s: backend %s:%d is %s", target.kind, target.dp, target.lb, target.ip,
                 target.port, "up, back in service" if up else "down, out of service")
        if self.writer is not None:
            self.writer.submit(health_key(target.key), not up)

    def _adopted(self) -> set[str]:
        if self.writer is None:
            return set()
        for attempt in range(3):
            try:
                return self.writer.adopt()
            except StoreError as exc:
                log.warning("reading earlier health verdicts failed (attempt %d): %s", attempt + 1, exc)
                time.sleep(0.5)
        return set()

    def _run(self) -> None:
        adopted = self._adopted()
        checker = self.checker
        wake = self.clock()
        last_status = 0.0
        while not self._stop:
            try:
                item = self._q.get(timeout=max(0.0, wake - self.clock()))
            except queue.Empty:
                item = ()
            if item is None:
                break
            try:
                self._handle(item, adopted)
                now = self.clock()
                wake = checker.tick(now)
                if item or now - last_status > 0.5:
                    self._status = checker.status()
                    last_status = now
            except Exception:  # noqa: BLE001 - the service must outlive any one bad event
                log.exception("health check step failed")
                wake = self.clock() + 0.5

    def _handle(self, item: tuple, adopted: set[str]) -> None:
        if not item:
            return
        if item[0] == "frame":
            with self._lock:
                self._frames -= 1
            self.checker.on_frame(item[1], item[2], item[3])
        elif item[0] == "targets":
            targets = item[1]
            down = {k for k in targets if health_key(k) in adopted}
            for k in down:
                adopted.discard(health_key(k))
                if self.writer is not None:
                    self.writer.submit(health_key(k), True)  # re-put under our lease
            for gone in self.checker.set_targets(targets, self.clock(), down):
                if self.writer is not None:
                    self.writer.submit(health_key(gone.key), False)
