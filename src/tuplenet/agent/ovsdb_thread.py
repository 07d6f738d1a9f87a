"""The IDL thread of `LocalOvs`: poll the IDL, plan and commit edits, publish state snapshots.

Split from `ovsdb.py`, which holds the public, thread-safe API; everything here runs in the one IDL thread.
"""

from __future__ import annotations

import logging
import os
import queue
import time
from dataclasses import replace
from typing import TYPE_CHECKING

import ovs.db.idl
import ovs.poller

from tuplenet.agent import ovsdb_idl, ovsdb_txn
from tuplenet.agent.ovsdb_ipfix import D_IPFIX
from tuplenet.agent.ovsdb_mirror import D_MIRROR
from tuplenet.agent.ovsdb_model import (
    D_BFD,
    D_BRIDGE,
    D_DSRGW,
    D_EXTIDS,
    D_MARKS,
    D_PATCH,
    D_TUNNELS,
    OvsdbError,
    OvsState,
)
from tuplenet.agent.ovsdb_plan import Plan
from tuplenet.agent.ovsdb_state import StateBuilder

if TYPE_CHECKING:
    from tuplenet.agent.ovsdb import Subscriber

log = logging.getLogger("tuplenet.agent.ovsdb")

_DOMAINS = (D_BRIDGE, D_EXTIDS, D_TUNNELS, D_PATCH, D_BFD, D_MARKS, D_IPFIX, D_MIRROR, D_DSRGW)
_PUBLISH_INTERVAL = 0.05  # s: the longest wait between state rebuilds during bursts of OVSDB updates
_PUBLISH_SHARE = 0.2  # during a burst, rebuilding the state takes at most this share of the thread's time
_PUBLISH_BURST = 0.02  # s of rebuild CPU allowed at once after a quiet spell (a token bucket's depth)
_RECONNECT_BACKOFF_MS = (1000, 2000)  # ovs.reconnect's floor is 1 s; cap low so a restarted db is back fast
_ERROR_BACKOFF = (0.5, 10.0)  # hard transaction errors: retry with exponential backoff
_SETTLE_TIMEOUT = 1.0  # after a commit, wait this long at most for its update before re-planning anyway
_MAX_UNSETTLED = 50  # successive commits without converging before we suspect a loop and slow down


