"""The agent: wires etcd, OVSDB and OpenFlow into one event loop around the incremental engine.

Threads only produce events (etcd watch, OVSDB monitor, OpenFlow reader); the main loop alone mutates the
view, runs the engine and sends bundles, so computation and commits are strictly ordered (0.3 defect §7.5).
"""

from __future__ import annotations

import gc
import logging
import queue
import signal
import time
from typing import Any

from ..store import Store
from . import binding, startup
from .aclreject import AclReject
from .barrier import Barrier
from .chassis import ChassisPresence
from .config import Config
from .duplicates import Shadowing
from .engine import Engine
from .etcdsync import TOPOLOGY_KINDS, Change, TopologySync
from .gateway_arp import GatewayArp
from .healthcheck_service import HealthService
from .livetrace import LiveTrace
from .local_facts import FactSync, other_facts
from .ofctrl import FlowControl
from .ondemand import Ager, OnDemand
from .ovsdb import LocalOvs, OvsState
from .pinctrl import PacketIns
from .pipeline import mirror
from .readiness import Readiness
from .status import StatusPacer, build_status, release_free_memory, write_status
from .tables import OP_UNKNOWN_DST
from .view import View

log = logging.getLogger("tuplenet")


class StartupError(Exception):
    """Something essential is missing: the agent exits with this message."""


WISH_KINDS = ("tunnel", "patch", "ipfix", "mirror", "bfd")  # OVSDB wishes the engine computes (pipeline/ovswishes.py, mirror.py)


