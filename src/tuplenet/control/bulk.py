"""Export and import of the whole topology (`entity_view/`) in a line format.

Format (one record per line, UTF-8): `<key relative to the prefix><TAB><0.3 value>`, e.g.
`entity_view/LS/ls1<TAB>id=1`. Lines that are empty or start with `#` are ignored. Export writes raw values
(unknown fields survive) sorted by key. On import an LS/LR whose `id` is missing or 0 gets a fresh id, as does
one whose id is already taken in the target.

Import validates everything before writing (record syntax, parents, names, port-id uniqueness per LS/LR
across file and target, existing keys). etcd caps a transaction at 128 ops, so the write is cut into batches
grouped by parent: a switch with its ports and its port-id book travel together, so each group commits
atomically when it fits one batch, and every batch is guarded by compares. Several batches are written
behind the import marker (see importwrite): agents hold changes until the last batch, an interrupted import
is completed by re-running it (`--resume`), and a batch that loses a race rolls the run back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from tuplenet.model import (
    DEVICE_IDS_KEY,
    IMPORT_MARKER_KEY,
    IP_BOOK_ROOT,
    ROOT,
    ModelError,
    decode,
    entity_key,
    ip_book_key,
    parse_key,
    parse_value,
    port_id,
)
from tuplenet.model.importmark import ImportMarker, records_digest
from tuplenet.model.ovsnames import patch_port_problem
from tuplenet.model.roaring import decode_bitmap, encode_bitmap
from tuplenet.store import KV, Compare, Op

from .base import PORT_KIND, Core, DeviceBook, record_id
from .errors import Conflict, ControlError, InvalidArgument
from .importwrite import BATCH_OPS, ImportWriter, Unit

MAX_REPORTED = 20


class ImportResult:
    """Counts of an import: objects created/replaced, LS/LR ids assigned, transactions used, and records
    skipped by a resume because an earlier run (or anyone) already wrote them."""

    __slots__ = ("created", "replaced", "ids_assigned", "batches", "present", "resumed")

    def __init__(self) -> None:
        self.created = self.replaced = self.ids_assigned = self.batches = self.present = 0
        self.resumed = False


def format_export(records: Iterable[tuple[str, str]], header: str = "") -> str:
    lines = [f"# {header}"] if header else []
    for key, value in records:
        if "\t" in key or "\n" in key or "\n" in value:
            raise ControlError(f"{key}: cannot be exported in the line format (tab or newline in it)")
        lines.append(f"{key}\t{value}")
    return "\n".join(lines) + "\n"


def parse_export(text: str) -> list[tuple[int, str, str]]:
    """(line number, key, value) of every record; InvalidArgument listing malformed lines."""
    out, errors = [], []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("\t")
        if not sep:
            errors.append(f"line {n}: expected '<key><TAB><value>'")
            continue
        out.append((n, key.strip(), value))
    if errors:
        raise InvalidArgument(_summary(errors))
    return out


def _summary(errors: list[str]) -> str:
    head = "; ".join(errors[:MAX_REPORTED])
    more = f"; ... and {len(errors) - MAX_REPORTED} more" if len(errors) > MAX_REPORTED else ""
    return f"import refused, nothing written: {head}{more}"


class Importer:
    """One import run (a module of its own so plain commands never load it)."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.store = core.store
        self.device_book = core.device_book
        self.trust_book = True

    def run(self, records: list[tuple[int, str, str]], overwrite: bool = False,
            resume: bool = False) -> ImportResult:
        """Validate then write `records`. A marker left by an interrupted run of the same records (or
        `resume`) makes this a resume: records already written are skipped, the rest is written."""
        self.core.ensure_version()
        marker = ImportMarker(records_digest([(k, v) for _, k, v in records], overwrite), len(records))
        marker_kv = self.store.get(IMPORT_MARKER_KEY)
        if marker_kv is not None:
            current = ImportMarker.parse(marker_kv.value)
            if current.digest != marker.digest:
                raise Conflict(f"another import is in progress ({current.describe()}): complete it with "
                               "`tpctl import --resume FILE` of its file (and its --overwrite), or drop its marker with "
                               "`tpctl import --abandon`")
        dev_kv = self.store.get(DEVICE_IDS_KEY)  # bookkeeping before the tree (see PortBook)
        book_kvs = {kv.key: kv for kv in self.store.get_prefix(IP_BOOK_ROOT)[0]}
        tree = {kv.key: kv for kv in self.store.get_prefix(ROOT)[0] if kv.key != IMPORT_MARKER_KEY}
        resuming = resume or marker_kv is not None
        present = 0
        if resuming:
            records, present = self._skip_present(records, tree, marker_kv)
            # The interrupted run reserved ids in the book for devices it never wrote: take ids from the tree.
            self.trust_book = marker_kv is None
        entities, dev_ids, result = self._validate(records, tree, dev_kv, overwrite)
        result.present, result.resumed = present, resuming
        units = self._units(entities, tree, book_kvs, dev_kv, dev_ids)
        before: dict[str, KV | None] = {**tree, **book_kvs, DEVICE_IDS_KEY: dev_kv}
        result.batches = ImportWriter(self.store, marker, marker_kv, before).write(units)
        return result

    def _skip_present(self, records: list[tuple[int, str, str]], tree: dict[str, KV],
                      marker_kv: KV | None) -> tuple[list[tuple[int, str, str]], int]:
        """Records a resume need not write: written since the marker appeared, or already equal."""
        keep = []
        for rec in records:
            kv = tree.get(rec[1])
            if kv is not None and ((marker_kv is not None and kv.mod_revision >= marker_kv.create_revision)
                                   or _same(rec[1], kv.value, rec[2])):
                continue
            keep.append(rec)
        return keep, len(records) - len(keep)

    # ---- validation --------------------------------------------------------------------------------------

    def _validate(self, records: list[tuple[int, str, str]], tree: dict[str, KV], dev_kv: KV | None,
                  overwrite: bool) -> tuple[list[Any], set[int], ImportResult]:
        errors: list[str] = []
        entities: dict[str, Any] = {}
        need_id: set[str] = set()
        for n, key, value in records:
            parsed = parse_key(key)
            if parsed is None:
                errors.append(f"line {n}: {key}: not a topology key")
                continue
            kind, ident = parsed
            if key in entities:
                errors.append(f"line {n}: {key}: duplicate record")
                continue
            if kind in ("LS", "LR") and (parse_value(value).get("id", "") == "" or record_id(value) == 0):
                need_id.add(key)
                value = ",".join(s for s in value.split(",") if s.partition("=")[0].strip() != "id")
                value = f"id=1,{value}" if value.strip() else "id=1"
            try:
                entities[key] = decode(kind, ident, value)
            except ModelError as exc:
                errors.append(f"line {n}: {exc}")
                continue
            if any("," in part or not part.strip() for part in ident):
                errors.append(f"line {n}: {key}: bad name")
            ent = entities[key]
            if ent.kind == "lsp" and ent.is_patch and ent.peer and (problem := patch_port_problem(ent.name, ent.peer)):
                errors.append(f"line {n}: {key}: {problem}")
            if key in tree and not overwrite:
                errors.append(f"line {n}: {key} already exists (use --overwrite to replace it)")
        for key, ent in entities.items():
            if ent.parent_kind is not None:
                pkey = entity_key(ent.parent_kind, (ent.ident[0],))
                if pkey not in entities and pkey not in tree:
                    noun = "switch" if ent.parent_kind == "LS" else "router"
                    errors.append(f"{key}: {noun} {ent.ident[0]} not found")
        errors += self._check_port_ids(entities, tree)
        if errors:
            raise InvalidArgument(_summary(errors))
        result = ImportResult()
        dev_ids = self._assign_ids(entities, need_id, tree, dev_kv, result)
        result.replaced = sum(1 for k in entities if k in tree)
        result.created = len(entities) - result.replaced
        return list(entities.values()), dev_ids, result

    def _check_port_ids(self, entities: dict[str, Any], tree: dict[str, KV]) -> list[str]:
        used: dict[tuple[str, str], dict[int, str]] = {}
        errors = []
        for kv in tree.values():
            parsed = parse_key(kv.key)
            if parsed and parsed[0] in ("lsp", "lrp") and kv.key not in entities:
                try:
                    pid = port_id(parse_value(kv.value).get("ip", ""))
                except ModelError:
                    continue
                used.setdefault((parsed[0], parsed[1][0]), {})[pid] = kv.key
        for key, ent in entities.items():
            if ent.kind in ("lsp", "lrp"):
                book = used.setdefault((ent.kind, ent.ident[0]), {})
                pid = port_id(ent.ip)
                if pid in book:
                    errors.append(f"{key}: lower 16 bits of {ent.ip} conflict with other IP ({book[pid]})")
                book[pid] = key
        return errors

    def _assign_ids(self, entities: dict[str, Any], need_id: set[str], tree: dict[str, KV],
                    dev_kv: KV | None, result: ImportResult) -> set[int]:
        """Keep each file id that is free in the target (first in key order wins), else allocate one.

        Ids of devices being replaced are free for their replacement. Returns the new device-id set.
        """
        used = self.device_book(dev_kv).ids if self.trust_book else set()
        target_ids: dict[str, int] = {}
        for key, kv in tree.items():
            parsed = parse_key(key)
            if parsed and parsed[0] in ("LS", "LR") and (dev_id := record_id(kv.value)) is not None:
                target_ids[key] = dev_id
        used -= {i for k, i in target_ids.items() if k in entities}
        used |= {i for k, i in target_ids.items() if k not in entities}
        claimed: set[int] = set()
        later: list[str] = []
        for key in sorted(k for k, e in entities.items() if e.kind in ("LS", "LR")):
            dev_id = entities[key].id
            if key in need_id or dev_id in used or dev_id in claimed:
                later.append(key)
            else:
                claimed.add(dev_id)
        book = DeviceBook(dev_kv, used | claimed)
        for key in later:
            new_id = book.allocate()
            book.ids.add(new_id)
            entities[key] = replace(entities[key], id=new_id)
            result.ids_assigned += 1
        return book.ids

    # ---- writing -----------------------------------------------------------------------------------------

    def _units(self, entities: list[Any], tree: dict[str, KV], book_kvs: dict[str, KV],
               dev_kv: KV | None, dev_ids: set[int]) -> list[Unit]:
        def guard(key: str) -> Compare:
            kv = tree.get(key) or book_kvs.get(key)
            return Compare.mod_revision(key, "=", kv.mod_revision) if kv else Compare.missing(key)

        groups: dict[tuple[str, str], list[Any]] = {}
        for ent in entities:
            gkey = ("chassis", ent.name) if ent.kind == "chassis" else (ent.parent_kind or ent.kind, ent.ident[0])
            groups.setdefault(gkey, []).append(ent)
        units: list[Unit] = []
        if any(e.kind in ("LS", "LR") for e in entities):  # reserve the ids first: ls add trusts this book
            units.append(Unit([DeviceBook(dev_kv, set()).guard()], [Op.put(DEVICE_IDS_KEY, encode_bitmap(dev_ids))]))
        for (gkind, gname), members in sorted(groups.items()):
            members.sort(key=lambda e: (e.parent_kind is not None, e.key))
            unit = Unit()
            if gkind in ("LS", "LR") and members[0].kind != gkind:
                unit.compares.append(Compare.exists(entity_key(gkind, (gname,))))
            for ent in members:
                if len(unit.ops) >= BATCH_OPS - 1:
                    units.append(unit)
                    unit = Unit()
                unit.compares.append(guard(ent.key))
                unit.ops.append(Op.put(ent.key, ent.to_value()))
            if gkind in ("LS", "LR") and any(e.kind == PORT_KIND[gkind] for e in members):
                bkey = ip_book_key(gkind, gname)
                ids = {port_id(e.ip) for e in members if e.kind == PORT_KIND[gkind]}
                prefix = f"{ROOT}{gkind}/{gname}/{PORT_KIND[gkind]}/"
                for kv in tree.values():
                    if kv.key.startswith(prefix) and kv.key not in {e.key for e in members}:
                        try:
                            ids.add(port_id(parse_value(kv.value).get("ip", "")))
                        except ModelError:
                            pass
                old = book_kvs.get(bkey)
                if old is None or _bits(old.value) != ids:
                    unit.compares.append(guard(bkey))
                    unit.ops.append(Op.put(bkey, encode_bitmap(ids)))
            units.append(unit)
        return units


def _bits(value: str) -> set[int] | None:
    try:
        return decode_bitmap(value)
    except ModelError:
        return None


def _same(key: str, old: str, new: str) -> bool:
    """Whether record `new` is already in force as `old` (an LS/LR without an id matches any id)."""
    parsed = parse_key(key)
    if parsed is None:
        return False
    try:
        have = decode(parsed[0], parsed[1], old)
        if parsed[0] in ("LS", "LR") and (parse_value(new).get("id", "") == "" or record_id(new) == 0):
            new = ",".join(s for s in new.split(",") if s.partition("=")[0].strip() != "id") + f",id={have.id}"
        return decode(parsed[0], parsed[1], new) == have
    except ModelError:
        return False