class IdlThread:
    """Mixin with the IDL thread's methods; `LocalOvs` supplies the state they use."""


    def _main(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # noqa: BLE001 - report, never die silently
            log.exception("OVSDB thread crashed")
            self._fatal = f"internal error: {exc}"
        finally:
            if self._idl is not None:
                self._idl.close()
            err = OvsdbError(f"OVSDB connection stopped ({self._fatal or 'stop() called'})")
            with self._submit_lock:
                self._closed = True
            self._drain_requests()
            for futs in self._pending.values():
                for f in futs:
                    if not f.done():
                        f.set_exception(err)
                futs.clear()
            with self._state_cond:
                self._state_cond.notify_all()

    def _drain_requests(self) -> None:
        try:
            while True:
                os.read(self._wake_r, 4096)
        except (BlockingIOError, OSError):
            pass
        while True:
            try:
                req = self._requests.get_nowait()
            except queue.Empty:
                return
            try:
                req()
            except Exception:  # noqa: BLE001 - a bad request must not kill the thread
                log.exception("OVSDB request failed")

    def _fetch_schema(self) -> dict | None:
        fetch = ovsdb_idl.SchemaFetch(self._remote)
        fetch.session.reconnect.set_backoff(*_RECONNECT_BACKOFF_MS)
        try:
            while not self._stopping:
                if fetch.run():
                    if fetch.error:
                        self._fatal = fetch.error
                        with self._state_cond:
                            self._state_cond.notify_all()
                    return fetch.result
                poller = ovs.poller.Poller()
                fetch.wait(poller)
                poller.fd_wait(self._wake_r, ovs.poller.POLLIN)
                poller.block()
                self._drain_requests()
            return None
        finally:
            fetch.close()

    def _loop(self) -> None:
        schema = self._fetch_schema()
        if schema is None:
            return
        idl = self._idl = ovsdb_idl.TrackingIdl(self._remote, ovsdb_idl.schema_helper(schema))
        idl.set_backoff(*_RECONNECT_BACKOFF_MS)
        self._state_builder = StateBuilder()
        last_seqno, was_connected, ever_connected = (-1, -1), False, False
        self._next_publish = 0.0
        self._pub_tokens, self._pub_refill = _PUBLISH_BURST, time.monotonic()
        self._pub_seqno = (-1, -1)
        while not self._stopping:
            try:
                last_seqno, was_connected, ever_connected = self._step(idl, last_seqno, was_connected,
                                                                       ever_connected)
            except Exception as exc:  # noqa: BLE001 - one unexpected error must not end the session
                self._recover(idl, exc)
                last_seqno, was_connected = (-1, -1), False

    def _recover(self, idl: ovsdb_idl.TrackingIdl, exc: Exception) -> None:
        """Log and count the error, drop the transaction in flight, and resync from a fresh session after a
        backoff; the wishes (and callers' pending requests) stay and converge on the new session."""
        self.stats["thread_errors"] += 1
        log.error("OVSDB thread error (%d so far): %r; reconnecting and resyncing", self.stats["thread_errors"],
                  exc, exc_info=True)
        self._drop_txn(idl)
        self._state_builder.reset()  # the error may have come from it; the fresh session's build is a full one
        self._settle_seqno = None
        self._dirty = True
        self._error_backoff = min(max(self._error_backoff * 2, _ERROR_BACKOFF[0]), _ERROR_BACKOFF[1])
        self._retry_at = time.monotonic() + self._error_backoff
        try:
            idl.force_reconnect()
        except Exception:  # noqa: BLE001
            log.exception("OVSDB reconnect after an error failed")
        poller = ovs.poller.Poller()
        poller.fd_wait(self._wake_r, ovs.poller.POLLIN)
        poller.timer_wait(int(self._error_backoff * 1000))
        if not self._stopping:  # as in _step: the failed turn may have drained stop()'s wake-up
            poller.block()

    def _note_mirrors(self, problems: dict[str, str]) -> None:
        """Mirrors that cannot be applied: logged once per change, listed in status (`ovsdb.mirror_problems`)."""
        if problems != self.stats.get("mirror_problems", {}):
            for name, why in sorted(problems.items()):
                if self.stats.get("mirror_problems", {}).get(name) != why:
                    log.error("mirror %s not applied: %s", name, why)
            self.stats["mirror_problems"] = dict(problems)

    def _check_cfg(self, idl: ovsdb_idl.TrackingIdl) -> None:
        """Tell the cfg-applied callbacks once ovs-vswitchd has caught up with our last next_cfg bump."""
        wanted = self._cfg_wanted
        if wanted is None:
            return
        root = next(iter(idl.tables["Open_vSwitch"].rows.values()), None)
        cur = getattr(root, "cur_cfg", None) if root is not None else None
        if cur is not None and cur >= wanted:
            self._cfg_wanted = None
            for cb in list(self._cfg_callbacks):
                try:
                    cb()
                except Exception:  # noqa: BLE001 - a bad callback must not stop the thread
                    log.exception("OVSDB cfg-applied callback %r failed", cb)

    def _drop_txn(self, idl: ovsdb_idl.TrackingIdl) -> None:
        """Forget the transaction in flight after an error, so the IDL accepts the next one."""
        if self._txn is not None:
            try:
                self._txn.abort()
            except Exception:  # noqa: BLE001 - the transaction may be in any state
                pass
        self._txn = None
        idl.txn = None

    def _step(self, idl: ovsdb_idl.TrackingIdl, last_seqno: tuple[int, int], was_connected: bool,
              ever_connected: bool) -> tuple[tuple[int, int], bool, bool]:
        """One turn of the IDL loop: run the IDL, publish, plan and commit, then block until there is work."""
        self._drain_requests()
        idl.run()
        self._check_txn(idl)
        self._check_cfg(idl)
        connected = idl.connected()
        now = time.monotonic()
        changed = idl.state_seq() != last_seqno or connected != was_connected
        # Rebuilding the state is O(changed ports) when only VM ports changed (ovsdb_state.StateBuilder), but
        # O(interfaces) after a reconnect or when a tunnel, patch or flow-based port, the bridge's external_ids
        # or the system-id changed. A token bucket of rebuild CPU time decides: after a quiet spell every update
        # is published at once (a port coming up - its row, then its ofport - waits for no timer, whatever the
        # host's size); during a burst (thousands of tunnel ports getting their ofports one update at a time)
        # updates are coalesced so rebuilds take at most _PUBLISH_SHARE of the thread. The cost is this
        # thread's CPU time, not wall time, so waiting for the GIL while the main loop computes does not count.
        self._pub_tokens = min(_PUBLISH_BURST, self._pub_tokens + (now - self._pub_refill) * _PUBLISH_SHARE)
        self._pub_refill = now
        if changed and (now >= self._next_publish or connected != was_connected):
            if connected and not was_connected:
                if ever_connected:  # deletions while away came without notify(): no hint may outlive them
                    idl.reset_hints()
                self.stats["reconnects"] += ever_connected
                ever_connected = True
            t0 = time.thread_time()
            if connected or self._state is not None:
                self._publish(self._state_builder.build(idl.view(), self.bridge, connected, 0))
            self._pub_tokens -= time.thread_time() - t0
            last_seqno, was_connected = idl.state_seq(), connected
            self._pub_seqno = last_seqno
            self._dirty = True
            self._next_publish = now + min(_PUBLISH_INTERVAL, max(0.0, -self._pub_tokens) / _PUBLISH_SHARE)
            changed = False
        if connected and self._txn is None and self._dirty and now >= self._retry_at and (
                self._settle_seqno is None or idl.change_seqno != self._settle_seqno
                or now >= self._settle_deadline):
            try:
                self._reconcile(idl)
            except Exception as exc:  # noqa: BLE001 - a planning bug must not end the agent's session
                self.stats["thread_errors"] += 1
                log.exception("OVSDB reconcile failed")
                self._drop_txn(idl)
                self._give_up_for_now(OvsdbError(f"internal error while reconciling: {exc}"), set(_DOMAINS))
        poller = ovs.poller.Poller()
        idl.wait(poller)
        if self._txn is not None:
            self._txn.wait(poller)
        poller.fd_wait(self._wake_r, ovs.poller.POLLIN)
        if connected and self._dirty and self._txn is None:
            wake_at = max(self._retry_at, self._settle_deadline if self._settle_seqno is not None else 0.0)
            poller.timer_wait(max(0, int((wake_at - time.monotonic()) * 1000)) + 1)
        if changed:  # a publish is due once the interval has passed
            poller.timer_wait(max(0, int((self._next_publish - time.monotonic()) * 1000)) + 1)
        if not self._stopping:  # stop()'s wake-up may be the byte this turn's _drain_requests took
            poller.block()
        return last_seqno, was_connected, ever_connected

    def _reconcile(self, idl: ovsdb_idl.TrackingIdl) -> None:
        self._dirty = False
        self._settle_seqno = None
        p = self._planner.plan(idl.view(), self._desired, self._desired_gen)
        self._note_mirrors(self._planner.mirror_problems)
        if p.foreign.keys() != self._foreign.keys():
            for name in p.foreign.keys() - self._foreign.keys():
                log.error("not touching %s: a port of that name is wanted (patch or mirror collector)", p.foreign[name])
            self._foreign = p.foreign
            self.stats["foreign_ports"] = len(p.foreign)
        why = p.errors.get(D_IPFIX)
        if why != self._ipfix_error:
            if why:
                log.error("IPFIX not configured: %s", why)
            self._ipfix_error = why
        if self._pub_seqno != idl.state_seq():
            # Callers blocked on a request must see its effect in snapshot() when they wake.
            self._publish(self._state_builder.build(idl.view(), self.bridge, idl.connected(), 0))
            self._pub_seqno = idl.state_seq()
        self._settle_futures(p)
        if not p.actions:
            self._unsettled = 0
            return
        self._unsettled += 1
        if self._unsettled > _MAX_UNSETTLED:
            log.error("OVSDB: %d commits without converging; slowing down (plan: %s)", self._unsettled, p.actions)
            self._retry_at = time.monotonic() + 1.0
            self._dirty = True
            self._unsettled = 0
            return
        txn = ovs.db.idl.Transaction(idl)
        txn.add_comment("tuplenet agent")
        try:
            ovsdb_txn.apply(idl, txn, p.actions)
        except Exception:
            txn.abort()
            raise
        self._txn_domains = {a.domain for a in p.actions}
        self._txn_seqno = idl.change_seqno
        self._txn = txn
        self.stats["txns"] += 1
        log.debug("OVSDB commit: %s", p.actions)
        self._check_txn(idl)

    def _check_txn(self, idl: ovsdb_idl.TrackingIdl) -> None:
        txn = self._txn
        if txn is None:
            return
        status = txn.commit()
        if status == ovs.db.idl.Transaction.INCOMPLETE:
            return
        self._txn = None
        self._dirty = True
        if status in (ovs.db.idl.Transaction.SUCCESS, ovs.db.idl.Transaction.UNCHANGED,
                      ovs.db.idl.Transaction.TRY_AGAIN):
            if status == ovs.db.idl.Transaction.TRY_AGAIN:
                self.stats["try_again"] += 1
            else:
                self._error_backoff = 0.0
                if status == ovs.db.idl.Transaction.SUCCESS and txn._inc_row is not None:  # bumped next_cfg
                    self._cfg_wanted = max(self._cfg_wanted or 0, txn.get_increment_new_value())
            # Re-plan once the replica reflects the outcome (documented IDL retry rule), or after a grace period.
            self._settle_seqno = self._txn_seqno
            self._settle_deadline = time.monotonic() + _SETTLE_TIMEOUT
            return
        self.stats["txn_errors"] += 1
        detail = txn.get_error() or status
        self._give_up_for_now(OvsdbError(f"OVSDB transaction failed: {detail}"), self._txn_domains)

    def _give_up_for_now(self, err: OvsdbError, domains: set[str]) -> None:
        """Fail the waiting requests, keep the wish, and retry with exponential backoff."""
        self._txn = None
        self._dirty = True
        self._error_backoff = min(max(self._error_backoff * 2, _ERROR_BACKOFF[0]), _ERROR_BACKOFF[1])
        self._retry_at = time.monotonic() + self._error_backoff
        log.warning("%s; retrying in %.1fs", err, self._error_backoff)
        for d in domains:
            self._fail(d, err)

    def _settle_futures(self, p: Plan) -> None:
        for d in _DOMAINS:
            if d in p.errors:
                self._fail(d, OvsdbError(f"{d}: {p.errors[d]}"))
            elif p.converged(d):
                futs, self._pending[d] = self._pending[d], []
                for f in futs:
                    if not f.done():
                        f.set_result(None)

    def _fail(self, domain: str, err: OvsdbError) -> None:
        futs, self._pending[domain] = self._pending[domain], []
        for f in futs:
            if not f.done():
                f.set_exception(err)

    def _publish(self, new: OvsState) -> None:
        old = self._state
        if new.same_as(old):
            return
        seqno = (old.seqno if old else 0) + 1
        state = replace(new, seqno=seqno)
        self.stats["states"] += 1
        with self._state_cond:
            self._state = state
            self._state_cond.notify_all()
        for cb in list(self._subscribers):
            self._call(cb, state)

    @staticmethod
    def _call(cb: Subscriber, state: OvsState) -> None:
        try:
            cb(state)
        except Exception:  # noqa: BLE001 - one bad subscriber must not stop the others or the thread
            log.exception("OVSDB subscriber %r failed", cb)
