"""Export, import and the import marker: the topology as a whole (the import itself lives in bulk.py and
importwrite.py, loaded only when an import runs)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tuplenet.model import IMPORT_MARKER_KEY
from tuplenet.model.importmark import ImportMarker
from tuplenet.store import Compare, Op

from .base import Core
from .errors import Conflict, NotFound

if TYPE_CHECKING:
    from .bulk import ImportResult


class Backup:
    def __init__(self, core: Core) -> None:
        self.core = core

    def export_records(self) -> tuple[list[tuple[str, str]], int]:
        """Every key under entity_view/ with its raw value, sorted by key, and the revision read at.

        The import marker is not a record and is left out.
        """
        kvs, rev = self.core.store.get_prefix("entity_view/")
        return [(kv.key, kv.value) for kv in kvs if kv.key != IMPORT_MARKER_KEY], rev

    def import_records(self, records: list[tuple[int, str, str]], overwrite: bool = False,
                       resume: bool = False) -> ImportResult:
        """Validate (line number, key, value) records, then write them; see tuplenet.control.bulk."""
        from .bulk import Importer

        return Importer(self.core).run(records, overwrite, resume)

    def abandon_import(self) -> ImportMarker:
        """Drop the marker of an interrupted import (what it wrote stays); agents apply what they held."""
        store = self.core.store
        kv = store.get(IMPORT_MARKER_KEY)
        if kv is None:
            raise NotFound("no import is in progress")
        if not store.txn([Compare.mod_revision(IMPORT_MARKER_KEY, "=", kv.mod_revision)],
                         [Op.delete(IMPORT_MARKER_KEY)]).succeeded:
            raise Conflict("the import marker changed meanwhile (the import is still running?); nothing done")
        return ImportMarker.parse(kv.value)
