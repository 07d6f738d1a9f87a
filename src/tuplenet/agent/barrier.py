"""The main loop's exception barrier: one bad event (a record, an OVS update, a packet-in) must never stop
the agent. Each step runs behind the barrier; a failure is counted, logged with its traceback the first
time its kind is seen (then at debug level, so a repeating fault cannot flood the log), and the loop goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("tuplenet")

_SEEN_CAP = 1000  # distinct fault signatures remembered; beyond that every fault logs (bounded memory)


class Barrier:
    def __init__(self) -> None:
        self.errors = 0
        self.by_step: dict[str, int] = {}
        self._seen: set[tuple[str, str, str]] = set()

    def run(self, step: str, fn: Callable[..., Any], *args: Any) -> bool:
        """fn(*args); False (and counted) if it raised."""
        try:
            fn(*args)
            return True
        except Exception as exc:  # noqa: BLE001 - that is the point
            self.errors += 1
            self.by_step[step] = self.by_step.get(step, 0) + 1
            sig = (step, type(exc).__name__, str(exc)[:200])
            if sig in self._seen:
                log.debug("%s failed again: %s", step, exc)
            else:
                if len(self._seen) < _SEEN_CAP:
                    self._seen.add(sig)
                log.exception("%s failed (the agent carries on; counted in status as event_errors)", step)
            return False

    def status(self) -> dict:
        return {"total": self.errors, **self.by_step}