class Agent:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.q: queue.Queue = queue.Queue()
        self.view = View()
        self.engine = Engine(self.view)
        self.shadowing = Shadowing()
        self.barrier = Barrier()
        self._watch_lag_ms = 0.0
        self.snapshot: dict = {}  # the latest status, read by the metrics thread
        self._metrics = None
        self._needs_full = False
        self.binder = binding.Binder()
        self.claimer: binding.ClaimWriter | None = None  # started with the store
        self._later_claims: list[tuple[tuple, Any]] = []  # claims to send once this batch's flows are in
        self.readiness = Readiness()
        self.gw: GatewayArp | None = None  # GATEWAY=1: ARP on the outside switches (gateway_arp.py)
        self.dsr = None  # ENABLE_UNTUNNEL: br-int-dsrgw and the host's settings (untunnel_host.py)
        self.revs: dict[tuple, int] = {}  # lsp and chassis records only: the mod revision CAS writes compare
        self.ovs: LocalOvs | None = None
        self.conn = None
        self.ofctrl: FlowControl | None = None
        self.store: Store | None = None
        self.sync: TopologySync | None = None
        self.presence: ChassisPresence | None = None
        self.pins: PacketIns | None = None
        self.ondemand = OnDemand(self.view, cfg.ondemand, cfg.ondemand_idle)  # the demand set (ONDEMAND=1)
        self._ager: Ager | None = None
        self.health: HealthService | None = None  # load-balancer health checks (healthcheck_service.py)
        self.livetrace: LiveTrace | None = None  # live-trace commands and reports (issue 11 §3)
        self.self_id = ""
        self.local = FactSync()  # the view's local facts from OVS snapshots (local_facts.py)
        # The engine's OVSDB wishes per kind (wish key -> value) and the kinds to push to OVSDB: all of
        # them once at start-up (an empty set is a wish too: it takes over management of that domain).
        self._wishes: dict[str, dict[tuple, Any]] = {k: {} for k in WISH_KINDS}
        self._wishes_dirty: set[str] = set(WISH_KINDS)
        self._stop = False
        self._of_connects = 0
        self.started_at = time.time()
        self.ready_ms = 0.0

    # ------------------------------------------------------------------ start-up
    def start(self) -> None:
        # The start-up listing and the first computation create a few hundred thousand long-lived objects
        # that hold no cycles; the cyclic collector would rescan them over and over meanwhile (a quarter of
        # an on-demand start at 20k ports). Off until the agent is up, then they are frozen out of its scans.
        gc_on = gc.isenabled()
        gc.disable()
        try:
            startup.start(self)
        finally:
            gc.freeze()
            if gc_on:
                gc.enable()

    def _connect_openflow(self) -> None:
        from .openflow.conn import OpenFlowConnection

        self.conn = OpenFlowConnection(self.cfg.mgmt_socket, on_packet_in=self._on_packet_in,
                                       on_connect=lambda: self.q.put(("ofconnect",)))
        self.conn.on_port_status = self.ovs.port_status  # port numbers before OVSDB has them (ofport_hints.py)
        try:
            self.conn.start(timeout=10.0)
        except Exception as exc:
            raise StartupError(f"cannot open OpenFlow connection {self.cfg.mgmt_socket}: {exc}") from None
        self.conn.ensure_tlv_map()
        self.ofctrl = FlowControl(self.conn)
        self.pins = PacketIns(self.conn, self.view, meter_drops=self.ofctrl.meter_drops)
        # Not rate-limited per source: the miss meter (pipeline/ondemand.py) bounds it, and a VM meeting many
        # new destinations at once must have them all learned, not just its first 20.
        self.pins.register(OP_UNKNOWN_DST, "unknown_dst", self.ondemand.on_packet_in, limited=False)
        self.pins.register(AclReject.OPCODE, "acl_reject", AclReject(self.conn).handle)  # aclreject.py

    def _start_gateway(self) -> None:
        """Resolve and learn outside next hops per router port (gateway_arp.py); what the previous run
        learned is in the view before the first computation."""
        from . import tables as T

        self.gw = GatewayArp(self.view, self.conn, self.cfg.rundir, self.cfg.arp_aging)
        self.gw.load()
        self.pins.register(T.OP_ARP_GENERATE, "arp_generate", self.gw.on_generate)
        self.pins.register(T.OP_ARP_LEARN, "arp_learn", self.gw.on_learn)
        self.gw.step(set())

    def _on_packet_in(self, pin) -> None:
        """From the OpenFlow dispatcher: packet-ins wait in pinctrl's bounded queue and the main loop is
        woken once per batch, so a flood can neither grow the event queue nor crowd out other events."""
        if self.health is not None and self.health.offer(pin):  # probe replies: its own thread
            return
        if self.pins is not None and self.pins.offer(pin):
            self.q.put(("pin",))

    # ------------------------------------------------------------------ main loop
    def _emit(self, kind: str, changes: list[Change], rev: int) -> None:
        self.q.put((kind, changes, rev, time.monotonic()))  # arrival time: the watch lag metric

    def run(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self._request_stop())
        signal.signal(signal.SIGINT, lambda *_: self._request_stop())
        status = StatusPacer()
        while not self._stop:
            try:
                item = self.q.get(timeout=status.wait(time.monotonic()))
            except queue.Empty:
                item = None
            items = [item] if item is not None else []
            while True:
                try:
                    items.append(self.q.get_nowait())
                except queue.Empty:
                    break
            self._handle(items)
            if status.due(time.monotonic(), bool(items)):
                self._write_status()
        self.shutdown()

    def _request_stop(self) -> None:
        self._stop = True
        self.q.put(("stop",))

    def _handle(self, items: list[tuple]) -> None:
        """One batch of events. Every step runs behind the barrier (barrier.py): a bad event is counted and
        logged, never fatal; a failed computation or install is repaired by a full recompute + reconcile."""
        changed: set[tuple] = set()
        topo = False
        reconnect = False
        guard = self.barrier.run
        if self._needs_full:
            self._needs_full = False
            if guard("full recompute", self.engine.full):
                reconnect = True  # reconcile what is installed with the fresh result
                self._sync_wishes()
            else:
                self._needs_full = True
        for it in items:
            kind = it[0]
            if kind == "etcd":
                if len(it) > 3:
                    self._watch_lag_ms = (time.monotonic() - it[3]) * 1000
                self._apply_changes(it[1], changed)  # a barrier per change inside
                topo = True
            elif kind == "resync":
                guard("apply etcd re-listing", self._resync, it[1], changed)
                topo = True
            elif kind == "ovs":
                guard("apply OVS state", self._apply_ovs, it[1], changed)
            elif kind == "pin":
                guard("packet-in", self._drain_packet_ins)
            elif kind == "trace_cmd":
                guard("live trace command", self.livetrace.command, it[1], it[2])
            elif kind == "ondemand_usage":
                guard("on-demand aging", self.ondemand.observe, it[1], self.engine.owner_flows)
            elif kind == "acl_hits":
                guard("acl hit counters", self.aclhits.take, self.engine, it[1])
            elif kind == "revalidate":  # OVS applied a Mirror change: make it re-translate datapath flows
                guard("datapath revalidation", self.conn.apply, [], [mirror.revalidation_flow()])
            elif kind == "ofconnect":
                if self._of_connects > 0:  # the first one is the start-up connection, already reconciled
                    reconnect = True
                self._of_connects += 1
        if self.gw is not None:  # learned/expired next hops into the view, refreshes, gratuitous ARP
            guard("gateway ARP", self.gw.step, changed)
        changed |= self.ondemand.take_changed()  # ports learned from packet-ins or aged out, this batch
        guard("on-demand demand set", self.ondemand.refresh, changed)
        if changed or (self.binder.next_due() or float("inf")) <= time.monotonic():
            guard("binding claims", self._bind, changed, changed)
        if changed:
            guard("duplicate check", self.shadowing.update, self.view.index, self.view.created, changed)
            box: list = []
            if not guard("flow computation", lambda: box.append(self.engine.process(changed))):
                self._needs_full = True
                self.q.put(("recompute",))
            elif box[0]:
                d = box[0]
                self._take_wishes(d.changes)
                try:
                    self.ofctrl.apply(d.deletes, d.adds, d.changes)
                except Exception as exc:  # noqa: BLE001 - resync below repairs whatever did not apply
                    log.error("installing %d/%d flow changes failed: %s; resyncing", len(d.deletes), len(d.adds),
                              exc)
                    reconnect = True
        if self._later_claims:
            self._send_later_claims()
        if changed and self.health is not None:
            guard("health-check targets", self.health.update, self.view, changed)
        if self.ondemand.paused:  # misses waiting for their flows: installed now (or never will be)
            guard("on-demand resume", self.ondemand.resume_paused, self.conn)
        if reconnect:
            try:
                self.conn.ensure_tlv_map()  # lost, like the flows, when ovs-vswitchd restarts
                self._reconcile()
            except Exception as exc:  # noqa: BLE001
                log.error("flow reconcile failed: %s", exc)
                self.q.put(("ofconnect",))
                time.sleep(0.2)
        if len(changed) > 1000:  # a burst (thousands of tunnels coming up, a re-listing): return its scratch
            release_free_memory()
        if topo or changed or reconnect or (self.binder.next_due() or float("inf")) <= time.monotonic():
            guard("side effects (tunnels, patch ports, bindings)", self._side_effects, changed)
            guard("chassis registration", self._register)

    def _reconcile(self) -> None:
        """Bring the switch to the engine's flows, meters and groups (changing only the difference)."""
        e = self.engine
        self.ofctrl.reconcile(e.desired(), meters=e.desired_outputs("meter").values(),
                              groups=e.desired_outputs("group").values())

    def _sync_wishes(self) -> None:
        """Take every OVSDB wish from the engine (start-up, after a full recompute)."""
        wishes: dict[str, dict[tuple, Any]] = {k: {} for k in WISH_KINDS}
        for ident, w in self.engine.desired_outputs("wish").items():
            if ident[1] in wishes:
                wishes[ident[1]][w.key] = w.value
        self._wishes_dirty |= {k for k in WISH_KINDS if wishes[k] != self._wishes[k]}
        self._wishes = wishes

    def _take_wishes(self, changes: list) -> None:
        """Apply the wish part of an engine delta to our per-kind maps (pushed in _side_effects)."""
        for ident, _old, new in changes:
            if ident[0] != "wish" or ident[1] not in self._wishes:
                continue
            m = self._wishes[ident[1]]
            if new is None:
                m.pop(ident[2:], None)
            else:
                m[new.key] = new.value
            self._wishes_dirty.add(ident[1])

    def _drain_packet_ins(self) -> None:
        if self.pins.drain():  # a budget per iteration; the rest after the next batch of events
            self.q.put(("pin",))

    def _apply_changes(self, changes: list[Change], changed: set[tuple]) -> None:
        for change in changes:
            self.barrier.run("apply etcd change", self._apply_change, change, changed)

    def _apply_change(self, change: Change, changed: set[tuple]) -> None:
        fkey, obj, kv = change
        # remote ports nobody here talked to wait outside the view on an on-demand host (ondemand.py)
        self.ondemand.apply(fkey, obj, changed, kv.create_revision if kv is not None else 0)
        if obj is None:
            self.revs.pop(fkey, None)
        elif kv is not None and fkey[0] in ("lsp", "chassis"):
            self.revs[fkey] = kv.mod_revision

    def _resync(self, changes: list[Change], changed: set[tuple]) -> None:
        """After compaction: apply the difference between the view and a fresh listing (incremental)."""
        fresh = {c[0] for c in changes}
        gone = [k for k in self.view.facts if k[0] in TOPOLOGY_KINDS and k not in fresh]
        gone += [k for k in self.ondemand.dormant.records if k not in fresh]
        self._apply_changes([(k, None, None) for k in gone] + changes, changed)
        self.engine.stats.extra["resyncs"] = self.engine.stats.extra.get("resyncs", 0) + 1

    def _apply_ovs(self, state: OvsState, changed: set[tuple]) -> None:
        if not state.connected:
            return
        if state.system_id and state.system_id != self.self_id:
            log.warning("system-id changed from %s to %s; restart the agent to adopt it", self.self_id,
                        state.system_id)
        others = other_facts(state, self.cfg, self.self_id)
        if self.dsr is not None:  # (MAC, ofport) of br-int-dsrgw: the DSR hand-off (pipeline/untunnel.py)
            others.update(self.dsr.facts(state))
        self.local.apply(self.view, state, others, changed)

    def _bind(self, affected: set[tuple] | None, changed: set[tuple]) -> None:
        """Binding claims for what `affected` touched (None: every local interface), before the engine runs:
        a port being claimed is a local fact the pipeline reads, so its flows need not wait for the claim to
        come back from etcd (binding.claiming_key); the claim goes out through binding.ClaimWriter without
        the loop waiting for it (after this batch's flows for a port requested here)."""
        claims = self.binder.update(self.view, None if affected is None else set(affected))
        for fkey, value in self.binder.claiming_changes():
            self.view.apply(fkey, value, changed)
        for fkey, lsp in claims:
            if binding.requested_here(lsp, self.self_id):  # the port's own flows first, the claim right after
                self._later_claims.append((fkey, lsp))
                continue
            self._claim(fkey, lsp)
        self.binder.flush_log()  # after the claims left

    def _claim(self, fkey: tuple, lsp: Any) -> None:
        if self.claimer is None:
            self.claimer = binding.ClaimWriter(self.store, self.self_id)
        self.claimer.submit(lsp, self.revs.get(fkey))  # asynchronous: the result comes back by the watch

    def _send_later_claims(self) -> None:
        later, self._later_claims = self._later_claims, []
        for fkey, lsp in later:  # one failing claim must not drop the others (the binder retries it later)
            self.barrier.run("claim", self._claim, fkey, lsp)

    def _side_effects(self, changed: set[tuple] | None = None) -> None:
        """OVS wishes and readiness marks for what `changed` touched (None: everything)."""
        while self._wishes_dirty:  # computed by the engine's owners: no scan of the view here
            kind = self._wishes_dirty.pop()
            self.ovs.set_wishes(kind, dict(self._wishes[kind]))
        marks = self.readiness.update(self.view, self.engine, self.ofctrl.installed, changed)
        if marks is not None:
            self.ovs.set_installed(marks)  # asynchronous: the IDL thread writes it, nobody waits

    def _register(self) -> None:
        if self.presence is None:
            return
        key = ("chassis", self.self_id)
        current = self.view.facts.get(key)
        self.presence.request(current, self.revs.get(key))  # in the background: the loop never waits on etcd

    # ------------------------------------------------------------------ status / stop
    def status(self) -> dict:
        return build_status(self)

    def _write_status(self) -> None:
        self.snapshot = self.status()
        write_status(self.cfg.rundir, self.snapshot)

    def shutdown(self) -> None:
        """Stop cleanly, leaving flows, ports and the chassis record in place (the data plane keeps
        forwarding while the agent is away)."""
        log.info("agent stopping")
        if self._metrics is not None:
            self._metrics.shutdown()
        if self.health is not None:
            self.health.stop()
        if self.sync:
            self.sync.stop()
        if getattr(self, "ready_pub", None):  # before the lease is revoked
            self.ready_pub.stop()
        if self.presence:
            self.presence.stop()
        if self._ager:
            self._ager.stop()
        if getattr(self, "aclhits", None):
            self.aclhits.stop()
        if self.livetrace:
            self.livetrace.stop()
        if self.conn:
            self.conn.close()
        if self.ovs:
            self.ovs.stop()
        if self.store:
            self.store.close()
