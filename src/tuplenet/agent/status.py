"""The agent's status: one dict built on the main loop once its events quieten (StatusPacer), written to
`<rundir>/status.json` for `tuplenet status` and kept as the snapshot /metrics reads (metrics.py)."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from .ecmp_stats import ecmp_status

log = logging.getLogger("tuplenet")


STATUS_QUIET = 0.05  # s without events before the status is rewritten: never inside a burst's latency window
STATUS_MAX_AGE = 1.0  # s: during a steady stream of events it is rewritten at least this often
STATUS_IDLE = 2.0  # s: with no events at all (uptime, RSS and counters still move)


class StatusPacer:
    """When the main loop rewrites the status. Building and writing it costs ~1 ms of CPU; doing that after
    every batch put it on the path of a port coming up (the next OVSDB update, the peers' watch events and
    ovs-vswitchd wait for the CPU). Written once the events quieten, within STATUS_MAX_AGE in a stream."""

    def __init__(self) -> None:
        self.last_write = float("-inf")
        self.last_event = 0.0
        self.dirty_since: float | None = None

    def wait(self, now: float) -> float:
        """How long the loop may block for its next event before a status write is due."""
        if self.dirty_since is None:
            return max(0.0, min(1.0, self.last_write + STATUS_IDLE - now))
        return max(0.0, min(self.last_event + STATUS_QUIET, self.dirty_since + STATUS_MAX_AGE) - now)

    def due(self, now: float, events: bool) -> bool:
        """After one turn of the loop (`events`: it handled some): write the status now? Marks it written."""
        if events:
            self.last_event = now
            if self.dirty_since is None:
                self.dirty_since = now
        if self.dirty_since is not None:
            if now < min(self.last_event + STATUS_QUIET, self.dirty_since + STATUS_MAX_AGE):
                return False
        elif now < self.last_write + STATUS_IDLE:
            return False
        self.last_write, self.dirty_since = now, None
        return True


def rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def release_free_memory() -> None:
    """Give the heap freed by the start-up burst (the decoded etcd listing, per-owner scratch) back to the OS:
    glibc keeps it otherwise, and the agent's RSS would stay at its start-up peak for its whole life."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def build_status(a: Any) -> dict:
    """Counters of the running agent `a` (daemon.Agent); only the main loop may call this."""
    es, of = a.engine.stats, a.ofctrl.stats if a.ofctrl else None
    return {
        "chassis": a.self_id, "pid": os.getpid(), "ready_ms": round(a.ready_ms, 1),
        "start_phases_ms": getattr(a, "start_phases", {}),
        "facts": len(a.view.facts), "flows": len(a.engine.active),
        "flows_by_table": {t: n for t, n in a.engine.per_table.items() if n},
        "meters": len(a.ofctrl.meters) if a.ofctrl else 0,
        "groups": len(a.ofctrl.groups) if a.ofctrl else 0,
        "installed": len(a.ofctrl.installed) if a.ofctrl else 0,
        "tunnels": sum(1 for k in a.local.facts if k[0] == "tun"),  # local facts only: no topology scan
        "rss_mb": rss_mb(),
        "engine": {"full_runs": es.full_runs, "incremental_runs": es.incremental_runs,
                   "owners_computed": es.owners_computed, "last_run_ms": round(es.last_run_ms, 3),
                   "conflicts": es.conflicts, "resyncs": es.extra.get("resyncs", 0)},
        "openflow": of.__dict__ if of else {},
        "openflow_session": {**a.conn.stats, "decode_errors": dict(a.conn.decode_errors)} if a.conn else {},
        "packet_ins": a.pins.status() if a.pins else {},
        "live_trace": dict(a.livetrace.stats) if getattr(a, "livetrace", None) else {},
        "ondemand": a.ondemand.status(),
        "acl_hits": a.aclhits.report if getattr(a, "aclhits", None) else {},  # aclhits.py
        "bad_records": a.sync.decoder.bad_records if a.sync else 0,
        "import_hold": a.sync.hold.status() if a.sync else {},
        "bindings": {**a.binder.status(), "ready": len(a.readiness.ready),
                     "claims_failed": a.claimer.failed if a.claimer else 0},
        "ovsdb": dict(a.ovs.stats) if a.ovs else {},
        "duplicates": a.shadowing.status(),
        "gateway_arp": a.gw.status() if getattr(a, "gw", None) else {},
        "event_errors": a.barrier.status(),
        "etcd_revision": a.sync.revision if a.sync else 0,
        "etcd": {"watch_lag_ms": round(a._watch_lag_ms, 3),
                 "watch_restarts": a.sync.watch_restarts if a.sync else 0},
        "openflow_reconnects": max(0, a._of_connects - 1),
        "lb_health": a.health.status() if getattr(a, "health", None) else {},  # healthcheck_service.py
        # BFD per tunnel that runs it (tunnels to edges; every tunnel on a gateway): state, forwarding, flaps.
        "bfd": {c: dict(st) for c, st in a.ovs.snapshot().tunnel_bfd.items() if st} if a.ovs else {},
        "ecmp": ecmp_status(a),  # equal-cost groups here, packets dropped with no edge alive
        "untunnel": a.dsr.status() if getattr(a, "dsr", None) else {},  # DSR port and host settings
    }



def write_status(rundir: str, snapshot: dict) -> None:
    """Atomically replace status.json (readers never see half a file)."""
    try:
        os.makedirs(rundir, exist_ok=True)
        tmp = os.path.join(rundir, "status.json.tmp")
        text = json.dumps(snapshot)  # one shot: C encoder; json.dump streams through the pure-Python one
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, os.path.join(rundir, "status.json"))
    except OSError as exc:
        log.debug("status file not written: %s", exc)


def read_status(rundir: str) -> dict:
    """The last status.json written in `rundir` (empty if none or unreadable): at start-up, the previous run's."""
    try:
        with open(os.path.join(rundir, "status.json")) as f:
            out = json.load(f)
    except (OSError, ValueError):
        return {}
    return out if isinstance(out, dict) else {}
