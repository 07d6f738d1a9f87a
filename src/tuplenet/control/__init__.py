"""Management operations on the logical topology, shared by tpctl, the HTTP API, CNI and CNM.

Never talks to OVS. Every operation validates fully, then writes in one guarded etcd transaction and retries
from a fresh read when it loses a race; errors are ControlError subclasses with one-line messages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    AlreadyExists,
    Conflict,
    ControlError,
    InvalidArgument,
    NotEmpty,
    NotFound,
    VersionMismatch,
)
from .maint import MaintOps

if TYPE_CHECKING:
    from .bulk import ImportResult


class Controller(MaintOps):
    """All operations: switches, routers, ports, routes, NAT, chassis, toolbox, export/import.

    `store` is a tuplenet.store.Store (or anything with its get/get_prefix/txn API).
    """

    def export_records(self) -> tuple[list[tuple[str, str]], int]:
        """Every key under entity_view/ with its raw value, sorted by key, and the revision read at."""
        kvs, rev = self.store.get_prefix("entity_view/")
        return [(kv.key, kv.value) for kv in kvs], rev

    def import_records(self, records: list[tuple[int, str, str]], overwrite: bool = False) -> ImportResult:
        """Validate (line number, key, value) records, then write them; see tuplenet.control.bulk."""
        from .bulk import Importer

        return Importer(self).run(records, overwrite)


def __getattr__(name: str) -> Any:
    if name in ("ImportResult", "format_export", "parse_export"):
        from . import bulk

        return getattr(bulk, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AlreadyExists", "Conflict", "ControlError", "Controller", "ImportResult", "InvalidArgument", "NotEmpty",
    "NotFound", "VersionMismatch", "format_export", "parse_export",
]
