"""`tuplenet status` → `ecmp`: equal-cost groups installed here and the packets their "no edge alive" flows
dropped (lr_in_ecmp, reg4 = 0xffff; pipeline/ecmp.py). Read with a flow-stats request per such flow (one
per group), at most every STATS_EVERY seconds, so the status loop never waits on the switch for long."""

from __future__ import annotations

import logging
import time
from typing import Any

from . import tables as T
from .pipeline.ecmp import DEAD_BASE, MEMBER_BASE

log = logging.getLogger(__name__)

STATS_EVERY = 5.0
_CACHE = "_ecmp_status"  # attribute on the agent: (monotonic time, last result)


def dead_flows(engine: Any) -> list[Any]:
    """The installed-to-be 'no edge alive' flows."""
    return [f for f in engine.active.values() if f.table == T.LR_IN_ECMP and DEAD_BASE <= f.priority < MEMBER_BASE]


def ecmp_status(agent: Any) -> dict:
    now = time.monotonic()
    cached = getattr(agent, _CACHE, None)
    if cached is not None and now - cached[0] < STATS_EVERY:
        return cached[1]
    dead = dead_flows(agent.engine)
    drops = cached[1].get("dead_drops", 0) if cached else 0
    if dead and agent.conn is not None:
        try:
            drops = sum(s.n_packets for f in dead for s in agent.conn.dump_flows_raw(f.cookie, -1 & ((1 << 64) - 1),
                                                                                       timeout=2.0))
        except Exception as exc:  # noqa: BLE001 - a status field must never break the status
            log.debug("ECMP drop counters: %s", exc)
    out = {"groups": len(dead), "dead_drops": drops}
    setattr(agent, _CACHE, (now, out))
    return out
