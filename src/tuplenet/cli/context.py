"""What every tpctl handler runs with: the run context (its controller made on first use), output and prompts.

Kept apart from the handler tables (commands.py, acl.py, lb.py, edge.py, tree_cmds.py) so each imports it
without importing the others.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Canceled(Exception):
    """The user declined a confirmation prompt."""


class Ctx:
    """What a command runs with; the controller (and its etcd connection) is made on first use."""

    def __init__(self, endpoints: str, prefix: str, timeout: float, as_json: bool, recursive: bool = False,
                 yes: bool = False, overwrite: bool = False, resume: bool = False, abandon: bool = False,
                 requested_chassis: str | None = None, clear: bool = False) -> None:
        self.endpoints, self.prefix, self.timeout, self.as_json = endpoints, prefix, timeout, as_json
        self.recursive, self.yes, self.overwrite = recursive, yes, overwrite
        self.resume, self.abandon = resume, abandon
        self.requested_chassis, self.clear = requested_chassis, clear  # lsp add / lsp set-requested
        self._ctl: Any = None
        self.security: Any = None  # tuplenet.store.EtcdSecurity (TLS files, etcd user), set by tpctl

    @property
    def ctl(self) -> Any:
        if self._ctl is None:
            from tuplenet.control import Controller
            from tuplenet.store import Store

            self._ctl = Controller(Store(self.endpoints, prefix=self.prefix, timeout=self.timeout,
                                         security=self.security))
        return self._ctl

    def close(self) -> None:
        if self._ctl is not None:
            for warning in self._ctl.warnings:
                print(f"warning: skipped bad record {warning}", file=sys.stderr)
            self._ctl.store.close()


def say(text: str) -> int:
    sys.stdout.write(text + "\n")
    return 0


def confirm(ctx: Ctx) -> None:
    """0.3's prompt before a recursive delete; --yes skips it. Anything but yes/y cancels."""
    if not ctx.recursive or ctx.yes:
        return
    sys.stdout.write("all data under this device will be deleted\nconfirm? [yes/no] ")
    sys.stdout.flush()
    answer = sys.stdin.readline()
    if answer.strip() not in ("yes", "y"):
        raise Canceled("operation canceled")


__all__ = ["Canceled", "Ctx", "confirm", "say"]
