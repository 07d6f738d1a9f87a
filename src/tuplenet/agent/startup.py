"""The agent's start-up: OVSDB, OpenFlow and the etcd listing overlapped, then one computation and install,
then the services that need the chassis registered. Timed per phase (`start_phases` in the status)."""

from __future__ import annotations

import logging
import queue
import time
from concurrent.futures import ThreadPoolExecutor

from ..store import Store, StoreError
from . import ready_publish
from .aclhits import AclHits
from .chassis import ChassisPresence
from .etcdsync import Change, TopologySync
from .healthcheck_service import HealthService
from .livetrace import LiveTrace
from .ondemand import Ager, aging_period
from .ovsdb import LocalOvs, OvsdbError
from .status import read_status, release_free_memory

log = logging.getLogger("tuplenet")

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .daemon import Agent


def start(a: Agent) -> None:
    """Bring the agent up (raises daemon.StartupError with the reason an operator can act on)."""
    from .daemon import StartupError

    t0 = time.perf_counter()
    phases: list[tuple[str, float]] = []

    def phase(name: str) -> None:
        phases.append((name, time.perf_counter()))

    cfg = a.cfg

    pages: queue.SimpleQueue = queue.SimpleQueue()

    def open_and_list() -> tuple[list[Change] | None, list[Change], int]:
        try:
            a.store = Store(cfg.endpoints, prefix=cfg.prefix, timeout=5.0, security=cfg.security,
                            transport="grpc")  # etcd's native API: cheap watches, grpc-proxy serves it
            a.sync = TopologySync(a.store, a._emit)
            return a.sync.streamed_listing(pages.put)
        finally:
            pages.put(None)

    # The etcd client (importing gRPC) and the topology listing wait mostly on imports and on etcd:
    # overlap them with the OVSDB sync and the OpenFlow handshake, then apply each page of the listing
    # to the view while etcd serves the next one.
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="etcd-list")
    listing = pool.submit(open_and_list)
    pool.shutdown(wait=False)  # a failed start must not wait for the listing to time out
    try:
        a.ovs = LocalOvs(cfg.ovsdb_path, cfg.bridge).start(timeout=cfg.ovsdb_timeout)
    except OvsdbError as exc:
        raise StartupError(str(exc)) from None
    sid = a.ovs.system_id()
    if not sid:
        raise StartupError("Open_vSwitch external_ids:system-id is not set; set it with "
                           "`ovs-vsctl set Open_vSwitch . external_ids:system-id=<chassis name>`")
    a.self_id = sid
    a.ondemand.self_id = sid
    a.ovs.ensure_bridge(cfg.datapath_type)
    if cfg.untunnel:  # DSR: the agent owns br-int-dsrgw (and removes its own when the option is off)
        from .untunnel_host import UntunnelHost

        a.dsr = UntunnelHost()
    a.ovs.set_dsrgw(cfg.untunnel)
    phase("ovsdb")
    a._connect_openflow()
    phase("openflow")
    initial: set[tuple] = set()
    while (page := pages.get()) is not None:
        a._apply_changes(page, initial)
    try:
        instead, side, rev = listing.result()
    except StoreError as exc:
        if a.store is None:  # the client itself could not be set up (TLS files, options): as it says
            raise
        raise StartupError(f"cannot read the topology from etcd {cfg.endpoints}: {exc}") from None
    if instead is not None:  # the read started over, or an import is half written: what the view must hold
        a._resync(instead, initial)
    a._apply_changes(side, initial)
    phase("etcd listing")
    a.shadowing.update(a.view.index, a.view.created, initial)
    a.ovs.subscribe(lambda st: a.q.put(("ovs", st)))
    a.ovs.on_config_applied(lambda: a.q.put(("revalidate",)))  # after Mirror changes
    a._apply_ovs(a.ovs.snapshot(), set())
    a.ondemand.wake_named([k[1] for k in a.local.facts if k[0] in ("bind", "plugged")], initial)
    if cfg.ondemand and a.ondemand.restore(read_status(cfg.rundir)):  # learned flows survive a restart
        restored = a.ondemand.take_changed()
        a.ondemand.refresh(restored)
        a.shadowing.update(a.view.index, a.view.created, restored)
    a._bind(None, set())  # before the computation: ports being claimed get their local flows in it
    if cfg.gateway:
        a._start_gateway()
    phase("view")
    # Compute and install first, then ask OVS for missing tunnels: the IDL's processing of thousands of
    # new ports would compete with the computation for the GIL. Flows name chassis by tunnel IP, so the
    # first computation needs no tunnel ofport; on a restart the tunnels exist already and the
    # reconcile changes nothing; on a cold start each tunnel, once up, adds its own two flows.
    a.engine.full()
    a._sync_wishes()
    phase("compute")
    a._reconcile()
    phase("install")
    a._send_later_claims()  # each behind the barrier
    release_free_memory()
    a._side_effects()
    phase("tunnels requested")
    a.presence = ChassisPresence(a.store, sid, cfg.tunnel_ip, cfg.liveness_ttl)
    a._register()
    a.presence.start_liveness()
    a.ready_pub = ready_publish.start_for(a.readiness, a.store, sid, lambda: a.presence.lease)
    a.sync.start(rev)
    if cfg.ondemand:  # flows learned on demand age out when idle (ondemand.py)
        a._ager = Ager(a.conn, aging_period(cfg.ondemand_idle), lambda n: a.q.put(("ondemand_usage", n)))
        a._ager.start()
    a.health = HealthService.for_agent(a.conn, a.store, sid, cfg.liveness_ttl)
    a.health.update(a.view, None)
    a.livetrace = LiveTrace(a.store, sid, a.conn, a.view, a.engine, a.q.put)
    a.pins.register(LiveTrace.OPCODE, "trace", a.livetrace.trace_point)
    a.livetrace.start()
    a.aclhits = AclHits(a.conn, a.store, sid, cfg.liveness_ttl, lambda n: a.q.put(("acl_hits", n)))
    a.aclhits.start()  # per-rule ACL counters (aclhits.py)
    a.ready_ms = (time.perf_counter() - t0) * 1000
    prev, parts = t0, []
    for name, at in phases:
        parts.append(f"{name} {1000 * (at - prev):.0f}")
        prev = at
    a.start_phases = {name: round(1000 * (at - t0)) for name, at in phases}
    log.info("agent %s ready in %.0f ms (%s ms): %d flows, %d facts", sid, a.ready_ms, ", ".join(parts),
             len(a.ofctrl.installed), len(a.view.facts))
    a._write_status()
    if cfg.metrics_address:
        from .metrics import serve

        try:
            a._metrics = serve(cfg.metrics_address, lambda: a.snapshot)
        except OSError as exc:
            raise StartupError(f"cannot serve metrics on {cfg.metrics_address}: {exc}") from None
