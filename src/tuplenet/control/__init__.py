"""Management operations on the logical topology, shared by tpctl, the HTTP API, CNI and CNM.

Never talks to OVS. Every operation validates fully, then writes in one guarded etcd transaction and retries
from a fresh read when it loses a race; errors are ControlError subclasses with one-line messages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tuplenet.model import IMPORT_MARKER_KEY
from tuplenet.model.importmark import ImportMarker
from tuplenet.store import Compare, Op

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
        """Every key under entity_view/ with its raw value, sorted by key, and the revision read at.

        The import marker is not a record and is left out.
        """
        kvs, rev = self.store.get_prefix("entity_view/")
        return [(kv.key, kv.value) for kv in kvs if kv.key != IMPORT_MARKER_KEY], rev

    def import_records(self, records: list[tuple[int, str, str]], overwrite: bool = False,
                       resume: bool = False) -> ImportResult:
        """Validate (line number, key, value) records, then write them; see tuplenet.control.bulk."""
        from .bulk import Importer

        return Importer(self).run(records, overwrite, resume)

    def abandon_import(self) -> ImportMarker:
        """Drop the marker of an interrupted import (what it wrote stays); agents apply what they held."""
        kv = self.store.get(IMPORT_MARKER_KEY)
        if kv is None:
            raise NotFound("no import is in progress")
        if not self.store.txn([Compare.mod_revision(IMPORT_MARKER_KEY, "=", kv.mod_revision)],
                              [Op.delete(IMPORT_MARKER_KEY)]).succeeded:
            raise Conflict("the import marker changed meanwhile (the import is still running?); nothing done")
        return ImportMarker.parse(kv.value)


def __getattr__(name: str) -> Any:
    if name in ("ImportResult", "format_export", "parse_export"):
        from . import bulk

        return getattr(bulk, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AlreadyExists", "Conflict", "ControlError", "Controller", "ImportResult", "InvalidArgument", "NotEmpty",
    "NotFound", "VersionMismatch", "format_export", "parse_export",
]
