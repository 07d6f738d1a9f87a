"""Prometheus metrics of the agent, from the same status snapshot `tuplenet status` prints.

The main loop builds one status dict after every batch (it alone may read the engine and the view); the
scrape thread only reads the latest snapshot, so a scrape never races the engine and the two views of the
agent (status.json and /metrics) can never disagree. Off unless `--metrics-address` is given.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from .stages import stage_of

log = logging.getLogger(__name__)

Snapshot = Callable[[], dict]


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _get(d: dict, *path: str, default: Any = 0) -> Any:
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return default
        d = d[p]
    return d


class StatusCollector(Collector):
    """Turns the agent's status snapshot into metric families."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        st = self.snapshot() or {}
        flows = GaugeMetricFamily("tuplenet_flows", "Flows the agent wants installed, by table and stage",
                                  labels=["table", "stage"])
        for table, n in sorted(_get(st, "flows_by_table", default={}).items(), key=lambda kv: int(kv[0])):
            stg = stage_of(int(table))
            flows.add_metric([str(table), stg.name if stg else "unknown"], n)
        yield flows
        yield GaugeMetricFamily("tuplenet_flows_installed", "Flows of ours installed in OVS",
                                value=_get(st, "installed"))
        yield GaugeMetricFamily("tuplenet_meters", "OpenFlow meters the agent keeps",
                                value=_get(st, "meters"))
        yield GaugeMetricFamily("tuplenet_groups", "OpenFlow groups the agent keeps", value=_get(st, "groups"))
        runs = CounterMetricFamily("tuplenet_engine_runs", "Engine runs", labels=["kind"])
        runs.add_metric(["full"], _get(st, "engine", "full_runs"))
        runs.add_metric(["incremental"], _get(st, "engine", "incremental_runs"))
        yield runs
        yield GaugeMetricFamily("tuplenet_engine_last_run_seconds", "Duration of the last engine run",
                                value=_get(st, "engine", "last_run_ms") / 1000)
        yield CounterMetricFamily("tuplenet_engine_owners_computed", "Owners (logical objects) recomputed",
                                  value=_get(st, "engine", "owners_computed"))
        yield CounterMetricFamily("tuplenet_engine_conflicts", "Flow identity conflicts resolved",
                                  value=_get(st, "engine", "conflicts"))
        yield GaugeMetricFamily("tuplenet_etcd_watch_lag_seconds",
                                "Delay between an etcd batch arriving and the agent applying it (last batch)",
                                value=_get(st, "etcd", "watch_lag_ms") / 1000)
        yield GaugeMetricFamily("tuplenet_etcd_revision", "etcd revision applied", value=_get(st, "etcd_revision"))
        yield CounterMetricFamily("tuplenet_etcd_watch_restarts", "etcd watch failures (re-opened)",
                                  value=_get(st, "etcd", "watch_restarts"))
        yield CounterMetricFamily("tuplenet_etcd_resyncs", "Re-listings after compaction",
                                  value=_get(st, "engine", "resyncs"))
        yield CounterMetricFamily("tuplenet_etcd_bad_records", "Malformed etcd records skipped",
                                  value=_get(st, "bad_records"))
        yield CounterMetricFamily("tuplenet_openflow_reconnects", "OpenFlow reconnections to br-int",
                                  value=_get(st, "openflow_reconnects"))
        yield CounterMetricFamily("tuplenet_ovsdb_reconnects", "OVSDB reconnections",
                                  value=_get(st, "ovsdb", "reconnects"))
        pins = CounterMetricFamily("tuplenet_packet_ins", "Packet-ins handled, by reason", labels=["reason"])
        for reason, n in sorted(_get(st, "packet_ins", "by_op", default={}).items()):
            pins.add_metric([str(reason)], n)
        yield pins
        drops = CounterMetricFamily("tuplenet_packet_in_drops", "Packet-ins dropped, by where", labels=["where"])
        for where in ("meter", "openflow_queue", "queue", "source_rate", "total_rate"):
            drops.add_metric([where], _get(st, "packet_ins", f"dropped_{where}"))
        yield drops
        binds = GaugeMetricFamily("tuplenet_bindings", "Local interfaces by binding state", labels=["state"])
        b = _get(st, "bindings", default={})
        binds.add_metric(["bound"], _get(b, "bound"))
        binds.add_metric(["conflict"], len(_get(b, "conflicts", default={}) or {}))
        binds.add_metric(["ambiguous"], len(_get(b, "ambiguous", default={}) or {}))
        binds.add_metric(["ready"], _get(b, "ready"))
        yield binds
        yield CounterMetricFamily("tuplenet_binding_claims", "Binding claims written to etcd",
                                  value=_get(b, "claims"))
        yield GaugeMetricFamily("tuplenet_duplicates_shadowed",
                                "Records shadowed by an older one with the same MAC, IP or id",
                                value=_get(st, "duplicates", "shadowed"))
        errs = CounterMetricFamily("tuplenet_event_errors", "Events that failed behind the main loop's barrier",
                                   labels=["step"])
        for step, n in sorted(_get(st, "event_errors", default={}).items()):
            if step != "total":
                errs.add_metric([step], n)
        yield errs
        yield GaugeMetricFamily("tuplenet_resident_memory_bytes", "Agent RSS", value=_get(st, "rss_mb") * 2**20)
        hits = CounterMetricFamily("tuplenet_acl_hits", "Packets that hit an ACL rule's flows here", labels=["rule"])
        for rule, n in sorted((_get(st, "acl_hits", default={}) or {}).items()):
            hits.add_metric([rule], n)
        yield hits
        yield from lb_health_metrics(_get(st, "lb_health", default={}) or {})


def lb_health_metrics(hc: dict) -> Iterator[Metric]:
    """Load-balancer health checks run by this agent (healthcheck_service.py)."""
    backends = GaugeMetricFamily("tuplenet_lb_health_backends", "Backends checked here, by verdict",
                                 labels=["state"])
    backends.add_metric(["up"], _get(hc, "up"))
    backends.add_metric(["down"], _get(hc, "down"))
    yield backends
    probes = CounterMetricFamily("tuplenet_lb_health_probes", "Health-check probes, by result", labels=["result"])
    for result, n in sorted((_get(hc, "by_result", default={}) or {}).items()):
        probes.add_metric([str(result)], n)
    yield probes
    yield CounterMetricFamily("tuplenet_lb_health_verdict_changes", "Backends that went down or came back",
                              value=_get(hc, "verdict_changes"))
    yield CounterMetricFamily("tuplenet_lb_health_write_errors", "Verdict writes to etcd that failed (retried)",
                              value=_get(hc, "writer", "errors"))


def registry(snapshot: Snapshot) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(StatusCollector(snapshot))
    return reg


def parse_address(text: str) -> tuple[str, int]:
    """'host:port' (host may be empty for all addresses, or a [v6] literal)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad metrics address {text!r}: expected host:port")
    return host.strip("[]") or "0.0.0.0", int(port)


def serve(address: str, snapshot: Snapshot) -> Any:
    """Serve /metrics on `address` in a daemon thread; returns the server (call .shutdown() to stop)."""
    from prometheus_client import start_http_server

    host, port = parse_address(address)
    server, _thread = start_http_server(port, addr=host, registry=registry(snapshot))
    log.info("metrics on http://%s:%d/metrics", host, port)
    return server
