"""`logging.getLogger(name)` whose `logging` import waits for the first message.

Agent modules that short-lived commands share (the engine and pipeline for `tpctl trace --simulate`, the
etcd listing with its import hold) log only on rare events; importing `logging` costs ~10 ms of every such
start. Each attribute access resolves the real logger, so levels, handlers and pytest's caplog behave as
with a plain module logger of the same name.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class LazyLogger:
    """Stands for logging.getLogger(name); every attribute (warning, exception, isEnabledFor...) is the
    real logger's."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __getattr__(self, attr: str) -> Any:
        import logging

        return getattr(logging.getLogger(self.name), attr)


def get_logger(name: str) -> LazyLogger:
    return LazyLogger(name)
