"""The agent's persistent OVSDB connection: one IDL replica of the local switch, kept in a daemon thread.

Why this shape: the agent is long-running, so every change travels over one IDL session (no ovs-vsctl per
change). Callers never touch IDL rows: they state what they want (`ensure_bridge`, `set_tunnels`, ...), the
IDL thread plans the minimal edits against its replica (`ovsdb_plan.plan`), commits them as one transaction,
and re-plans on every database change. So the switch converges to the wish and re-converges when someone
deletes a port by hand or ovsdb-server restarts, and a request is "done" when its domain has converged.
Readers get immutable `OvsState` snapshots, pushed to subscribers at most once per IDL batch.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

import ovs.db.idl
import ovs.poller

from tuplenet.agent import ovsdb_idl
from tuplenet.agent.ovsdb_ipfix import D_IPFIX, IpfixSpec, validate_ipfix
from tuplenet.agent.ovsdb_mirror import D_MIRROR
from tuplenet.agent.ovsdb_model import (
    D_BFD,
    D_BRIDGE,
    D_DSRGW,
    D_EXTIDS,
    D_MARKS,
    D_PATCH,
    D_TUNNELS,
    Desired,
    OvsdbError,
    OvsState,
    patch_port_problem,
    tunnel_port_name,
    validate_tunnels,
)
from tuplenet.agent.ovsdb_plan import Planner
from tuplenet.agent.ovsdb_thread import _DOMAINS, IdlThread

__all__ = ["LocalOvs", "OvsState", "OvsdbError", "tunnel_port_name"]

log = logging.getLogger(__name__)

Subscriber = Callable[[OvsState], None]


class LocalOvs(IdlThread):
    """Persistent OVSDB session for one chassis; see the module docstring. All public methods are
    thread-safe. Subscribers run in the IDL thread and must not call the blocking methods."""

    def __init__(self, db_path: str, bridge: str = "br-int") -> None:
        self.db_path = db_path
        self.bridge = bridge
        self._remote = ovsdb_idl.remote_name(db_path)
        self._desired = Desired(bridge=bridge)
        self._desired_gen = 0  # bumped on every change of _desired (lets the planner cache wanted ports)
        self._planner = Planner()
        self._requests: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._subscribers: list[Subscriber] = []
        self._state: OvsState | None = None
        self._state_cond = threading.Condition()
        self._stopping = False
        self._closed = False  # the IDL thread has failed its last requests: refuse new ones
        self._submit_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._fatal: str | None = None
        # IDL-thread only:
        self._idl: ovsdb_idl.TrackingIdl | None = None
        self._pending: dict[str, list[Future[None]]] = {d: [] for d in _DOMAINS}
        self._dirty = True
        self._txn: ovs.db.idl.Transaction | None = None
        self._txn_domains: set[str] = set()
        self._txn_seqno = 0
        self._settle_seqno: int | None = None
        self._settle_deadline = 0.0
        self._retry_at = 0.0
        self._error_backoff = 0.0
        self._unsettled = 0
        self.stats = {"txns": 0, "txn_errors": 0, "try_again": 0, "states": 0, "reconnects": 0,
                      "thread_errors": 0, "patch_ignored": 0, "foreign_ports": 0}
        self._bad_patches: dict[str, str] = {}
        self._cfg_wanted: int | None = None  # IDL thread: next_cfg our last mirror change set (ovsdb_thread)
        self._cfg_callbacks: list[Callable[[], None]] = []
        self._foreign: dict[str, str] = {}  # IDL thread only: wanted names taken by others' ports (logged once)
        self._ipfix_error: str | None = None  # IDL thread only: why our IPFIX row cannot be set (logged once)

    # ---- lifecycle ----

    def start(self, timeout: float = 10.0) -> LocalOvs:
        """Connect and wait for the first full sync; raise OvsdbError if that takes longer than `timeout`."""
        if self._thread is not None:
            raise RuntimeError("LocalOvs already started")
        self._thread = threading.Thread(target=self._main, name=f"ovsdb:{self.db_path}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        with self._state_cond:
            while self._state is None and self._fatal is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._state_cond.wait(left)
            ok, fatal = self._state is not None, self._fatal
        if not ok:
            reason = fatal or ovsdb_idl.unreachable_reason(self._remote)
            self.stop()
            raise OvsdbError(f"cannot reach OVSDB at {self.db_path}: {reason}")
        return self

    def stop(self) -> None:
        """Close the session; pending requests fail with OvsdbError. Flows and ports are left as they are."""
        self._stopping = True
        self._wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._wake_r = self._wake_w = -1

    def __enter__(self) -> LocalOvs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- reading ----

    def snapshot(self) -> OvsState:
        """The latest state (an empty, disconnected one before the first sync)."""
        return self._state or OvsState(connected=False)

    def system_id(self) -> str | None:
        return self.snapshot().system_id

    def get_bridge_external_id(self, key: str) -> str | None:
        return self.snapshot().bridge_external_ids.get(key)

    def wait_state(self, pred: Callable[[OvsState], object], timeout: float = 10.0) -> OvsState:
        """Block until a published state satisfies `pred`; OvsdbError on timeout (message shows the state)."""
        deadline = time.monotonic() + timeout
        with self._state_cond:
            while True:
                st = self._state
                if st is not None and pred(st):
                    return st
                left = deadline - time.monotonic()
                if left <= 0:
                    raise OvsdbError(f"OVSDB state condition not met within {timeout:.1f}s; last state: {st}")
                self._state_cond.wait(left)

    def subscribe(self, callback: Subscriber, replay: bool = True) -> None:
        """Call `callback(state)` from the IDL thread on every state change; with `replay` it first gets the
        current state (if synced), in order with later changes, so no change is missed between the two."""
        def add() -> None:
            self._subscribers.append(callback)
            if replay and self._state is not None:
                self._call(callback, self._state)
        self._submit(add)

    def on_config_applied(self, callback: Callable[[], None]) -> None:
        """Call `callback()` (from the IDL thread) each time ovs-vswitchd has applied a change the agent made
        that needs it known (today: Mirror rows; the daemon then makes OVS revalidate its datapath flows)."""
        self._submit(lambda: self._cfg_callbacks.append(callback))

    def unsubscribe(self, callback: Subscriber) -> None:
        self._submit(lambda: self._subscribers.remove(callback) if callback in self._subscribers else None)

    # ---- writing (desired state; the IDL thread converges the switch to it) ----

    def ensure_bridge(self, datapath_type: str | None = None, timeout: float = 10.0) -> None:
        """Create the integration bridge if missing (fail_mode=secure, in-band off, OF1.0/1.3-1.5), or fix
        fail_mode/protocols of an existing one without recreating it. Blocks until done."""
        def want() -> None:
            self._desired.ensure_bridge = True
            self._desired.datapath_type = datapath_type
        self._wait(self._submit(want, D_BRIDGE), timeout, f"bridge {self.bridge}")

    def set_tunnels(self, desired: Mapping[str, str]) -> Future[None]:
        """Reconcile br-int's tunnel ports to chassis_id -> remote IPv4 (plus the flow-based port). Returns a
        future resolved once converged; ValueError at once for a bad IP or two chassis sharing one IP."""
        tunnels = validate_tunnels(desired)
        return self._submit(lambda: setattr(self._desired, "tunnels", tunnels), D_TUNNELS)

    def set_patch_ports(self, desired: Mapping[str, str]) -> Future[None]:
        """Reconcile patch pairs lsp name -> peer bridge (created only while the peer bridge exists). Pairs
        that must not exist here (peer = the integration bridge, reserved or bridge names) are ignored,
        logged once and counted in stats["patch_ignored"]; ports named like someone else's are never touched."""
        patches: dict[str, str] = {}
        bad: dict[str, str] = {}
        for lsp, peer in desired.items():
            why = patch_port_problem(lsp, peer, self.bridge)
            if why is None:
                patches[lsp] = peer
            else:
                bad[lsp] = why
                if self._bad_patches.get(lsp) != why:
                    log.error("ignoring patch port %s (peer bridge %s): %s", lsp, peer, why)
        self._bad_patches = bad
        self.stats["patch_ignored"] = len(bad)
        return self._submit(lambda: setattr(self._desired, "patch_ports", patches), D_PATCH)

    def set_wishes(self, kind: str, wishes: Mapping[tuple, object]) -> Future[None]:
        """All the engine's OVSDB wishes of one kind (wish key -> value; agent/outputs.py `Wish`), converged
        like the typed calls they map to. ValueError for a kind nobody applies."""
        if kind == "tunnel":
            return self.set_tunnels({k[0]: str(v) for k, v in wishes.items()})
        if kind == "patch":
            return self.set_patch_ports({k[0]: str(v) for k, v in wishes.items()})
        if kind == "mirror":
            return self.set_mirrors({k[0]: v for k, v in wishes.items()})  # type: ignore[misc]
        if kind == "bfd":
            return self.set_bfd_wishes({k[0]: v for k, v in wishes.items()})  # type: ignore[misc]
        if kind == "ipfix":
            if len(wishes) > 1:
                raise ValueError(f"one IPFIX wish per bridge, got {len(wishes)}")
            spec = next(iter(wishes.values()), None)
            if spec is not None and not isinstance(spec, IpfixSpec):
                raise ValueError(f"an IPFIX wish must be an IpfixSpec, not {type(spec).__name__}")
            return self.set_ipfix(spec)
        raise ValueError(f"unknown OVSDB wish kind {kind!r}")

    def set_dsrgw(self, on: bool) -> Future[None]:
        """ENABLE_UNTUNNEL: the internal port br-int-dsrgw on the integration bridge (True), or ours removed
        (False); a port of that name we did not mark is taken over when wanted and never removed."""
        return self._submit(lambda: setattr(self._desired, "dsrgw", bool(on)), D_DSRGW)

    def set_ipfix(self, spec: IpfixSpec | None) -> Future[None]:
        """Bridge IPFIX on the integration bridge as `spec` (None: remove ours). Only a row the agent created
        is ever changed or removed; a foreign row fails the request (and is logged) instead. ValueError at
        once for a bad target or out-of-range number."""
        checked = None if spec is None else validate_ipfix(spec)

        def want() -> None:
            self._desired.ipfix = checked
            self._desired.ipfix_managed = True
        return self._submit(want, D_IPFIX, ports=False)

    def set_mirrors(self, mirrors: Mapping[str, tuple]) -> Future[None]:
        """Reconcile our Mirror rows (and collector tunnel ports) to mirror name -> wish (agent/ovsdb_mirror.py)."""
        wanted = dict(mirrors)
        return self._submit(lambda: setattr(self._desired, "mirrors", wanted), D_MIRROR)

    def set_installed(self, ready: Mapping[str, int]) -> Future[None]:
        """Mark the interfaces of these ports (iface-id -> ofport) `external_ids:tuplenet-installed=true` and
        unmark every other interface of the bridge. Asynchronous: callers on the hot path do not wait."""
        marks = dict(ready)
        # Not a change of the wanted ports: keep the planner's port cache (thousands of tunnels) warm.
        return self._submit(lambda: setattr(self._desired, "installed", marks), D_MARKS, ports=False)

    def set_bfd(self, chassis_ids: set[str] | frozenset[str], enable: bool) -> Future[None]:
        """Set Interface bfd:enable on those chassis' tunnel ports (remembered for ports created later)."""
        ids = set(chassis_ids)
        return self._submit(lambda: self._desired.bfd.update(dict.fromkeys(ids, enable)), D_BFD)

    def set_bfd_wishes(self, wanted: Mapping[str, tuple[int, int]]) -> Future[None]:
        """BFD on exactly these chassis' tunnels (chassis -> (min_tx, min_rx) ms); tunnels that had it and
        are no longer wanted get bfd:enable=false (0.3), tunnels never wanted keep bfd={}."""
        want = {c: (int(t[0]), int(t[1])) for c, t in wanted.items()}

        def apply() -> None:
            d = self._desired
            for c, on in list(d.bfd.items()):
                if on and c not in want:
                    d.bfd[c] = False
            for c, timers in want.items():
                d.bfd[c] = True
                d.bfd_timers[c] = timers
        return self._submit(apply, D_BFD)

    def set_bridge_external_id(self, key: str, value: str | None, timeout: float = 10.0) -> None:
        """Set (None: delete) a br-int external_ids key, kept in place from now on; blocks until done."""
        fut = self._submit(lambda: self._desired.bridge_external_ids.__setitem__(key, value), D_EXTIDS)
        self._wait(fut, timeout, f"{self.bridge} external_ids:{key}")

    # ---- plumbing for callers ----

    def _submit(self, fn: Callable[[], None], domain: str | None = None, ports: bool = True) -> Future[None]:
        """Queue a change of the wish for the IDL thread; `ports` False: the wanted ports stay the same."""
        fut: Future[None] = Future()

        def run() -> None:
            fn()
            if ports:
                self._desired_gen += 1
            self._dirty = True
            if domain is not None:
                self._pending[domain].append(fut)
            else:
                fut.set_result(None)
        with self._submit_lock:
            if self._stopping or self._closed:
                fut.set_exception(OvsdbError("OVSDB connection is stopped"))
                return fut
            self._requests.put(run)
        self._wake()
        return fut

    def _wait(self, fut: Future[None], timeout: float, what: str) -> None:
        if self._thread is threading.current_thread():
            raise RuntimeError("blocking LocalOvs call from its own IDL thread (a subscriber?)")
        try:
            fut.result(timeout)
        except FutureTimeout:
            st = self.snapshot()
            why = "not connected" if not st.connected else f"bridge exists={st.bridge_exists}"
            raise OvsdbError(f"timed out after {timeout:.1f}s waiting for {what} in OVSDB at {self.db_path} "
                             f"({why})") from None

    def port_status(self, reason: int, port_no: int, name: str | None) -> None:
        """An OpenFlow port-status message of the bridge, from the OpenFlow reader (name None: a new session);
        never blocks. Lets an interface's view have its port number before OVSDB does (ofport_hints.py)."""
        with self._submit_lock:
            if self._stopping or self._closed:
                return
            self._requests.put(lambda: self._hint(reason, port_no, name))
        self._wake()

    def _hint(self, reason: int, port_no: int, name: str | None) -> None:
        if self._idl is not None:
            self._idl.port_status(reason, port_no, name)

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass  # pipe full (a wake-up is already pending) or closed (stopping)
