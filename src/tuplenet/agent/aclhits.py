"""Per-rule ACL hit counters (docs/acl.md): OVS flow statistics of the verdict flows, per rule.

Every PERIOD seconds a thread reads the packet counts of our flows in the two ACL verdict stages (one
flow-stats request each) and posts them to the main loop, which maps cookies to rules through the engine's
`acl_flow` outputs (pipeline/acl.py: verdict flow cookie -> rule key) and keeps the per-rule sums (status
`acl_hits`, metrics `tuplenet_acl_hits`). The thread then publishes them, when they changed, as JSON
`{"entity_view/...rule key": packets}` under `communicate/acl_hits/<chassis>` with a lease of its own, so a
dead agent's report goes away; `tpctl acl show` sums the reports. Counts are those of the flows now
installed: a rule change that replaces a rule's flows starts its count again (as OVN's ACL stats).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from ..model import entity_key
from ..store import StoreError
from ..store.lease import STOP_WAIT
from . import tables as T
from .flow import COOKIE_TAG, COOKIE_TAG_MASK, COOKIE_TAG_SHIFT
from .openflow import codec as c
from .pipeline.acl import HITS

log = logging.getLogger(__name__)

PERIOD = float(os.environ.get("TUPLENET_ACL_HITS_PERIOD", "10"))  # seconds; tests shorten it
HITS_PREFIX = "communicate/acl_hits/"


def read_counters(conn: Any, timeout: float = 10.0) -> dict[int, int]:
    """cookie -> packets of our flows in the ACL verdict stages."""
    out: dict[int, int] = {}

    def sink(body: bytes) -> None:
        for st in c.iter_flow_stats(body):
            out[st.cookie] = out.get(st.cookie, 0) + st.n_packets

    for table in (T.LS_IN_ACL_EVAL, T.LS_OUT_ACL_EVAL):
        conn.request(lambda x, t=table: c.flow_stats_request(COOKIE_TAG << COOKIE_TAG_SHIFT, COOKIE_TAG_MASK,
                                                             table=t, xid=x),
                     timeout, "acl counters", sink=sink)
    return out


def rule_hits(wishes: dict[tuple, Any], counters: dict[int, int]) -> dict[str, int]:
    """Packets per rule (its etcd key) from the engine's `acl_flow` outputs and the flow counters."""
    out: dict[str, int] = {}
    for w in wishes.values():
        n = counters.get(w.key[0])
        if n is None:
            continue
        rule = w.value  # ("acl", ls, name) | ("pg_acl", pg, name)
        k = entity_key(rule[0], rule[1:])
        out[k] = out.get(k, 0) + n
    return out


class AclHits(threading.Thread):
    """Reads the counters (this thread), maps them on the main loop (`take`), publishes the result."""

    def __init__(self, conn: Any, store: Any, chassis: str, ttl: int, post: Callable[[dict[int, int]], None],
                 period: float = PERIOD) -> None:
        super().__init__(name="acl-hits", daemon=True)
        self.conn, self.store, self.chassis, self.ttl, self.post, self.period = conn, store, chassis, ttl, post, period
        self.report: dict[str, int] = {}
        self._published: dict[str, int] | None = None
        self._lease: Any = None
        self._stop_ev = threading.Event()
        self.errors = 0

    def take(self, engine: Any, counters: dict[int, int]) -> None:
        """Main loop: the engine is consistent here."""
        self.report = rule_hits(engine.desired_outputs("wish", HITS), counters)

    def run(self) -> None:
        while not self._stop_ev.wait(self.period):
            try:
                self._publish()
                self.post(read_counters(self.conn))
            except Exception as exc:  # noqa: BLE001 - a disconnected switch or etcd: next period
                self.errors += 1
                log.debug("acl hit counters: %s", exc)

    def _publish(self) -> None:
        report = dict(self.report)
        if report == self._published or (not report and self._published is None):
            return
        try:
            if self._lease is None:
                self._lease = self.store.lease_grant(max(self.ttl, int(3 * self.period)))
                self._lease.start_keepalive()
            self.store.put(HITS_PREFIX + self.chassis, json.dumps(report, sort_keys=True), lease=self._lease.id)
            self._published = report
        except StoreError:
            self._lease = None  # expired or etcd away: a new lease next time
            raise

    def stop(self) -> None:
        self._stop_ev.set()
        if self._lease is not None:
            self._lease.stop(wait=STOP_WAIT)


__all__ = ["AclHits", "HITS_PREFIX", "read_counters", "rule_hits"]
